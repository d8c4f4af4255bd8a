package httpapi

import "net/http"

func (a *API) routes() {
	const get, head, post = http.MethodGet, http.MethodHead, http.MethodPost

	a.route("/oauth2/token/", a.token, post)
	a.route("/oauth2/revoke-token/", a.revoke, post)

	// Reads answer HEAD too. The endpoints that act on a GET (request,
	// extend, terminate) do not: a HEAD must not allocate or end a session,
	// and Educates answered it 405.
	a.route("/workshops/catalog/environments/", a.catalogEnvironments, get, head)
	a.route("/workshops/catalog/workshops/", a.catalogWorkshops, get, head)
	a.route("/workshops/environment/{name}/status/", a.environmentStatus, get, head)
	a.route("/workshops/environment/{name}/request/", a.requestSession, get, post)
	a.route("/workshops/user/{name}/sessions/", a.userSessions, get, head)

	// The reference page documents /session/...; the portal serves
	// /workshops/session/...: both work.
	for _, prefix := range []string{"/workshops/session/{name}/", "/session/{name}/"} {
		a.route(prefix+"authorize/", a.authorize, get, head)
		a.route(prefix+"config/", a.sessionConfig, get, head)
		a.route(prefix+"schedule/", a.schedule, get, head)
		a.route(prefix+"extend/", a.extend, get)
		a.route(prefix+"terminate/", a.terminate, get)
		a.route(prefix+"event/", a.event, post)
	}

	a.route("/portico/api/v1/sessions/", a.staffSessions, get, head)
	a.route("/portico/api/v1/sessions/{name}/", a.staffSession, get, head)
	a.route("/portico/api/v1/environments/", a.staffEnvironments, get, head)
	a.route("/portico/api/v1/environments/{name}/refresh/", a.refreshEnvironment, post)
	a.route("/portico/api/v1/users/", a.staffUsers, get, head)

	a.route("/openapi.json", a.openapi, get, head)

	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, errorf(http.StatusNotFound, "No such endpoint: %s", r.URL.Path))
	})
}
