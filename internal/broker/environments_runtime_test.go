package broker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// envRuntime is the fake runtime with environments: it records what each
// SyncEnvironments call wanted, and can fail them.
type envRuntime struct {
	*runtimetest.Runtime
	mu    sync.Mutex
	syncs [][]runtime.EnvironmentSpec
	fail  error
}

func (r *envRuntime) SyncEnvironments(ctx context.Context, want []runtime.EnvironmentSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, slices.Clone(want))
	return r.fail
}

func (r *envRuntime) last() []runtime.EnvironmentSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.syncs) == 0 {
		return nil
	}
	return r.syncs[len(r.syncs)-1]
}

func TestEnvironmentsSyncedWithRuntime(t *testing.T) {
	defs := portaltest.Definitions(config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
	objects := []map[string]any{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "shared"}}}
	defs.Workshops["lab"].EnvironmentObjects = objects
	defs.Workshops["lab"].Image = "example/lab:1"
	rt := &envRuntime{Runtime: runtimetest.New()}
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: rt})

	got := rt.last()
	if len(got) != 1 || got[0].Name != "portal-w01" || got[0].Workshop != "lab" || got[0].Portal != "portal" ||
		len(got[0].Objects) != 1 || got[0].Objects[0]["kind"] != "ConfigMap" {
		t.Fatalf("last sync wanted %+v, want portal-w01 of lab with its objects", got)
	}
	// The session spec carries the workshop's Kubernetes fields.
	sessions := p.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want the initial one", len(sessions))
	}
	if spec, ok := rt.Spec(sessions[0].Name); !ok || spec.Cluster.Image != "example/lab:1" {
		t.Errorf("session spec image %q, want the workshop's", spec.Cluster.Image)
	}

	// Removing the workshop stops its environment; once its sessions are
	// gone, the runtime is told to remove it.
	defs2 := portaltest.Definitions(config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
	defs2.Portal.Entries = nil
	if err := p.Broker.Apply(ctx, defs2); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	for _, env := range p.Environments() {
		if env.State != store.EnvStopped {
			t.Fatalf("environment %s is %s, want stopped", env.Name, env.State)
		}
	}
	if got := rt.last(); len(got) != 0 {
		t.Fatalf("last sync after the environment stopped wanted %+v, want none", got)
	}
}

func TestEnvironmentSyncFailureIsReported(t *testing.T) {
	defs := portaltest.Definitions(config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
	rt := &envRuntime{Runtime: runtimetest.New()}
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: rt})
	rt.mu.Lock()
	rt.fail = errors.New("cluster unreachable")
	rt.mu.Unlock()
	if _, err := p.Broker.Reconcile(ctx); err == nil || !errors.Is(err, rt.fail) {
		t.Fatalf("reconcile: %v, want the sync failure", err)
	}
}
