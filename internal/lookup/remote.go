package lookup

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/portico-dev/portico/client"
)

// Remote is a portal reached over its REST API as its robot account,
// with the public client package.
type Remote struct {
	api *client.Client

	mu sync.Mutex
	// public is the URL the portal last announced for itself, where
	// browsers go; the configured URL may be an internal address.
	public string
}

// NewRemote returns the backend of a configured portal; httpClient may be
// nil.
func NewRemote(pc PortalConfig, httpClient *http.Client) (*Remote, error) {
	c, err := client.New(client.Config{URL: pc.URL, ClientID: pc.Credentials.ClientID,
		ClientSecret: pc.Credentials.ClientSecret.Value, Username: pc.Credentials.Username,
		Password: pc.Credentials.Password.Value, HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	return &Remote{api: c}, nil
}

// State reads the portal's catalog, every environment that is not stopped
// with its sessions.
func (r *Remote) State(ctx context.Context) (*PortalState, error) {
	cat, err := r.api.Environments(ctx, client.CatalogOptions{Sessions: true,
		States: []string{"STARTING", "RUNNING", "STOPPING"}})
	if err != nil {
		return nil, err
	}
	p := cat.Portal
	r.mu.Lock()
	r.public = strings.TrimRight(p.URL, "/")
	r.mu.Unlock()
	st := &PortalState{UID: p.UID, Generation: p.Generation, Labels: p.Labels, URL: p.URL,
		Capacity: p.Sessions.Maximum, Allocated: p.Sessions.Allocated}
	for _, e := range cat.Environments {
		// In the catalog the workshop's name is its catalog name, which an
		// alias may change; the workshop is named by Resource then.
		name := e.Workshop.Resource
		if name == "" {
			name = e.Workshop.Name
		}
		es := EnvironmentState{Name: e.Name, Workshop: name, Title: e.Workshop.Title,
			Description: e.Workshop.Description, Labels: e.Workshop.Labels, Capacity: e.Capacity,
			Reserved: e.Reserved, Allocated: e.Allocated, Available: e.Available, Phase: phase(e.State)}
		for _, s := range e.Sessions {
			ph := "Allocated"
			switch {
			case s.State == "STOPPING":
				ph = "Stopping"
			case s.User == "":
				ph = "Available"
			}
			es.Sessions = append(es.Sessions, SessionState{Name: s.Name, Phase: ph, User: s.User})
		}
		st.Environments = append(st.Environments, es)
	}
	return st, nil
}

// phase names an environment's state as Educates' WorkshopEnvironment
// status does.
func phase(state string) string {
	if state == "" {
		return ""
	}
	return state[:1] + strings.ToLower(state[1:])
}

// Request asks the portal for a session.
func (r *Remote) Request(ctx context.Context, environment string, sr SessionRequest) (*Allocation, error) {
	params := make([]client.Parameter, len(sr.Parameters))
	for i, p := range sr.Parameters {
		params[i] = client.Parameter(p)
	}
	a, err := r.api.RequestSession(ctx, environment, client.SessionRequest{User: sr.User, Session: sr.Session,
		IndexURL: sr.IndexURL, Parameters: params})
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusBadRequest {
		return nil, errInvalid(ce.Reason)
	}
	if err != nil {
		return nil, err
	}
	return &Allocation{Session: a.Name, ActivationURL: r.activationURL(a)}, nil
}

// activationURL puts the allocation's path on the portal's public URL. A
// path that is not one (an absolute or scheme-relative URL) is put on the
// configured URL by the client, which resolves it against that.
func (r *Remote) activationURL(a *client.Allocation) string {
	r.mu.Lock()
	public := r.public
	r.mu.Unlock()
	if public != "" && strings.HasPrefix(a.URL, "/") && !strings.HasPrefix(a.URL, "//") {
		return public + a.URL
	}
	return r.api.ActivationURL(a)
}
