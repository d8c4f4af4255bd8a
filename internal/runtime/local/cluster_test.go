package local

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/runtime"
)

func TestClusterOnlyFieldsNamedOnce(t *testing.T) {
	spec := testSpec("portal-w01-s001")
	if got := clusterOnly(spec); len(got) != 0 {
		t.Fatalf("a plain workshop: %q", got)
	}
	spec.Cluster = runtime.Cluster{Image: "jdk17-environment:*", Budget: "small",
		SessionObjects: []map[string]any{{"kind": "Pod"}}, RequestObjects: []map[string]any{{"kind": "Secret"}}}
	spec.Ingresses = []runtime.Ingress{{Name: "app", Port: 8080}, {Name: "svc", Host: "svc.ns.svc.cluster.local", Port: 80}}
	want := []string{"spec.workshop.image", "spec.session.namespaces.budget", "spec.session.objects",
		"spec.request.objects", "spec.session.ingresses[1].host"}
	if got := clusterOnly(spec); !slices.Equal(got, want) {
		t.Errorf("fields %q, want %q", got, want)
	}

	var logs bytes.Buffer
	r := &Runtime{log: slog.New(slog.NewTextHandler(&logs, nil))}
	r.warnClusterOnly(spec)
	r.warnClusterOnly(spec)
	r.SyncEnvironments(t.Context(), []runtime.EnvironmentSpec{{Name: "portal-w01", Workshop: "lab", Objects: []map[string]any{{"kind": "ConfigMap"}}}})
	r.SyncEnvironments(t.Context(), []runtime.EnvironmentSpec{{Name: "portal-w01", Workshop: "lab", Objects: []map[string]any{{"kind": "ConfigMap"}}}})
	out := logs.String()
	if strings.Count(out, "level=WARN") != 2 || !strings.Contains(out, strings.Join(want, ", ")) ||
		!strings.Contains(out, "spec.environment.objects") {
		t.Errorf("warnings:\n%s", out)
	}
}
