package local

import (
	"context"
	"fmt"
	"strings"

	"github.com/portico-dev/portico/internal/runtime"
)

// A workshop written for Educates may set what only a cluster gives a
// meaning: the image of its container, a namespace budget, Kubernetes
// resources to create, an ingress to a cluster service. The local runtime
// runs such a workshop without them and says so once per workshop, naming
// the fields, rather than leaving an organiser to wonder where they went.

// clusterOnly names the fields of spec's workshop that the local runtime
// leaves aside.
func clusterOnly(spec runtime.Spec) []string {
	var fields []string
	if spec.Cluster.Image != "" {
		fields = append(fields, "spec.workshop.image")
	}
	if spec.Cluster.Budget != "" {
		fields = append(fields, "spec.session.namespaces.budget")
	}
	if len(spec.Cluster.SessionObjects) > 0 {
		fields = append(fields, "spec.session.objects")
	}
	if len(spec.Cluster.RequestObjects) > 0 {
		fields = append(fields, "spec.request.objects")
	}
	for i, in := range spec.Ingresses {
		if !inSession(in.Host) {
			fields = append(fields, fmt.Sprintf("spec.session.ingresses[%d].host", i))
		}
	}
	return fields
}

// inSession reports whether an ingress's host is the session itself.
func inSession(host string) bool {
	switch strings.ToLower(host) {
	case "", "localhost", "127.0.0.1", "::1", "[::1]":
		return true
	}
	return false
}

func (r *Runtime) warnClusterOnly(spec runtime.Spec) {
	if fields := clusterOnly(spec); len(fields) > 0 {
		r.warnOnce("workshop "+spec.Workshop+": fields for Kubernetes that the local runtime does not use (run with --runtime kubernetes for them)",
			"workshop", spec.Workshop, "fields", strings.Join(fields, ", "))
	}
}

// SyncEnvironments makes the local runtime an EnvironmentRuntime for one
// reason: to say that it does not create an environment's
// spec.environment.objects. It keeps nothing per environment.
func (r *Runtime) SyncEnvironments(ctx context.Context, want []runtime.EnvironmentSpec) error {
	for _, env := range want {
		if len(env.Objects) > 0 {
			r.warnOnce("workshop "+env.Workshop+": spec.environment.objects are Kubernetes resources, which the local runtime does not create",
				"workshop", env.Workshop)
		}
	}
	return nil
}
