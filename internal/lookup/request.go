package lookup

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// WorkshopRequest is the body of POST /api/v1/workshops.
type WorkshopRequest struct {
	TenantName     string      `json:"tenantName"`
	WorkshopName   string      `json:"workshopName"`
	ClientUserID   string      `json:"clientUserId"`
	ClientActionID string      `json:"clientActionId"`
	ClientIndexURL string      `json:"clientIndexUrl"`
	WorkshopParams []Parameter `json:"workshopParams"`
}

// SessionAnswer is the answer to a workshop request: where to send the
// browser, and which session it is, for the record.
type SessionAnswer struct {
	TenantName           string `json:"tenantName"`
	ClusterName          string `json:"clusterName"`
	PortalName           string `json:"portalName"`
	EnvironmentName      string `json:"environmentName"`
	SessionName          string `json:"sessionName"`
	ClientUserID         string `json:"clientUserId"`
	SessionActivationURL string `json:"sessionActivationUrl"`
}

// RequestWorkshop gives the user a session of the workshop from one of the
// tenant's portals: the session the user already holds there if any, else
// a new one from the environment that Educates' ranking puts first among
// those that can take it.
func (s *Service) RequestWorkshop(ctx context.Context, c *Caller, r WorkshopRequest) (*SessionAnswer, error) {
	if _, err := roles(c, RoleAdmin, RoleTenant); err != nil {
		return nil, err
	}
	if r.TenantName == "" {
		return nil, errInvalid("Missing tenantName")
	}
	if r.WorkshopName == "" {
		return nil, errInvalid("Missing workshopName")
	}
	for _, p := range r.WorkshopParams {
		if strings.TrimSpace(p.Name) == "" {
			return nil, errInvalid("Each of workshopParams needs a name")
		}
	}
	if !c.client.allowedTenant(r.TenantName) {
		return nil, errForbidden("Client not allowed access to tenant")
	}
	portals, err := s.tenantPortals(r.TenantName)
	if err != nil {
		return nil, err
	}
	var hosting []*portalState
	for _, st := range s.states(ctx, portals) {
		if slices.ContainsFunc(st.environments(), func(e EnvironmentState) bool { return e.Workshop == r.WorkshopName }) {
			hosting = append(hosting, st)
		}
	}
	if len(hosting) == 0 {
		return nil, errUnavailable("Workshop not available")
	}
	answer := func(st *portalState, env string, a *Allocation) *SessionAnswer {
		return &SessionAnswer{TenantName: r.TenantName, ClusterName: st.portal.cluster.name, PortalName: st.portal.name,
			EnvironmentName: env, SessionName: a.Session, ClientUserID: r.ClientUserID, SessionActivationURL: a.ActivationURL}
	}
	if r.ClientUserID != "" {
		for _, st := range hosting {
			for _, e := range st.environments() {
				if e.Workshop != r.WorkshopName {
					continue
				}
				for _, ss := range e.Sessions {
					if ss.User != r.ClientUserID {
						continue
					}
					a, err := s.request(ctx, st, e.Name, SessionRequest{User: r.ClientUserID, Session: ss.Name,
						IndexURL: r.ClientIndexURL})
					if err == nil {
						return answer(st, e.Name, a), nil
					}
					if isInvalid(err) {
						return nil, err
					}
				}
			}
		}
	}
	var candidates []candidate
	for _, st := range hosting {
		for _, e := range st.environments() {
			if e.Workshop == r.WorkshopName && e.Phase == phaseRunning {
				candidates = append(candidates, candidate{st, e})
			}
		}
	}
	for _, cd := range rank(candidates) {
		a, err := s.request(ctx, cd.portal, cd.env.Name, SessionRequest{User: r.ClientUserID,
			IndexURL: r.ClientIndexURL, Parameters: r.WorkshopParams})
		if err == nil {
			return answer(cd.portal, cd.env.Name, a), nil
		}
		// A request the portal finds malformed is so on every portal.
		if isInvalid(err) {
			return nil, err
		}
	}
	return nil, errUnavailable("Workshop not available")
}

func (s *Service) request(ctx context.Context, st *portalState, env string, r SessionRequest) (*Allocation, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	a, err := st.portal.backend.Request(ctx, env, r)
	if err != nil && !isInvalid(err) {
		s.log.Warn("portal gave no session", "cluster", st.portal.cluster.name, "portal", st.portal.name,
			"environment", env, "err", err)
	}
	return a, err
}

func isInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Invalid
}

type candidate struct {
	portal *portalState
	env    EnvironmentState
}

// rank orders the environments best first, with the keys of Educates'
// sort_workshop_environments: portal has room, environment has room, then
// (the portal's room left, the environment's reserved sessions), then (the
// portal's room left, the environment's room left). A portal or
// environment without a limit counts as one place left, so that those
// with a known capacity come first.
func rank(cs []candidate) []candidate {
	type score [6]int
	key := func(c candidate) score {
		p, e := c.portal.state, c.env
		portalRoom, envRoom := 1, 1
		if p.Capacity > 0 {
			portalRoom = p.Capacity - p.Allocated
		}
		if e.Capacity > 0 {
			envRoom = e.Capacity - e.Allocated
		}
		return score{b2i(portalRoom > 0), b2i(envRoom > 0), portalRoom, e.Available, portalRoom, envRoom}
	}
	out := slices.Clone(cs)
	slices.SortStableFunc(out, func(a, b candidate) int {
		ka, kb := key(a), key(b)
		for i := range ka {
			if ka[i] != kb[i] {
				return kb[i] - ka[i]
			}
		}
		return 0
	})
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
