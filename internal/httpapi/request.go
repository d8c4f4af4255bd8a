package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/username"
)

const (
	maxBody     = 1 << 20
	maxTimeout  = 365 * 24 * 3600 // seconds; beyond this is a typo
	maxUsername = 150             // characters: Django's limit, which Educates front ends respect
	// maxEnvVar is the longest NAME=value Linux passes to a program
	// (MAX_ARG_STRLEN, with its terminating NUL).
	maxEnvVar = 128<<10 - 1
)

// requestSession is GET|POST /workshops/environment/<name>/request/ (spec
// §7.9). Every input is checked before anything is written: bad input is a
// 400 with the reason, never a 500.
func (a *API) requestSession(w http.ResponseWriter, r *http.Request) (any, error) {
	caller, client, err := a.robotClient(r, "Session requests not permitted")
	if err != nil {
		return nil, err
	}
	req, err := a.parseRequest(w, r)
	if err != nil {
		return nil, err
	}
	req.Client = client
	al, err := a.broker.Request(r.Context(), caller, req)
	if err != nil {
		return nil, err
	}
	s := al.Session
	// Keys in this order, token before index_url, as Educates encodes them.
	activate := "/workshops/session/" + s.Name + "/activate/?token=" + url.QueryEscape(al.Token) +
		"&index_url=" + url.QueryEscape(req.IndexURL)
	return struct {
		Name        string `json:"name"`
		Session     string `json:"session"` // deprecated duplicate of name
		User        string `json:"user"`
		URL         string `json:"url"`
		Namespace   string `json:"namespace"`
		Workshop    string `json:"workshop"`
		Environment string `json:"environment"`
	}{s.Name, s.Name, al.User.Username, activate, s.Name, al.Workshop, s.Environment}, nil
}

func (a *API) parseRequest(w http.ResponseWriter, r *http.Request) (broker.Request, error) {
	q, err := query(r)
	if err != nil {
		return broker.Request{}, err
	}
	req := broker.Request{
		Environment: r.PathValue("name"),
		Username:    param(q, "user"),
		Email:       param(q, "email"),
		FirstName:   param(q, "first_name", "firstname"),
		LastName:    param(q, "last_name", "lastname"),
		IndexURL:    param(q, "index_url", "redirect_url"),
		Analytics:   param(q, "analytics_url"),
		Session:     param(q, "session"),
		Timeout:     broker.DefaultActivationTimeout,
	}
	if req.IndexURL == "" {
		// Educates demanded index_url even with portal.index set, although
		// its docs say the portal index is the default.
		req.IndexURL = a.broker.Portal().Index
	}
	if req.IndexURL == "" {
		return req, badRequest("Need redirect URL for workshop index")
	}
	if err := CheckURL("index_url", req.IndexURL); err != nil {
		return req, err
	}
	if req.Analytics != "" {
		if u, err := url.Parse(req.Analytics); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return req, badRequest("analytics_url must be an absolute http or https URL")
		}
	}
	if req.Email != "" {
		if addr, err := mail.ParseAddress(req.Email); err != nil || addr.Address != req.Email {
			return req, badRequest("Invalid email address provided")
		}
	}
	if err := checkName("user", req.Username); err != nil {
		return req, err
	}
	if _, err := username.Key(req.Username); req.Username != "" && err != nil {
		return req, badRequest("Invalid user: %v", err)
	}
	for _, f := range []struct{ name, v string }{{"first_name", req.FirstName}, {"last_name", req.LastName}, {"session", req.Session}} {
		if utf8.RuneCountInString(f.v) > maxUsername || strings.ContainsFunc(f.v, unicode.IsControl) {
			return req, badRequest("Invalid %s", f.name)
		}
	}
	if t := param(q, "timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxTimeout {
			return req, badRequest("timeout must be a whole number of seconds between 0 and %d", maxTimeout)
		}
		req.Timeout = time.Duration(n) * time.Second
	}
	req.Params, err = parseParameters(w, r)
	return req, err
}

// CheckURL refuses a URL a client gives that the portal could not redirect
// to: control characters, or one that does not parse.
func CheckURL(field, v string) error {
	if strings.ContainsFunc(v, unicode.IsControl) {
		return badRequest("%s contains control characters", field)
	}
	if _, err := url.Parse(v); err != nil {
		return badRequest("%s is not a valid URL", field)
	}
	return nil
}

// checkName accepts any printable username (with @, . and :, which
// Educates' routes could not address).
func checkName(field, v string) error {
	if utf8.RuneCountInString(v) > maxUsername || strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) || r == '/' || r == utf8.RuneError
	}) {
		return badRequest("Invalid %s: at most %d printable characters, no '/'", field, maxUsername)
	}
	return nil
}

// parseParameters reads the JSON body of a request, for GET as well
// (Educates' lookup service sends one on a GET), whatever its content type.
func parseParameters(w http.ResponseWriter, r *http.Request) ([]config.EnvVar, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, badRequest("Invalid JSON request payload")
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(body, &payload); err != nil || payload == nil {
		return nil, badRequest("Malformed JSON request payload: the body must be a JSON object")
	}
	raw, ok := payload["parameters"]
	if !ok {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, badRequest("Malformed JSON request payload: parameters must be a list")
	}
	params := make([]config.EnvVar, 0, len(items))
	for i, item := range items {
		var fields map[string]json.RawMessage
		err := json.Unmarshal(item, &fields)
		name, okName := jsonString(fields["name"])
		value, okValue := "", true
		if v, present := fields["value"]; present {
			value, okValue = jsonString(v)
		}
		if err != nil || !okName || name == "" || !okValue {
			return nil, badRequest("Malformed JSON request payload: parameters[%d] must be an object with a non-empty string name and a string value", i)
		}
		// Parameters become environment variables of the session.
		if strings.ContainsRune(name, 0) || strings.ContainsRune(value, 0) {
			return nil, badRequest("parameters[%d] contains a NUL character, which an environment variable cannot hold", i)
		}
		if len(name)+1+len(value) > maxEnvVar {
			return nil, badRequest("parameters[%d] is longer than the %d bytes an environment variable may hold", i, maxEnvVar)
		}
		params = append(params, config.EnvVar{Name: name, Value: value})
	}
	return params, nil
}

// jsonString decodes a JSON string; null or any other value is not one.
func jsonString(raw json.RawMessage) (string, bool) {
	var v string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}
