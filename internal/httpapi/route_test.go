package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A handler that panics is a bug; the caller still gets the API's JSON
// error, not a connection cut without an answer.
func TestPanicIsJSON500(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil)), mux: http.NewServeMux()}
	a.route("/boom/", func(http.ResponseWriter, *http.Request) (any, error) { panic("boom") }, http.MethodGet)
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, httptest.NewRequest("GET", "/boom/", nil))
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/json" ||
		strings.TrimSpace(rec.Body.String()) != `{"error":"Internal error"}` {
		t.Errorf("%d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}
