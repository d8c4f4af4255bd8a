package deploy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// TestServerSideDryRun sends every object of the chart, rendered with its
// defaults and with the other choices of values.yaml, and of
// deploy/kubernetes, to a real API server as a server-side apply with
// dryRun=All and strict field validation: the server checks each in full
// (schemas, unknown or misspelled fields, RBAC rules and the right to
// grant them) and stores nothing. Only the namespaces are made for real,
// since namespaced objects are checked inside an existing one.
func TestServerSideDryRun(t *testing.T) {
	helmBinary(t) // before the cluster: a skip should cost nothing
	cluster, err := kubetest.Start()
	if errors.Is(err, kubetest.ErrNoBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(cluster.Client.Discovery()))

	apply := func(t *testing.T, namespace string, objs []*unstructured.Unstructured) {
		t.Helper()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
		if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		force := true
		for _, u := range objs {
			gvk := u.GroupVersionKind()
			if gvk.Kind == "Namespace" {
				continue // made above
			}
			m, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s %s: %v", gvk, u.GetName(), err)
				continue
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				if u.GetNamespace() != namespace {
					t.Errorf("%s %s is in namespace %q, want %q", gvk.Kind, u.GetName(), u.GetNamespace(), namespace)
					continue
				}
				ri = dyn.Resource(m.Resource).Namespace(namespace)
			}
			body, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
				DryRun:          []string{metav1.DryRunAll},
				FieldManager:    "portico-deploy-test",
				FieldValidation: metav1.FieldValidationStrict,
				Force:           &force,
			}); err != nil {
				t.Errorf("%s %s: %v", gvk.Kind, u.GetName(), err)
			}
		}
	}

	t.Run("chart defaults", func(t *testing.T) {
		apply(t, "portico", mustRender(t, "portico", "portico", nil))
	})
	t.Run("chart with values", func(t *testing.T) {
		apply(t, "events", mustRender(t, "spring", "events", map[string]any{
			"postgresql":       map[string]any{"enabled": false},
			"externalDatabase": map[string]any{"existingSecret": "db"},
			"url":              "https://workshops.example.org",
			"sessionDomain":    "sessions.example.org",
			"ingress":          map[string]any{"tlsSecretName": "wildcard", "className": "nginx", "annotations": map[string]any{"example.org/a": "b"}},
			"rbac": map[string]any{"workshopObjectRules": []any{
				map[string]any{"apiGroups": []string{"networking.k8s.io"}, "resources": []string{"ingresses"}, "verbs": []string{"create", "patch"}},
			}},
			"readinessProbe": map[string]any{"path": "/readyz"},
			"extraEnv":       []any{map[string]any{"name": "TZ", "value": "UTC"}},
			"nodeSelector":   map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":    []any{map[string]any{"key": "workshops", "operator": "Exists"}},
			"podAnnotations": map[string]any{"example.org/scrape": "true"},
		}))
	})
	t.Run("deploy/kubernetes", func(t *testing.T) {
		namespace, objs := kustomizeObjects(t)
		apply(t, namespace, objs)
	})
}
