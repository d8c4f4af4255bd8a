package lookup

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// The answers of the listing routes, in the shapes of Educates' lookup
// service.

// ClientView is a client as /api/v1/clients lists it.
type ClientView struct {
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	Tenants []string `json:"tenants"`
}

// TenantView is a tenant with the clients allowed to use it.
type TenantView struct {
	Name    string   `json:"name"`
	Clients []string `json:"clients"`
}

// ClusterView is a cluster.
type ClusterView struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// PortalView is a portal of a cluster.
type PortalView struct {
	Name       string            `json:"name"`
	UID        string            `json:"uid"`
	Generation int64             `json:"generation"`
	Labels     map[string]string `json:"labels"`
	Cluster    string            `json:"cluster"`
	URL        string            `json:"url"`
	Capacity   int               `json:"capacity"`
	Allocated  int               `json:"allocated"`
	Phase      string            `json:"phase"`
}

// EnvironmentView is a workshop environment of a portal.
type EnvironmentView struct {
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Generation  int64             `json:"generation"`
	Workshop    string            `json:"workshop"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"`
	Cluster     string            `json:"cluster"`
	Portal      string            `json:"portal"`
	Capacity    int               `json:"capacity"`
	Reserved    int               `json:"reserved"`
	Allocated   int               `json:"allocated"`
	Available   int               `json:"available"`
	Phase       string            `json:"phase"`
}

// SessionView is a workshop session of an environment.
type SessionView struct {
	Name        string `json:"name"`
	Generation  int64  `json:"generation"`
	Cluster     string `json:"cluster"`
	Portal      string `json:"portal"`
	Environment string `json:"environment"`
	Workshop    string `json:"workshop"`
	Phase       string `json:"phase"`
	User        string `json:"user"`
}

// WorkshopView is a workshop a tenant offers.
type WorkshopView struct {
	Name        string            `json:"name"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"`
}

// Clients lists the clients (admin).
func (s *Service) Clients(c *Caller) ([]ClientView, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	out := []ClientView{}
	for _, cl := range s.clients {
		out = append(out, clientView(cl))
	}
	return out, nil
}

// ClientDetails describes a client: any (admin) or the caller's own
// (tenant).
func (s *Service) ClientDetails(c *Caller, name string) (*ClientView, error) {
	matched, err := roles(c, RoleAdmin, RoleTenant)
	if err != nil {
		return nil, err
	}
	if slices.Contains(matched, RoleTenant) && c.client.Name != name {
		return nil, errForbidden("Client access not permitted")
	}
	cl := s.client(name)
	if cl == nil {
		return nil, errForbidden("Client not available")
	}
	v := clientView(cl)
	return &v, nil
}

func clientView(c *account) ClientView {
	return ClientView{Name: c.Name, Roles: nonNil(c.Roles), Tenants: nonNil(c.Tenants)}
}

// Tenants lists the tenants (admin).
func (s *Service) Tenants(c *Caller) ([]TenantView, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	out := []TenantView{}
	for _, t := range s.tenants {
		out = append(out, s.tenantView(t.Name))
	}
	return out, nil
}

// TenantDetails describes a tenant (admin).
func (s *Service) TenantDetails(c *Caller, name string) (*TenantView, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	if s.tenant(name) == nil {
		return nil, errForbidden("Tenant not available")
	}
	v := s.tenantView(name)
	return &v, nil
}

func (s *Service) tenantView(name string) TenantView {
	v := TenantView{Name: name, Clients: []string{}}
	for _, cl := range s.clients {
		if cl.allowedTenant(name) {
			v.Clients = append(v.Clients, cl.Name)
		}
	}
	return v
}

// Clusters lists the clusters (admin).
func (s *Service) Clusters(c *Caller) ([]ClusterView, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	out := []ClusterView{}
	for _, cl := range s.clusters {
		out = append(out, ClusterView{cl.name, cl.labels})
	}
	return out, nil
}

// ClusterDetails describes a cluster (admin).
func (s *Service) ClusterDetails(c *Caller, name string) (*ClusterView, error) {
	cl, err := s.adminCluster(c, name)
	if err != nil {
		return nil, err
	}
	return &ClusterView{cl.name, cl.labels}, nil
}

func (s *Service) adminCluster(c *Caller, name string) (*cluster, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	for _, cl := range s.clusters {
		if cl.name == name {
			return cl, nil
		}
	}
	return nil, errForbidden("Cluster not available")
}

// Portals lists the portals of every cluster (admin).
func (s *Service) Portals(ctx context.Context, c *Caller) ([]PortalView, error) {
	if _, err := roles(c, RoleAdmin); err != nil {
		return nil, err
	}
	var all []*portal
	for _, cl := range s.clusters {
		all = append(all, cl.portals...)
	}
	return portalViews(s.states(ctx, all)), nil
}

// ClusterPortals lists a cluster's portals (admin).
func (s *Service) ClusterPortals(ctx context.Context, c *Caller, cluster string) ([]PortalView, error) {
	cl, err := s.adminCluster(c, cluster)
	if err != nil {
		return nil, err
	}
	return portalViews(s.states(ctx, cl.portals)), nil
}

// ClusterPortal describes a portal of a cluster (admin).
func (s *Service) ClusterPortal(ctx context.Context, c *Caller, cluster, name string) (*PortalView, error) {
	st, err := s.adminPortal(ctx, c, cluster, name)
	if err != nil {
		return nil, err
	}
	v := st.view()
	return &v, nil
}

func (s *Service) adminPortal(ctx context.Context, c *Caller, cluster, name string) (*portalState, error) {
	cl, err := s.adminCluster(c, cluster)
	if err != nil {
		return nil, err
	}
	for _, p := range cl.portals {
		if p.name == name {
			return s.states(ctx, []*portal{p})[0], nil
		}
	}
	return nil, errForbidden("Portal not available")
}

// Environments lists a portal's environments (admin).
func (s *Service) Environments(ctx context.Context, c *Caller, cluster, portal string) ([]EnvironmentView, error) {
	st, err := s.adminPortal(ctx, c, cluster, portal)
	if err != nil {
		return nil, err
	}
	out := []EnvironmentView{}
	for _, e := range st.environments() {
		out = append(out, st.environmentView(e))
	}
	return out, nil
}

// Environment describes an environment of a portal (admin).
func (s *Service) Environment(ctx context.Context, c *Caller, cluster, portal, name string) (*EnvironmentView, error) {
	st, e, err := s.adminEnvironment(ctx, c, cluster, portal, name)
	if err != nil {
		return nil, err
	}
	v := st.environmentView(*e)
	return &v, nil
}

func (s *Service) adminEnvironment(ctx context.Context, c *Caller, cluster, portal, name string) (*portalState, *EnvironmentState, error) {
	st, err := s.adminPortal(ctx, c, cluster, portal)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range st.environments() {
		if e.Name == name {
			return st, &e, nil
		}
	}
	return nil, nil, errForbidden("Environment not available")
}

// Sessions lists an environment's sessions, those of user only when user
// is not empty (admin).
func (s *Service) Sessions(ctx context.Context, c *Caller, cluster, portal, environment, user string) ([]SessionView, error) {
	st, e, err := s.adminEnvironment(ctx, c, cluster, portal, environment)
	if err != nil {
		return nil, err
	}
	out := []SessionView{}
	for _, ss := range e.Sessions {
		if user == "" || ss.User == user {
			out = append(out, SessionView{Name: ss.Name, Cluster: st.portal.cluster.name, Portal: st.portal.name,
				Environment: e.Name, Workshop: e.Workshop, Phase: ss.Phase, User: ss.User})
		}
	}
	return out, nil
}

// Users lists the users holding sessions of an environment (admin).
func (s *Service) Users(ctx context.Context, c *Caller, cluster, portal, environment string) ([]string, error) {
	_, e, err := s.adminEnvironment(ctx, c, cluster, portal, environment)
	if err != nil {
		return nil, err
	}
	users := []string{}
	for _, ss := range e.Sessions {
		if ss.User != "" && !slices.Contains(users, ss.User) {
			users = append(users, ss.User)
		}
	}
	return users, nil
}

// Workshops lists the workshops a tenant offers (tenant given), or every
// portal's (admin, no tenant), as GET /api/v1/workshops does.
func (s *Service) Workshops(ctx context.Context, c *Caller, tenant string) ([]WorkshopView, error) {
	matched, err := roles(c, RoleAdmin, RoleTenant)
	if err != nil {
		return nil, err
	}
	if slices.Contains(matched, RoleTenant) {
		if tenant == "" {
			return nil, errInvalid("Missing tenant name")
		}
		if !c.client.allowedTenant(tenant) {
			return nil, errForbidden("Client access not permitted")
		}
	}
	var portals []*portal
	if tenant != "" {
		if portals, err = s.tenantPortals(tenant); err != nil {
			return nil, err
		}
	} else {
		for _, cl := range s.clusters {
			portals = append(portals, cl.portals...)
		}
	}
	// A workshop may be on several portals: listed once, with the title
	// and description of the last one found, as in Educates.
	byName := map[string]WorkshopView{}
	var order []string
	for _, st := range s.states(ctx, portals) {
		for _, e := range st.environments() {
			if e.Phase != phaseRunning {
				continue
			}
			if _, ok := byName[e.Workshop]; !ok {
				order = append(order, e.Workshop)
			}
			byName[e.Workshop] = WorkshopView{Name: e.Workshop, Title: e.Title, Description: e.Description,
				Labels: nonNilMap(e.Labels)}
		}
	}
	out := []WorkshopView{}
	for _, n := range order {
		out = append(out, byName[n])
	}
	return out, nil
}

// TenantWorkshops lists the workshops of a tenant, as GET
// /api/v1/tenants/{tenant}/workshops does.
func (s *Service) TenantWorkshops(ctx context.Context, c *Caller, tenant string) ([]WorkshopView, error) {
	if tenant == "" {
		return nil, errInvalid("Missing tenant name")
	}
	return s.Workshops(ctx, c, tenant)
}

// tenantPortals returns the portals a tenant selects. A tenant that
// selects neither clusters nor portals has none (Educates' documented
// rule); a missing selector of the two selects everything.
func (s *Service) tenantPortals(name string) ([]*portal, error) {
	t := s.tenant(name)
	if t == nil {
		return nil, errForbidden("Tenant not available")
	}
	if t.Clusters == nil && t.Portals == nil {
		return nil, nil
	}
	var out []*portal
	for _, cl := range s.clusters {
		if t.Clusters != nil && !t.Clusters.matches(cl.name, cl.labels) {
			continue
		}
		for _, p := range cl.portals {
			// The configured labels are known without asking the portal, so
			// a portal that does not answer is still selected (and skipped
			// later) the same way.
			if t.Portals == nil || t.Portals.matches(p.name, p.labels) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// portalState is a portal with what it answered (nil state: it did not).
type portalState struct {
	portal *portal
	state  *PortalState
}

const (
	phaseRunning     = "Running"
	phaseUnavailable = "Unavailable"
)

// states asks the portals for their state, all at once, each within the
// service's timeout. A portal that does not answer is logged and shown
// without environments.
func (s *Service) states(ctx context.Context, portals []*portal) []*portalState {
	out := make([]*portalState, len(portals))
	var wg sync.WaitGroup
	for i, p := range portals {
		out[i] = &portalState{portal: p}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			st, err := p.backend.State(ctx)
			if err != nil {
				s.log.Warn("portal did not answer", "cluster", p.cluster.name, "portal", p.name, "err", err)
				return
			}
			out[i].state = st
		})
	}
	wg.Wait()
	return out
}

func (st *portalState) environments() []EnvironmentState {
	if st.state == nil {
		return nil
	}
	return st.state.Environments
}

func (st *portalState) labels() map[string]string {
	m := map[string]string{}
	if st.state != nil {
		maps.Copy(m, st.state.Labels)
	}
	maps.Copy(m, st.portal.labels)
	return m
}

func (st *portalState) view() PortalView {
	v := PortalView{Name: st.portal.name, Labels: st.labels(), Cluster: st.portal.cluster.name,
		URL: st.portal.url, Phase: phaseUnavailable}
	if p := st.state; p != nil {
		v.UID, v.Generation, v.Capacity, v.Allocated, v.Phase = p.UID, p.Generation, p.Capacity, p.Allocated, phaseRunning
		if p.URL != "" {
			v.URL = p.URL
		}
	}
	return v
}

func (st *portalState) environmentView(e EnvironmentState) EnvironmentView {
	v := EnvironmentView{Name: e.Name, Workshop: e.Workshop, Title: e.Title, Description: e.Description,
		Labels: nonNilMap(e.Labels), Cluster: st.portal.cluster.name, Portal: st.portal.name, Capacity: e.Capacity,
		Reserved: e.Reserved, Allocated: e.Allocated, Available: e.Available, Phase: e.Phase}
	if st.state != nil {
		v.UID = st.state.UID + "/" + e.Name
	}
	return v
}

func portalViews(states []*portalState) []PortalView {
	out := []PortalView{}
	for _, st := range states {
		out = append(out, st.view())
	}
	return out
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
