package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"
)

// openapiYAML is the OpenAPI document of the API. It is written in YAML
// for its anchors, which spell the endpoints served under two prefixes
// once, and served as JSON.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI document of the API as JSON.
var OpenAPI = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
})

// openapi is GET /openapi.json.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) (any, error) {
	doc, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(doc)
	return nil, nil
}
