package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// deployDir holds the manifests that run Portico in a cluster.
const deployDir = "../../../deploy/kubernetes"

// TestDeployManifests sends every manifest of the kustomization to the API
// server as a server-side dry run: the server validates each object in
// full (schemas, RBAC rules, references), and nothing is stored. Only the
// namespace is created for real, as namespaced objects are checked inside
// an existing one.
func TestDeployManifests(t *testing.T) {
	requireCluster(t)
	var kustomization struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(deployDir, "kustomization.yaml"), func(doc map[string]any) {
		b, _ := yaml.Marshal(doc)
		if err := yaml.Unmarshal(b, &kustomization); err != nil {
			t.Fatal(err)
		}
	})
	if len(kustomization.Resources) == 0 || kustomization.Namespace == "" {
		t.Fatalf("kustomization lists no resources or namespace: %+v", kustomization)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kustomization.Namespace}}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(cluster.Client.Discovery()))
	kinds := map[string]int{}
	for _, file := range kustomization.Resources {
		readYAML(t, filepath.Join(deployDir, file), func(doc map[string]any) {
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(b); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s %s: %v", file, gvk, u.GetName(), err)
			}
			kinds[gvk.Kind]++
			if gvk.Kind == "Namespace" {
				return // created above
			}
			res := dyn.Resource(m.Resource)
			var ri dynamic.ResourceInterface = res
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				if u.GetNamespace() == "" {
					u.SetNamespace(kustomization.Namespace)
				}
				if u.GetNamespace() != kustomization.Namespace {
					t.Errorf("%s: %s %s is in namespace %s, not the kustomization's", file, gvk.Kind, u.GetName(), u.GetNamespace())
				}
				ri = res.Namespace(u.GetNamespace())
			}
			if _, err := ri.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("%s: %s %s: %v", file, gvk.Kind, u.GetName(), err)
			}
		})
	}
	for _, k := range []string{"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Ingress", "StatefulSet", "ConfigMap", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("the manifests have no %s", k)
		}
	}
	for _, f := range []string{"Dockerfile", "Dockerfile.session"} {
		if _, err := os.Stat(filepath.Join(deployDir, f)); err != nil {
			t.Error(err)
		}
	}
}

// readYAML calls fn with each document of the YAML file at path.
func readYAML(t *testing.T, path string, fn func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			fn(doc)
		}
	}
}
