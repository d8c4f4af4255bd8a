package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	runtimeconv "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
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
	objects := map[string][]*unstructured.Unstructured{}
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
			objects[gvk.Kind] = append(objects[gvk.Kind], u.DeepCopy())
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

	// The portal runs as several replicas on the kubernetes runtime, as
	// the account that the ClusterRole is bound to.
	for _, d := range objects["Deployment"] {
		var dep appsv1.Deployment
		if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructured(d.Object, &dep); err != nil {
			t.Fatal(err)
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
			t.Errorf("deployment %s: replicas %v, want several", dep.Name, dep.Spec.Replicas)
		}
		if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--runtime=kubernetes") {
			t.Errorf("deployment %s: args %q lack --runtime=kubernetes", dep.Name, args)
		} else if strings.Contains(args, "--database") {
			t.Errorf("deployment %s: the database URL, password and all, is on the command line: %q", dep.Name, args)
		}
		// Secrets come from Secrets, through the environment; every
		// replica gets the same key for the sealed config passwords.
		fromSecret := map[string]bool{}
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			fromSecret[e.Name] = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
		for _, name := range []string{"PORTICO_DATABASE_URL", "PORTICO_SECRET_KEY"} {
			if !fromSecret[name] {
				t.Errorf("deployment %s: %s does not come from a Secret", dep.Name, name)
			}
		}
		bound := false
		for _, b := range objects["ClusterRoleBinding"] {
			var crb rbacv1.ClusterRoleBinding
			if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructured(b.Object, &crb); err != nil {
				t.Fatal(err)
			}
			for _, sub := range crb.Subjects {
				bound = bound || sub.Kind == rbacv1.ServiceAccountKind && sub.Name == dep.Spec.Template.Spec.ServiceAccountName &&
					sub.Namespace == kustomization.Namespace && crb.RoleRef.Kind == "ClusterRole" && crb.RoleRef.Name == "portico"
			}
		}
		if !bound {
			t.Errorf("deployment %s runs as %q, which no ClusterRoleBinding binds to the portico ClusterRole", dep.Name, dep.Spec.Template.Spec.ServiceAccountName)
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

// TestDeployRBACSuffices runs sessions as the portal's account of
// deploy/kubernetes/rbac.yaml, with only the rights it grants: a rule
// missing there fails here, as it would in a cluster.
func TestDeployRBACSuffices(t *testing.T) {
	requireCluster(t)
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(cluster.Client.Discovery()))
	// The account, role and binding, for real this time.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "portico"}}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	readYAML(t, filepath.Join(deployDir, "rbac.yaml"), func(doc map[string]any) {
		b, _ := json.Marshal(doc)
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		if _, err := ri.Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s %s: %v", gvk.Kind, u.GetName(), err)
		}
	})
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:portico:portico",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:portico", "system:authenticated"},
	}
	// A right missing for what the runtime does without failing (watching
	// events) shows as a warning.
	var logs bytes.Buffer
	r, err := New(Options{Config: cfg, Portal: "rbac", Image: testImage, StartTimeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	env := runtime.EnvironmentSpec{Name: "rbac-w01", Workshop: "lab", Portal: "rbac", Objects: []map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "shared"}},
	}}
	if err := r.SyncEnvironments(ctx, []runtime.EnvironmentSpec{env}); err != nil {
		t.Fatalf("environment as the portal's account: %v", err)
	}
	spec := specOf("rbac", "rbac-w01", "s001")
	// A config secret of the session's name that its namespace does not
	// own (left by an earlier namespace of that name) is replaced.
	stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: spec.Session + "-config", Namespace: env.Name},
		StringData: map[string]string{"session.json": `{"config_password":"stale"}`}}
	if _, err := cluster.Client.CoreV1().Secrets(env.Name).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec.Cluster = runtime.Cluster{
		Budget:         "small",
		SessionObjects: []map[string]any{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "s"}}},
		RequestObjects: []map[string]any{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "d"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "d"}},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "nginx"}}},
				},
			}}},
	}
	inst, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start as the portal's account: %v", err)
	}
	if err := r.Allocate(ctx, inst, spec.ConfigPassword, runtime.Allocation{User: runtime.User{Username: "alice"}}); err != nil {
		t.Fatalf("allocate as the portal's account: %v", err)
	}
	cfgSecret, err := cluster.Client.CoreV1().Secrets(env.Name).Get(ctx, spec.Session+"-config", metav1.GetOptions{})
	if err != nil || len(cfgSecret.OwnerReferences) != 1 || !strings.Contains(string(cfgSecret.Data["session.json"]), spec.ConfigPassword) {
		t.Errorf("config secret %+v, %v: want the session's, not the one left before", cfgSecret, err)
	}
	// A restarted portal lists and adopts it.
	again, err := New(Options{Config: cfg, Portal: "rbac", Image: testImage, StartTimeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if list, err := again.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("list as the portal's account after a restart: %v, %v", list, err)
	}
	if adopted, err := again.Start(ctx, spec); err != nil || adopted != inst {
		t.Fatalf("adopt as the portal's account: %+v, %v", adopted, err)
	}
	if err := again.Stop(ctx, spec.Session); err != nil {
		t.Fatalf("stop as the portal's account: %v", err)
	}
	if left := hostLeft(spec.Session, env.Name); len(left) > 0 {
		t.Errorf("left of the host after a stop as the portal's account: %v", left)
	}
	// A start whose pod cannot pull its image fails with the reason and
	// leaves nothing behind.
	failing := specOf("rbac", "rbac-w01", "s002")
	fates.Store(failing.Session, kubetest.Fate{Reason: "ErrImagePull", Message: "not found"})
	if _, err := r.Start(ctx, failing); err == nil || !strings.Contains(err.Error(), "ErrImagePull") {
		t.Fatalf("failing start as the portal's account: %v", err)
	}
	waitFor(t, "the failed start's namespace to go", 5*time.Second, namespaceEnding(failing.Session))
	if left := hostLeft(failing.Session, env.Name); len(left) > 0 {
		t.Errorf("left of the failed start's host: %v", left)
	}
	if err := r.SyncEnvironments(ctx, nil); err != nil {
		t.Fatalf("environment removal as the portal's account: %v", err)
	}
	if logs.Len() > 0 {
		t.Errorf("warnings as the portal's account:\n%s", logs.String())
	}
	// Beyond sessions, the account can do little: no cluster roles of its
	// own making, no nodes.
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a cluster role as the portal's account: %v, want forbidden", err)
	}
	if _, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing nodes as the portal's account: %v, want forbidden", err)
	}
}
