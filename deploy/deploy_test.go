// Package deploy_test checks what runs Portico outside `go run`: the Helm
// chart (rendered by a real helm, then sent to a real API server as a
// server-side dry run), the kustomize manifests beside it, the images they
// name, the Dockerfiles and the systemd unit.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	runtimeconv "k8s.io/apimachinery/pkg/runtime"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

const (
	chartDir     = "helm/portico"
	kustomizeDir = "kubernetes"
	// helmVersion is the release scripts/helm-binary builds by default;
	// its cache directory is named after it.
	helmVersion = "v4.3.2"
	// helmEnv names the helm binary; the build script reads it too.
	helmEnv = "PORTICO_HELM"
)

// helmBinary is the helm that scripts/helm-binary built, or skips the
// test when there is none.
func helmBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv(helmEnv)
	if path == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Skipf("helm not found (no home directory: %v): run scripts/helm-binary and set %s", err, helmEnv)
			}
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "portico", "helm-"+helmVersion, "helm")
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Skipf("helm not found at %s: run scripts/helm-binary (or set %s)", path, helmEnv)
	}
	return path
}

// helm runs the helm binary with its caches and configuration in a
// temporary directory, so that nothing of the user's (repositories,
// plugins) changes what it does.
func helm(t *testing.T, args ...string) (stdout []byte, err error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-cluster"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// render renders the chart as release in namespace with values, for the
// Kubernetes release the tests' API server runs.
func render(t *testing.T, release, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not in t.TempDir(), whose name has the subtest's, commas included:
	// helm splits --values at commas.
	f, err := os.CreateTemp("", "portico-values-*.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "template", release, chartDir, "--namespace", namespace,
		"--kube-version", kubetest.Version, "--values", f.Name())
	if err != nil {
		return nil, err
	}
	return decodeObjects(t, "rendered chart", out), nil
}

func mustRender(t *testing.T, release, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, release, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// decodeObjects decodes every YAML document of b into an object.
func decodeObjects(t *testing.T, what string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if doc == nil {
			continue
		}
		j, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, j)
		}
		objs = append(objs, u)
	}
}

// kustomizeObjects reads the manifests that deploy/kubernetes's
// kustomization lists, and the namespace it puts them in.
func kustomizeObjects(t *testing.T) (string, []*unstructured.Unstructured) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kustomizeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.Namespace == "" || len(k.Resources) == 0 {
		t.Fatalf("kustomization.yaml names no namespace or no resources: %+v", k)
	}
	var objs []*unstructured.Unstructured
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(kustomizeDir, r))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeObjects(t, r, b)...)
	}
	return k.Namespace, objs
}

// find returns the objects of kind, by name.
func find(objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == kind {
			m[o.GetName()] = o
		}
	}
	return m
}

// one returns the only object of kind, into out.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string, out any) {
	t.Helper()
	m := find(objs, kind)
	if len(m) != 1 {
		t.Fatalf("%d objects of kind %s, want 1: %v", len(m), kind, slices.Collect(mapKeys(m)))
	}
	for _, o := range m {
		if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
			t.Fatalf("%s %s: %v", kind, o.GetName(), err)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// chartAppVersion is the tag of the images the chart runs by default.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: appVersion %q, %v", c.AppVersion, err)
	}
	return c.AppVersion
}

func envSources(c corev1.Container) map[string]*corev1.SecretKeySelector {
	m := map[string]*corev1.SecretKeySelector{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			m[e.Name] = e.ValueFrom.SecretKeyRef
		} else {
			m[e.Name] = nil
		}
	}
	return m
}

func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestChartDefaults renders the chart as an operator who changes nothing
// would, and checks that it runs what deploy/kubernetes runs.
func TestChartDefaults(t *testing.T) {
	objs := mustRender(t, "portico", "portico", nil)
	_, kobjs := kustomizeObjects(t)

	// Every kind of deploy/kubernetes but its Namespace (helm installs
	// into one: --namespace, --create-namespace).
	for _, o := range kobjs {
		if o.GetKind() != "Namespace" && len(find(objs, o.GetKind())) == 0 {
			t.Errorf("the chart renders no %s, deploy/kubernetes has %s", o.GetKind(), o.GetName())
		}
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "portico" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			t.Errorf("%s %s in namespace %q, not the release's", o.GetKind(), o.GetName(), ns)
		}
	}

	var dep, kdep appsv1.Deployment
	one(t, objs, "Deployment", &dep)
	one(t, kobjs, "Deployment", &kdep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	c, kc := dep.Spec.Template.Spec.Containers[0], kdep.Spec.Template.Spec.Containers[0]
	// The same command line as deploy/kubernetes, which leaves the
	// session domain to the portal's default (the host of --url); the
	// chart says it, since its Ingress routes it.
	for _, a := range kc.Args {
		if !slices.Contains(c.Args, a) {
			t.Errorf("the chart's portal lacks %q of deploy/kubernetes: %q", a, c.Args)
		}
	}
	if v, _ := flagValue(c.Args, "session-domain"); v != "portico.example.com" {
		t.Errorf("--session-domain=%q, want the host of --url", v)
	}
	if strings.Contains(strings.Join(c.Args, " "), "--database") {
		t.Errorf("the database URL, password and all, is on the command line: %q", c.Args)
	}
	// The same probes as deploy/kubernetes: readiness follows the
	// database, liveness only the process.
	for _, p := range []struct {
		name      string
		got, want *corev1.Probe
	}{
		{"readiness", c.ReadinessProbe, kc.ReadinessProbe},
		{"liveness", c.LivenessProbe, kc.LivenessProbe},
		{"startup", c.StartupProbe, kc.StartupProbe},
	} {
		if p.got == nil || p.want == nil || p.got.HTTPGet == nil || p.want.HTTPGet == nil || p.got.HTTPGet.Path != p.want.HTTPGet.Path {
			t.Errorf("%s probe %+v, deploy/kubernetes has %+v", p.name, p.got, p.want)
		}
	}
	version := chartAppVersion(t)
	if want := "ghcr.io/portico-dev/portico:" + version; c.Image != want || kc.Image != want {
		t.Errorf("portal image %q (chart), %q (deploy/kubernetes), want %q", c.Image, kc.Image, want)
	}
	if v, _ := flagValue(c.Args, "session-image"); v != "ghcr.io/portico-dev/portico-session:"+version {
		t.Errorf("--session-image=%q, want the session image of the portal's version %s", v, version)
	}
	env := envSources(c)
	for _, name := range []string{"PORTICO_DATABASE_URL", "PORTICO_SECRET_KEY"} {
		if env[name] == nil {
			t.Errorf("%s does not come from a Secret", name)
		}
	}
	secrets := find(objs, "Secret")
	dbSecret := secrets[env["PORTICO_DATABASE_URL"].Name]
	if dbSecret == nil {
		t.Fatalf("the database URL's Secret %s is not rendered", env["PORTICO_DATABASE_URL"].Name)
	}
	url, _, _ := unstructured.NestedString(dbSecret.Object, "stringData", env["PORTICO_DATABASE_URL"].Key)
	if !strings.HasPrefix(url, "postgres://portico:") || !strings.Contains(url, "@portico-postgresql.portico.svc:5432/portico") {
		t.Errorf("database URL %q does not reach the chart's PostgreSQL", url)
	}
	if len(find(objs, "Service")["portico-postgresql"].Object) == 0 || len(find(objs, "StatefulSet")["portico-postgresql"].Object) == 0 {
		t.Errorf("no PostgreSQL StatefulSet and Service named portico-postgresql")
	}
	// The key is the base64 of 32 random bytes, as the portal wants it.
	keySecret := secrets[env["PORTICO_SECRET_KEY"].Name]
	if keySecret == nil {
		t.Fatalf("the secret key's Secret %s is not rendered", env["PORTICO_SECRET_KEY"].Name)
	}
	var ks corev1.Secret
	if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructured(keySecret.Object, &ks); err != nil {
		t.Fatal(err)
	}
	if key := ks.Data[env["PORTICO_SECRET_KEY"].Key]; len(key) != 44 || ks.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("secret key %q (annotations %v): want 32 bytes in base64, kept on uninstall", key, ks.Annotations)
	}
	if again := mustRender(t, "portico", "portico", nil); reflect.DeepEqual(find(again, "Secret")[ks.Name].Object, keySecret.Object) {
		t.Errorf("two installs got the same secret key: it is not random")
	}

	// The ClusterRole is deploy/kubernetes/rbac.yaml's, rule for rule
	// (whose sufficiency the kubernetes runtime's tests check), bound to
	// the account the portal runs as.
	var role, krole rbacv1.ClusterRole
	one(t, objs, "ClusterRole", &role)
	one(t, kobjs, "ClusterRole", &krole)
	if !reflect.DeepEqual(role.Rules, krole.Rules) {
		t.Errorf("the chart's ClusterRole differs from deploy/kubernetes/rbac.yaml:\nchart: %+v\nrbac.yaml: %+v", role.Rules, krole.Rules)
	}
	var binding rbacv1.ClusterRoleBinding
	one(t, objs, "ClusterRoleBinding", &binding)
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: dep.Spec.Template.Spec.ServiceAccountName, Namespace: "portico"}}
	if binding.RoleRef.Name != role.Name || !reflect.DeepEqual(binding.Subjects, want) {
		t.Errorf("binding %+v to %+v, want %s to %+v", binding.RoleRef, binding.Subjects, role.Name, want)
	}
	if len(find(objs, "ServiceAccount")[dep.Spec.Template.Spec.ServiceAccountName].Object) == 0 {
		t.Errorf("the portal's account %s is not rendered", dep.Spec.Template.Spec.ServiceAccountName)
	}

	// The sessions are served from their own host names, through the same
	// Ingress.
	var ing networkingv1.Ingress
	one(t, objs, "Ingress", &ing)
	var hosts []string
	for _, r := range ing.Spec.Rules {
		hosts = append(hosts, r.Host)
	}
	if !reflect.DeepEqual(hosts, []string{"portico.example.com", "*.portico.example.com"}) {
		t.Errorf("ingress hosts %q, want the portal's and its sessions' wildcard", hosts)
	}
}

// TestChartValues renders the chart with the values an operator sets, and
// checks each does what values.yaml says.
func TestChartValues(t *testing.T) {
	t.Run("external database, own secret key, own definitions", func(t *testing.T) {
		objs := mustRender(t, "spring", "events", map[string]any{
			"postgresql":        map[string]any{"enabled": false},
			"externalDatabase":  map[string]any{"existingSecret": "db", "urlKey": "dsn"},
			"secretKey":         map[string]any{"existingSecret": "sealing", "existingSecretKey": "k"},
			"existingConfigMap": "spring-workshops",
		})
		if len(find(objs, "StatefulSet")) > 0 || len(find(objs, "Secret")) > 0 || len(find(objs, "ConfigMap")) > 0 {
			t.Errorf("a StatefulSet, Secret or ConfigMap rendered beside the operator's own: %v %v %v",
				slices.Collect(mapKeys(find(objs, "StatefulSet"))), slices.Collect(mapKeys(find(objs, "Secret"))), slices.Collect(mapKeys(find(objs, "ConfigMap"))))
		}
		var dep appsv1.Deployment
		one(t, objs, "Deployment", &dep)
		env := envSources(dep.Spec.Template.Spec.Containers[0])
		if db := env["PORTICO_DATABASE_URL"]; db == nil || db.Name != "db" || db.Key != "dsn" {
			t.Errorf("PORTICO_DATABASE_URL from %+v, want db/dsn", db)
		}
		if k := env["PORTICO_SECRET_KEY"]; k == nil || k.Name != "sealing" || k.Key != "k" {
			t.Errorf("PORTICO_SECRET_KEY from %+v, want sealing/k", k)
		}
		if cm := dep.Spec.Template.Spec.Volumes[0].ConfigMap; cm == nil || cm.Name != "spring-workshops" {
			t.Errorf("definitions from %+v, want the ConfigMap spring-workshops", dep.Spec.Template.Spec.Volumes[0])
		}
		if dep.Name != "spring-portico" || dep.Namespace != "events" {
			t.Errorf("deployment %s/%s, want events/spring-portico", dep.Namespace, dep.Name)
		}
	})
	t.Run("domains, TLS, images, replicas, resources, probes", func(t *testing.T) {
		objs := mustRender(t, "portico", "portico", map[string]any{
			"url":            "https://workshops.example.org:8443",
			"sessionDomain":  "sessions.example.org",
			"ingressDomain":  "apps.example.org",
			"ingress":        map[string]any{"tlsSecretName": "wildcard", "className": "nginx"},
			"image":          map[string]any{"repository": "registry.example.org/portico", "tag": "1.2.3"},
			"sessionImage":   map[string]any{"repository": "registry.example.org/session", "tag": "1.2.3"},
			"replicas":       5,
			"resources":      map[string]any{"limits": map[string]any{"memory": "2Gi"}},
			"readinessProbe": map[string]any{"path": "/readyz", "periodSeconds": 2},
			"livenessProbe":  map[string]any{"enabled": false},
			"extraArgs":      []string{"--analytics-webhook=https://hooks.example.org/portico"},
		})
		var dep appsv1.Deployment
		one(t, objs, "Deployment", &dep)
		c := dep.Spec.Template.Spec.Containers[0]
		for flag, want := range map[string]string{
			"url": "https://workshops.example.org:8443", "session-domain": "sessions.example.org",
			"ingress-domain": "apps.example.org", "session-image": "registry.example.org/session:1.2.3",
			"analytics-webhook": "https://hooks.example.org/portico",
		} {
			if v, ok := flagValue(c.Args, flag); v != want {
				t.Errorf("--%s=%q (given: %v), want %q", flag, v, ok, want)
			}
		}
		if c.Image != "registry.example.org/portico:1.2.3" || *dep.Spec.Replicas != 5 {
			t.Errorf("image %q, replicas %d", c.Image, *dep.Spec.Replicas)
		}
		if m := c.Resources.Limits.Memory().String(); m != "2Gi" {
			t.Errorf("memory limit %s, want 2Gi", m)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.TCPSocket != nil || p.PeriodSeconds != 2 {
			t.Errorf("readiness probe %+v, want GET /readyz every 2s", p)
		}
		if c.LivenessProbe != nil {
			t.Errorf("liveness probe %+v, want none", c.LivenessProbe)
		}
		var ing networkingv1.Ingress
		one(t, objs, "Ingress", &ing)
		var hosts []string
		for _, r := range ing.Spec.Rules {
			hosts = append(hosts, r.Host)
		}
		want := []string{"workshops.example.org", "*.sessions.example.org"}
		if !reflect.DeepEqual(hosts, want) || len(ing.Spec.TLS) != 1 || !reflect.DeepEqual(ing.Spec.TLS[0].Hosts, want) ||
			ing.Spec.TLS[0].SecretName != "wildcard" || ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
			t.Errorf("ingress %+v, want hosts and TLS for %q from wildcard, class nginx", ing.Spec, want)
		}
	})
	t.Run("noop runtime, no ingress", func(t *testing.T) {
		objs := mustRender(t, "portico", "portico", map[string]any{"runtime": "noop", "ingress": map[string]any{"enabled": false}})
		for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Ingress"} {
			if len(find(objs, kind)) > 0 {
				t.Errorf("a %s rendered for a portal on the noop runtime without ingress", kind)
			}
		}
		var dep appsv1.Deployment
		one(t, objs, "Deployment", &dep)
		if v, _ := flagValue(dep.Spec.Template.Spec.Containers[0].Args, "runtime"); v != "noop" {
			t.Errorf("--runtime=%s, want noop", v)
		}
	})
	t.Run("definitions from the cluster", func(t *testing.T) {
		for _, c := range []struct {
			runtime string
			install bool
		}{{"kubernetes", true}, {"noop", false}} {
			objs := mustRender(t, "portico", "portico", map[string]any{"runtime": c.runtime,
				"definitionsFrom": "kubernetes", "portalName": "summit", "installCRDs": c.install})
			var dep appsv1.Deployment
			one(t, objs, "Deployment", &dep)
			args := dep.Spec.Template.Spec.Containers[0].Args
			if _, ok := flagValue(args, "config"); ok {
				t.Errorf("--config with --definitions kubernetes: %q", args)
			}
			for flag, want := range map[string]string{"definitions": "kubernetes", "portal-name": "summit",
				"install-crds": fmt.Sprint(c.install)} {
				if v, _ := flagValue(args, flag); v != want {
					t.Errorf("runtime %s: --%s=%q, want %q", c.runtime, flag, v, want)
				}
			}
			var role rbacv1.ClusterRole
			one(t, objs, "ClusterRole", &role)
			allowed := func(group, resource, verb string) bool {
				return slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
					return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb)
				})
			}
			for _, need := range [][3]string{
				{"training.educates.dev", "trainingportals", "watch"}, {"training.educates.dev", "workshops", "watch"},
				{"training.educates.dev", "trainingportals/status", "patch"}, {"training.educates.dev", "workshopsessions", "create"},
				{"training.educates.dev", "workshopsessions", "delete"}, {"training.educates.dev", "workshopenvironments/status", "patch"},
				{"apiextensions.k8s.io", "customresourcedefinitions", "get"},
			} {
				if !allowed(need[0], need[1], need[2]) {
					t.Errorf("runtime %s: the role may not %s %s", c.runtime, need[2], need[1])
				}
			}
			if got := allowed("apiextensions.k8s.io", "customresourcedefinitions", "create"); got != c.install {
				t.Errorf("installCRDs %v: create on customresourcedefinitions %v", c.install, got)
			}
			if got := allowed("", "pods", "create"); got != (c.runtime == "kubernetes") {
				t.Errorf("runtime %s: create on pods %v", c.runtime, got)
			}
		}
	})
	t.Run("rules for workshop objects", func(t *testing.T) {
		extra := map[string]any{"apiGroups": []string{"networking.k8s.io"}, "resources": []string{"ingresses"}, "verbs": []string{"create", "patch"}}
		objs := mustRender(t, "portico", "portico", map[string]any{"rbac": map[string]any{"workshopObjectRules": []any{extra}}})
		var role rbacv1.ClusterRole
		one(t, objs, "ClusterRole", &role)
		last := role.Rules[len(role.Rules)-1]
		if !reflect.DeepEqual(last, rbacv1.PolicyRule{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"create", "patch"}}) {
			t.Errorf("last rule %+v, want the workshop objects' rule", last)
		}
	})
}

// TestChartRefuses checks that values which would deploy a broken or
// unsafe portal stop helm with a reason, rather than render.
func TestChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no database", map[string]any{"postgresql": map[string]any{"enabled": false}}, "no database"},
		{"two databases", map[string]any{"externalDatabase": map[string]any{"existingSecret": "db"}}, "choose one database"},
		{"local runtime", map[string]any{"runtime": "local"}, "runtime"},
		{"misspelled value", map[string]any{"replica": 2}, "replica"},
		{"latest image", map[string]any{"image": map[string]any{"repository": "x", "tag": "latest"}}, "tag"},
		{"password outside a URL", map[string]any{"postgresql": map[string]any{"password": "p@ss/word"}}, "password"},
		{"no URL", map[string]any{"url": ""}, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render(t, "portico", "portico", tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("rendered %d objects, error %v; want an error naming %q", len(objs), err, tc.want)
			}
		})
	}
}

// TestChartLint runs helm's own checks of the chart, warnings included.
func TestChartLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}
