package educatesk8s

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// The labels Educates puts on the resources of a portal, by which the
// lookup service tells whose they are.
const (
	LabelPortal          = Group + "/portal.name"
	LabelPortalUID       = Group + "/portal.uid"
	LabelEnvironment     = Group + "/environment.name"
	labelWorkshop        = Group + "/workshop.name"
	labelComponent       = Group + "/component"
	environmentComponent = "environment"
	sessionComponent     = "session"
)

// Reader is what the publisher reads of the portal: a *broker.Broker.
type Reader interface {
	Catalog(ctx context.Context, q broker.CatalogQuery) (broker.PortalView, []broker.EnvironmentView, error)
	Sessions(ctx context.Context, caller store.User, search string) ([]broker.SessionView, error)
}

// Credentials are those the portal's accounts have, as Educates publishes
// them in status.educates: the educates CLI and the lookup service log in
// with them. Empty ones are left out of the status.
type Credentials struct {
	AdminUsername, AdminPassword string
	RobotUsername, RobotPassword string
	ClientID, ClientSecret       string
}

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	Client dynamic.Interface
	// Portal is the TrainingPortal the portal serves: the owner of the
	// resources written, so that the cluster deletes them with it.
	Portal Portal
	Log    *slog.Logger
	// Resync is how often everything is written again, repairing what
	// others changed or deleted (default: 5 minutes).
	Resync time.Duration
}

// Served is the running portal whose state is published.
type Served struct {
	Reader      Reader
	URL         string // public URL of the portal
	Credentials Credentials
}

// Publisher keeps the status of the TrainingPortal and the
// WorkshopEnvironment and WorkshopSession resources of a portal current.
// It is level-triggered: each broker event (Emit) wakes it to compare the
// portal's state with what it wrote and write the difference. Writes are
// idempotent (server-side apply, merge patches of status), so replicas
// sharing a database may all publish; one that wrote from an older view
// is corrected by the next write of another, or by its own next pass.
type Publisher struct {
	opts   PublisherOptions
	served Served
	wake   chan struct{}
	// written holds, by resource and name, a digest of what was last
	// written: only what changed is written again.
	written map[string]string
}

// NewPublisher returns a publisher; Run runs it. It is made before the
// broker whose events wake it, and runs once that serves.
func NewPublisher(opts PublisherOptions) *Publisher {
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Minute
	}
	return &Publisher{opts: opts, wake: make(chan struct{}, 1)}
}

// Emit wakes the publisher; it never blocks (broker.Events).
func (p *Publisher) Emit(broker.Event) { nudge(p.wake) }

// statusReader is the caller the publisher reads sessions as: every live
// session is its business.
var statusReader = store.User{Username: "portico-kubernetes-status", Role: store.RoleAdmin}

// Run publishes the state of served until ctx ends.
func (p *Publisher) Run(ctx context.Context, served Served) {
	p.served = served
	resync := time.NewTicker(p.opts.Resync)
	defer resync.Stop()
	full := true
	for {
		if err := p.sync(ctx, full); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.opts.Log.Error("publishing the portal's state to the cluster", "err", err)
			time.AfterFunc(time.Second, func() { nudge(p.wake) })
		}
		full = false
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			full = true
		case <-p.wake:
			// Events come in bursts (a request allocates, starts and
			// reserves): one pass for the burst.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// sync writes what differs from the portal's state; full forgets what was
// written, and writes everything again.
func (p *Publisher) sync(ctx context.Context, full bool) error {
	if err := p.readBack(ctx, full); err != nil {
		return err
	}
	// The cluster was read before the portal's state: a resource another
	// replica made for a session started since is seen live below.
	_, envs, err := p.served.Reader.Catalog(ctx, broker.CatalogQuery{
		States: []store.EnvState{store.EnvStarting, store.EnvRunning, store.EnvStopping}})
	if err != nil {
		return err
	}
	sessions, err := p.served.Reader.Sessions(ctx, statusReader, "")
	if err != nil {
		return err
	}
	want := map[string]resource{}
	for _, v := range envs {
		r := p.environment(v)
		want[r.key()] = r
	}
	for _, v := range sessions {
		r := p.session(v)
		want[r.key()] = r
	}
	portal := p.portalStatus()
	if err := p.write(ctx, "trainingportals/"+p.opts.Portal.Name, portal, func() error {
		return patchStatus(ctx, p.opts.Client, TrainingPortals, p.opts.Portal.Name, portal)
	}); err != nil {
		return err
	}
	for key, r := range want {
		if err := p.write(ctx, key, r, func() error { return p.apply(ctx, r) }); err != nil {
			return err
		}
	}
	for key := range p.written {
		if _, ok := want[key]; ok || strings.HasPrefix(key, "trainingportals/") {
			continue
		}
		resource, name, _ := strings.Cut(key, "/")
		gvr := schema.GroupVersionResource{Group: Group, Version: Version, Resource: resource}
		err := p.opts.Client.Resource(gvr).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		delete(p.written, key)
	}
	return nil
}

// write calls do unless what it writes, v, is what was written last.
func (p *Publisher) write(ctx context.Context, key string, v any, do func() error) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	digest := fmt.Sprintf("%x", sha256.Sum256(data))
	if p.written[key] == digest {
		return nil
	}
	if err := do(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	p.written[key] = digest
	return nil
}

// readBack finds the resources the cluster holds of this portal, those
// other replicas wrote among them, so that a pass deletes those of
// sessions ended on another replica too. It keeps what this publisher
// wrote of them unless forget is set.
func (p *Publisher) readBack(ctx context.Context, forget bool) error {
	before := p.written
	if forget {
		before = nil
	}
	p.written = map[string]string{}
	portal := "trainingportals/" + p.opts.Portal.Name
	if d, ok := before[portal]; ok {
		p.written[portal] = d
	}
	for _, gvr := range []schema.GroupVersionResource{WorkshopEnvironments, WorkshopSessions} {
		list, err := p.opts.Client.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: LabelPortal + "=" + p.opts.Portal.Name})
		if err != nil {
			return fmt.Errorf("list %s: %w", gvr.Resource, err)
		}
		for _, item := range list.Items {
			key := gvr.Resource + "/" + item.GetName()
			p.written[key] = before[key] // "" when its content is unknown
		}
	}
	return nil
}

// portalStatus is status.educates of the TrainingPortal as the Educates
// operator writes it once the portal runs (its message is the Source's).
func (p *Publisher) portalStatus() map[string]any {
	c := p.served.Credentials
	status := map[string]any{"phase": "Running", "url": p.served.URL}
	account := func(user, password string) map[string]any {
		m := map[string]any{}
		if user != "" {
			m["username"] = user
		}
		if password != "" {
			m["password"] = password
		}
		return m
	}
	status["credentials"] = map[string]any{
		"admin": account(c.AdminUsername, c.AdminPassword),
		"robot": account(c.RobotUsername, c.RobotPassword),
	}
	robot := map[string]any{}
	if c.ClientID != "" {
		robot["id"] = c.ClientID
	}
	if c.ClientSecret != "" {
		robot["secret"] = c.ClientSecret
	}
	status["clients"] = map[string]any{"robot": robot}
	return status
}

// resource is a WorkshopEnvironment or WorkshopSession to write: the
// object and its status.educates.
type resource struct {
	GVR    schema.GroupVersionResource
	Object map[string]any
	Status map[string]any
}

func (r resource) key() string {
	md := r.Object["metadata"].(map[string]any)
	return r.GVR.Resource + "/" + md["name"].(string)
}

func (p *Publisher) apply(ctx context.Context, r resource) error {
	u := &unstructured.Unstructured{Object: r.Object}
	api := p.opts.Client.Resource(r.GVR)
	if _, err := api.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return err
	}
	return patchStatus(ctx, p.opts.Client, r.GVR, u.GetName(), r.Status)
}

func (p *Publisher) object(kind, name string, labels map[string]any, spec map[string]any) map[string]any {
	labels[LabelPortal] = p.opts.Portal.Name
	labels[LabelPortalUID] = string(p.opts.Portal.UID)
	return map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       kind,
		"metadata": map[string]any{
			"name":   name,
			"labels": labels,
			"ownerReferences": []any{map[string]any{
				"apiVersion": Group + "/" + Version, "kind": "TrainingPortal",
				"name": p.opts.Portal.Name, "uid": string(p.opts.Portal.UID),
			}},
		},
		"spec": spec,
	}
}

// environmentPhases are the phases of Educates' WorkshopEnvironment.
var environmentPhases = map[store.EnvState]string{
	store.EnvStarting: "Starting", store.EnvRunning: "Running", store.EnvStopping: "Stopping",
}

func (p *Publisher) environment(v broker.EnvironmentView) resource {
	env := v.Environment
	labels := []any{}
	for _, k := range sortedKeys(env.Labels) {
		labels = append(labels, map[string]any{"name": k, "value": env.Labels[k]})
	}
	return resource{
		GVR: WorkshopEnvironments,
		Object: p.object("WorkshopEnvironment", env.Name, map[string]any{
			labelComponent: environmentComponent,
			labelWorkshop:  env.Workshop.Name,
		}, map[string]any{"workshop": map[string]any{"name": env.Key}}),
		Status: map[string]any{
			"phase":     environmentPhases[env.State],
			"capacity":  env.Capacity,
			"reserved":  env.Reserved,
			"allocated": v.Allocated,
			"available": v.Available,
			"workshop": map[string]any{
				"name":       env.Workshop.Name,
				"generation": env.Workshop.Generation,
				"spec": map[string]any{
					"title":       env.Workshop.Title,
					"description": env.Workshop.Description,
					"labels":      labels,
				},
			},
		},
	}
}

// sessionPhase is the phase of Educates' WorkshopSession for a session:
// Available while reserved for nobody, Allocated once somebody's.
func sessionPhase(s store.Session) string {
	switch {
	case s.State == store.Stopping:
		return "Stopping"
	case s.Owner != 0:
		return "Allocated"
	case s.State == store.Starting:
		return "Starting"
	default:
		return "Available"
	}
}

func (p *Publisher) session(v broker.SessionView) resource {
	s := v.Session
	var user any
	if s.Owner != 0 {
		user = s.OwnerName
	}
	return resource{
		GVR: WorkshopSessions,
		Object: p.object("WorkshopSession", s.Name, map[string]any{
			labelComponent:   sessionComponent,
			labelWorkshop:    v.Environment.Workshop.Name,
			LabelEnvironment: s.Environment,
		}, map[string]any{
			"workshop":    map[string]any{"name": v.Environment.Key},
			"environment": map[string]any{"name": s.Environment},
			"session":     map[string]any{"id": s.ID},
		}),
		Status: map[string]any{"phase": sessionPhase(s), "user": user},
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
