package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
	"github.com/portico-dev/portico/internal/sessionhost"
)

const testImage = "registry.example/portico-session:test"

var ctx = context.Background()

// newRuntime is a runtime of portal on the test cluster.
func newRuntime(t *testing.T, portal string) *Runtime {
	t.Helper()
	requireCluster(t)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r, err := New(Options{Config: cluster.Config, Portal: portal, Image: testImage,
		IngressDomain: "training.example", StartTimeout: 45 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func specOf(portal, env string, id string) runtime.Spec {
	return runtime.Spec{
		Session: env + "-" + id, ID: id, Environment: env, Workshop: "lab", Portal: portal,
		PortalURL: "http://portal.example", SessionURL: "http://portal.example/sessions/" + env + "-" + id,
		ConfigPassword: "config-" + id,
		Env:            []runtime.EnvVar{{Name: "EDITOR", Value: "nano"}},
	}
}

func namespaceGone(name string) func() bool {
	return func() bool {
		_, err := cluster.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

// hostGone reports whether every object of the host of session is gone
// from environment namespace env.
func hostGone(session, env string) func() bool {
	return func() bool { return len(hostLeft(session, env)) == 0 }
}

// hostLeft names the objects of the host of session still in environment
// namespace env.
func hostLeft(session, env string) []string {
	core := cluster.Client.CoreV1()
	var left []string
	gets := map[string]func() error{
		"pod":             func() error { _, err := core.Pods(env).Get(ctx, session, metav1.GetOptions{}); return err },
		"service":         func() error { _, err := core.Services(env).Get(ctx, session, metav1.GetOptions{}); return err },
		"service account": func() error { _, err := core.ServiceAccounts(env).Get(ctx, session, metav1.GetOptions{}); return err },
	}
	for _, suffix := range []string{"-config", "-request", "-token"} {
		gets["secret "+session+suffix] = func() error {
			_, err := core.Secrets(env).Get(ctx, session+suffix, metav1.GetOptions{})
			return err
		}
	}
	for what, get := range gets {
		if err := get(); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("%s (%v)", what, err))
		}
	}
	slices.Sort(left)
	return left
}

// namespaceEnding reports whether the namespace is gone or being deleted.
func namespaceEnding(name string) func() bool {
	return func() bool {
		ns, err := cluster.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || err == nil && ns.DeletionTimestamp != nil
	}
}

// TestSessionLifecycle: a session's namespace and everything in it, its
// readiness from the pod's status, its allocation, and its end.
func TestSessionLifecycle(t *testing.T) {
	r := newRuntime(t, "life")
	spec := specOf("life", "life-w01", "s001")
	spec.Cluster = runtime.Cluster{
		Budget: "small",
		SessionObjects: []map[string]any{{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "session-info"},
			"data": map[string]any{
				"session": "$(session_name)",
				"ns":      "$(session_namespace)",
				"env":     "$(workshop_namespace) $(environment_name)",
				"account": "$(service_account)",
				"domain":  "$(ingress_domain)",
				"unknown": "$(nothing_of_that_name)",
			},
		}},
		RequestObjects: []map[string]any{{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "greeting-$(session_id)"},
			"data":     map[string]any{"greeting": "$(GREETING), $(session_name)"},
		}},
	}
	inst, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	name, env := spec.Session, spec.Environment
	if !inst.Ready || inst.Address != name+".life-w01.svc:10080" {
		t.Fatalf("instance %+v, want ready at its service's address in the environment namespace", inst)
	}
	core := cluster.Client.CoreV1()
	ns, err := core.Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{labelPortal: "life", labelEnvironment: "life-w01", labelSession: name,
		"pod-security.kubernetes.io/enforce": "baseline"} {
		if ns.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, ns.Labels[k], v)
		}
	}
	// The environment namespace, made by the start as the environment
	// has not been synced, holds the host: its account, pod, service and
	// secrets, all owned by the session namespace.
	envNS, err := core.Namespaces().Get(ctx, env, metav1.GetOptions{})
	if err != nil || envNS.Labels[labelRole] != roleEnvironment || envNS.Labels[labelPortal] != "life" {
		t.Fatalf("environment namespace %+v, %v", envNS, err)
	}
	owned := func(what string, m metav1.ObjectMeta) {
		t.Helper()
		want := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Namespace", Name: name, UID: ns.UID}}
		if !reflect.DeepEqual(m.OwnerReferences, want) || m.Namespace != env || m.Labels[labelSession] != name {
			t.Errorf("%s: namespace %s, owners %+v, labels %v: want it in %s, owned by the session namespace", what, m.Namespace, m.OwnerReferences, m.Labels, env)
		}
	}
	sa, err := core.ServiceAccounts(env).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("service account: %v", err)
	}
	owned("service account", sa.ObjectMeta)
	if _, err := core.ServiceAccounts(name).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service account in the session namespace: %v, want none", err)
	}
	// The account's rights are a Role of the namespace, bound to it there:
	// the cluster's admin rules, which change neither quota nor limits.
	role, err := cluster.Client.RbacV1().Roles(name).Get(ctx, "portico-session", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("role: %v", err)
	}
	admin, err := cluster.Client.RbacV1().ClusterRoles().Get(ctx, "admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) < len(admin.Rules) || role.Labels[labelSession] != name {
		t.Errorf("role has %d rules (admin %d), labels %v", len(role.Rules), len(admin.Rules), role.Labels)
	}
	for _, rule := range role.Rules {
		for _, res := range rule.Resources {
			if (res == "resourcequotas" || res == "limitranges" || res == "namespaces") && !slices.Equal(rule.Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("role rule %v lets the session change its %s", rule, res)
			}
		}
	}
	rb, err := cluster.Client.RbacV1().RoleBindings(name).Get(ctx, "portico-session", metav1.GetOptions{})
	if err != nil || rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "portico-session"}) ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Kind != rbacv1.ServiceAccountKind || rb.Subjects[0].Name != name || rb.Subjects[0].Namespace != env {
		t.Errorf("role binding %+v, %v: want the account bound to the role", rb, err)
	}
	// The small budget as Educates makes it: the host is elsewhere.
	quota, err := core.ResourceQuotas(name).Get(ctx, "compute-resources", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := quota.Spec.Hard[corev1.ResourceLimitsMemory]; got.String() != "1Gi" {
		t.Errorf("quota limits.memory = %s, want 1Gi", got.String())
	}
	if got := quota.Spec.Hard[corev1.ResourceLimitsCPU]; got.String() != "1" {
		t.Errorf("quota limits.cpu = %s, want 1", got.String())
	}
	for _, q := range []string{"compute-resources-timebound", "object-counts"} {
		if _, err := core.ResourceQuotas(name).Get(ctx, q, metav1.GetOptions{}); err != nil {
			t.Errorf("resource quota %s: %v", q, err)
		}
	}
	if _, err := core.LimitRanges(name).Get(ctx, "resource-limits", metav1.GetOptions{}); err != nil {
		t.Errorf("limit range: %v", err)
	}
	pod, err := core.Pods(env).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned("pod", pod.ObjectMeta)
	c := pod.Spec.Containers[0]
	if c.Image != testImage || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" || pod.Spec.ServiceAccountName != name {
		t.Errorf("pod: image %q, probe %+v, account %q", c.Image, c.ReadinessProbe, pod.Spec.ServiceAccountName)
	}
	// The host's compute is its own, outside the budget: the defaults of
	// a session with a budget.
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.String() != "512Mi" {
		t.Errorf("host memory limit %s, want 512Mi", got.String())
	}
	svc, err := core.Services(env).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	owned("service", svc.ObjectMeta)
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{labelSession: name, labelRole: roleSession}) {
		t.Errorf("service selects %v", svc.Spec.Selector)
	}
	if list, err := core.Pods(name).List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("pods in the session namespace: %v, %v; want none", list, err)
	}
	if list, err := core.Secrets(name).List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("secrets in the session namespace: %v, %v; want none", list, err)
	}
	cm, err := core.ConfigMaps(name).Get(ctx, "session-info", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("session object: %v", err)
	}
	want := map[string]string{"session": name, "ns": name, "env": "life-w01 life-w01", "account": name,
		"domain": "training.example", "unknown": "$(nothing_of_that_name)"}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("session object data %s = %q, want %q", k, cm.Data[k], v)
		}
	}
	// The host's configuration and kubeconfig are in the secret the pod
	// mounts.
	cfgSecret, err := core.Secrets(env).Get(ctx, name+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned("config secret", cfgSecret.ObjectMeta)
	var hc sessionhost.Config
	if err := json.Unmarshal(cfgSecret.Data[sessionhost.SeedConfig], &hc); err != nil || hc.ConfigPassword != "config-s001" || hc.Owner != nil {
		t.Errorf("host config %+v, %v", hc, err)
	}
	if st, err := r.Status(ctx, name); err != nil || !st.Ready {
		t.Errorf("status %+v, %v: want ready", st, err)
	}

	// Allocation: the request objects with the parameters, the request
	// secret. The POST to the host cannot succeed without a kubelet; the
	// secret is what the host reads then.
	if _, err := core.ConfigMaps(name).Get(ctx, "greeting-s001", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("request object before allocation: %v", err)
	}
	alloc := runtime.Allocation{
		User:   runtime.User{Username: "alice", Email: "alice@example.com", FirstName: "Alice", LastName: "Liddell"},
		Params: []runtime.EnvVar{{Name: "GREETING", Value: "Hi"}},
	}
	if err := r.Allocate(ctx, inst, "config-s001", alloc); err != nil {
		t.Fatal(err)
	}
	cm, err = core.ConfigMaps(name).Get(ctx, "greeting-s001", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != "Hi, "+name {
		t.Fatalf("request object %+v, %v: want the parameter substituted", cm, err)
	}
	req, err := core.Secrets(env).Get(ctx, name+"-request", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned("request secret", req.ObjectMeta)
	// The user's details and the parameters, for the host, which mounts
	// the secret.
	var got runtime.Allocation
	if err := json.Unmarshal(req.Data[allocationKey], &got); err != nil || !reflect.DeepEqual(got, alloc) || string(req.Data["GREETING"]) != "Hi" {
		t.Errorf("request secret %q: %+v, %v", req.Data, got, err)
	}
	mounted := false
	for _, v := range pod.Spec.Volumes {
		mounted = mounted || v.Secret != nil && v.Secret.SecretName == name+"-request"
	}
	if !mounted {
		t.Errorf("the host's pod does not mount the request secret: %+v", pod.Spec.Volumes)
	}
	// Idempotent.
	if err := r.Allocate(ctx, inst, "config-s001", alloc); err != nil {
		t.Fatalf("second allocation: %v", err)
	}

	list, err := r.List(ctx)
	if err != nil || len(list) != 1 || list[0].Session != name || !list[0].Ready {
		t.Fatalf("list %+v, %v: want the one ready session", list, err)
	}
	session := sessionClient(t, name, env)
	if _, err := session.CoreV1().ConfigMaps(name).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the session's credentials before the stop: %v", err)
	}
	if err := r.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	// The host goes at once, and with its account the session's
	// credentials; then the namespace.
	if left := hostLeft(name, env); len(left) > 0 {
		t.Errorf("left of the host after the stop: %v", left)
	}
	// The API server may keep a token it checked for a few seconds.
	waitFor(t, "the session's credentials to be refused", 30*time.Second, func() bool {
		_, err := session.CoreV1().ConfigMaps(name).List(ctx, metav1.ListOptions{})
		return apierrors.IsUnauthorized(err)
	})
	waitFor(t, "the namespace to be deleted", 60*time.Second, namespaceGone(name))
	if _, err := r.Status(ctx, name); err != runtime.ErrNotFound {
		waitFor(t, "the informer to see it", 5*time.Second, func() bool {
			_, err := r.Status(ctx, name)
			return err == runtime.ErrNotFound
		})
	}
	if err := r.Stop(ctx, name); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// TestKubeconfig: the kubeconfig a session host serves at /config/kubeconfig
// works with client-go in its own namespace only. The test plays the
// kubelet: it mounts the pod's secret as a seed directory and runs the
// session host.
func TestKubeconfig(t *testing.T) {
	r := newRuntime(t, "kcfg")
	a, err := r.Start(ctx, specOf("kcfg", "kcfg-w01", "s001"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Start(ctx, specOf("kcfg", "kcfg-w01", "s002"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(ctx, a.Session); r.Stop(ctx, b.Session) })

	kubeconfig := serveKubeconfig(t, a.Session, "kcfg-w01", "config-s001")
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Data: map[string]string{"k": "v"}}
	if _, err := client.CoreV1().ConfigMaps(a.Session).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Errorf("create in its own namespace: %v", err)
	}
	if _, err := client.CoreV1().ConfigMaps(b.Session).Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create in another session's namespace: %v, want forbidden", err)
	}
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list namespaces: %v, want forbidden", err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kcfg-mine"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a namespace: %v, want forbidden", err)
	}
	if _, err := client.CoreV1().ResourceQuotas(a.Session).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "more"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a quota: %v, want forbidden (a session cannot change its own budget)", err)
	}
	if _, err := client.CoreV1().LimitRanges(a.Session).Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "more"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a limit range: %v, want forbidden", err)
	}
	// Admin, not only edit: it manages workloads and the rights of its
	// namespace.
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		},
	}}
	if _, err := client.AppsV1().Deployments(a.Session).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Errorf("create a deployment in its own namespace: %v", err)
	}
	// Admin of the namespace, not of the node under it: no privileged
	// pod, no host path.
	yes := true
	privileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "root"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "sh", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}},
	}}
	if _, err := client.CoreV1().Pods(a.Session).Create(ctx, privileged, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("create a privileged pod: %v, want forbidden by pod security", err)
	}
	hostPath := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "host"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "sh", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "root", MountPath: "/host"}}}},
		Volumes:    []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
	}}
	if _, err := client.CoreV1().Pods(a.Session).Create(ctx, hostPath, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("create a pod mounting the node's disk: %v, want forbidden by pod security", err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "viewers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: a.Session}}}
	if _, err := client.RbacV1().RoleBindings(a.Session).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Errorf("bind view in its own namespace: %v", err)
	}
	if _, err := client.RbacV1().RoleBindings(b.Session).Create(ctx, rb, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("bind view in another session's namespace: %v, want forbidden", err)
	}
}

// serveKubeconfig runs the session host of session as its pod would, from
// the pod's secret, and returns what it serves at /config/kubeconfig.
func serveKubeconfig(t *testing.T, session, env, password string) []byte {
	t.Helper()
	secret, err := cluster.Client.CoreV1().Secrets(env).Get(ctx, session+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seedDir, home := t.TempDir(), t.TempDir()
	for _, k := range []string{sessionhost.SeedConfig, sessionhost.SeedKubeconfig} {
		if err := os.WriteFile(filepath.Join(seedDir, k), secret.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sessionhost.Run(hctx, sessionhost.Options{Home: home, Seed: seedDir, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr []byte
	waitFor(t, "the session host to serve", 10*time.Second, func() bool {
		addr, err = os.ReadFile(filepath.Join(home, sessionhost.AddressFile))
		return err == nil
	})
	resp, err := http.Get("http://" + string(addr) + "/config/kubeconfig?token=" + password)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/config/kubeconfig: %s %s", resp.Status, body)
	}
	return body
}

// TestBadObjectFailsStart: an object of a kind the cluster does not know
// fails the start with the object named, and leaves nothing behind.
func TestBadObjectFailsStart(t *testing.T) {
	r := newRuntime(t, "bad")
	spec := specOf("bad", "bad-w01", "s001")
	spec.Cluster.SessionObjects = []map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "fine"}},
		{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}},
	}
	_, err := r.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "spec.session.objects[1] (Widget w): kind example.com/v1, Kind=Widget is not known to the cluster") {
		t.Fatalf("start: %v, want the unknown kind named", err)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))

	// A request object of an unknown kind fails the start of a reserve
	// too: handed out, it could never get its owner's objects.
	spec = specOf("bad", "bad-w01", "s004")
	spec.Cluster.RequestObjects = []map[string]any{
		{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "$(GREETING)"}},
	}
	_, err = r.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "spec.request.objects[0] (Widget $(GREETING)): kind example.com/v1, Kind=Widget is not known to the cluster") {
		t.Fatalf("start with a request object of an unknown kind: %v", err)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))

	spec = specOf("bad", "bad-w01", "s002")
	spec.Cluster.SessionObjects = []map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "kube-system"}},
	}
	if _, err := r.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), `namespace "kube-system"`) {
		t.Fatalf("start with an object elsewhere: %v", err)
	}
	spec = specOf("bad", "bad-w01", "s003")
	spec.Cluster.SessionObjects = []map[string]any{
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "x"}},
	}
	if _, err := r.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), "cluster-scoped") {
		t.Fatalf("start with a cluster-scoped object: %v", err)
	}
}

// TestPodFailureFailsStart: a pod that cannot pull its image fails the
// start with the kubelet's reason, and its namespace is deleted.
func TestPodFailureFailsStart(t *testing.T) {
	r := newRuntime(t, "fail")
	spec := specOf("fail", "fail-w01", "s001")
	fates.Store(spec.Session, kubetest.Fate{Reason: "ImagePullBackOff", Message: `Back-off pulling image "nope"`})
	start := time.Now()
	_, err := r.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), `ImagePullBackOff: Back-off pulling image "nope"`) {
		t.Fatalf("start: %v, want the pull failure", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the failure took %s to be noticed", d)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))
	if left := hostLeft(spec.Session, spec.Environment); len(left) > 0 {
		t.Errorf("left of the failed start's host: %v", left)
	}
}

// TestQuotaFailsStart: what a quota refuses fails the start with the API
// server's reason: a quota of the workshop's own in the session namespace
// (a custom budget) refusing a request object, and one of its environment
// objects refusing the host's pod in the environment namespace.
func TestQuotaFailsStart(t *testing.T) {
	r := newRuntime(t, "quota")
	noPods := map[string]any{
		"apiVersion": "v1", "kind": "ResourceQuota",
		"metadata": map[string]any{"name": "no-pods"},
		"spec":     map[string]any{"hard": map[string]any{"pods": "0"}},
	}
	spec := specOf("quota", "quota-w01", "s001")
	spec.Cluster.Budget = "custom"
	spec.Cluster.SessionObjects = []map[string]any{noPods}
	spec.Cluster.RequestObjects = []map[string]any{{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web"},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "web", "image": "nginx"}}},
	}}
	spec.Owner = &runtime.Allocation{User: runtime.User{Username: "alice"}}
	_, err := r.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "spec.request.objects[0] (Pod web): ") || !strings.Contains(err.Error(), "exceeded quota: no-pods") {
		t.Fatalf("start: %v, want the session quota's refusal of the request object", err)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))

	env := runtime.EnvironmentSpec{Name: "quota-w02", Workshop: "lab", Portal: "quota", Objects: []map[string]any{noPods}}
	if err := r.SyncEnvironments(ctx, []runtime.EnvironmentSpec{env}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the quota controller", 10*time.Second, func() bool {
		q, err := cluster.Client.CoreV1().ResourceQuotas(env.Name).Get(ctx, "no-pods", metav1.GetOptions{})
		return err == nil && len(q.Status.Hard) > 0
	})
	spec = specOf("quota", env.Name, "s001")
	_, err = r.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "session host pod: ") || !strings.Contains(err.Error(), "exceeded quota: no-pods") {
		t.Fatalf("start: %v, want the environment quota's refusal of the host pod", err)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))
	if left := hostLeft(spec.Session, env.Name); len(left) > 0 {
		t.Errorf("left of the failed start's host: %v", left)
	}
}

// TestStopEndsStart: a Stop does not wait for a Start stuck on its pod; the
// Start ends at once and the namespace goes.
func TestStopEndsStart(t *testing.T) {
	r := newRuntime(t, "abort")
	spec := specOf("abort", "abort-w01", "s001")
	fates.Store(spec.Session, kubetest.Fate{Reason: "ContainerCreating"}) // waits, not a failure
	errs := make(chan error, 1)
	go func() {
		_, err := r.Start(ctx, spec)
		errs <- err
	}()
	waitFor(t, "the pod", 20*time.Second, func() bool {
		_, err := cluster.Client.CoreV1().Pods(spec.Environment).Get(ctx, spec.Session, metav1.GetOptions{})
		return err == nil
	})
	begin := time.Now()
	if err := r.Stop(ctx, spec.Session); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("stop took %s", d)
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "session stopped while starting") {
		t.Errorf("start: %v, want it stopped", err)
	}
	waitFor(t, "the namespace to go", 5*time.Second, namespaceEnding(spec.Session))
}

// TestHostExitReported: the pod of a ready session failing is an exit.
func TestHostExitReported(t *testing.T) {
	r := newRuntime(t, "exit")
	spec := specOf("exit", "exit-w01", "s001")
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(ctx, spec.Session) })
	pod, err := cluster.Client.CoreV1().Pods(spec.Environment).Get(ctx, spec.Session, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kubetest.SetPodStatus(ctx, cluster.Client, pod, kubetest.Fate{Reason: "CrashLoopBackOff", Message: "back-off restarting"}); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-r.Exited():
		if name != spec.Session {
			t.Fatalf("exit of %s, want %s", name, spec.Session)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit reported")
	}
	st, err := r.Status(ctx, spec.Session)
	if err != nil || !strings.Contains(st.Failed, "CrashLoopBackOff") {
		t.Errorf("status %+v, %v: want failed", st, err)
	}
}

// TestHostGoesWithItsNamespace: a session namespace deleted behind the
// portal's back (by a cluster administrator, or a stop cut short after the
// namespace) takes its host in the environment namespace with it: the
// namespace owns the host's objects, and the garbage collector removes
// them.
func TestHostGoesWithItsNamespace(t *testing.T) {
	r := newRuntime(t, "orphan")
	spec := specOf("orphan", "orphan-w01", "s001")
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if left := hostLeft(spec.Session, spec.Environment); len(left) != 6 {
		t.Fatalf("host objects %v, want all six", left)
	}
	if err := cluster.Client.CoreV1().Namespaces().Delete(ctx, spec.Session, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the namespace to go", 60*time.Second, namespaceGone(spec.Session))
	waitFor(t, "the garbage collector to remove the host", 60*time.Second, hostGone(spec.Session, spec.Environment))
	waitFor(t, "the runtime to forget the session", 5*time.Second, func() bool {
		_, err := r.Status(ctx, spec.Session)
		return err == runtime.ErrNotFound
	})
}

// TestAdoptAfterRestart: a new runtime (a restarted portal) lists the
// sessions of its portal and adopts them as they are.
func TestAdoptAfterRestart(t *testing.T) {
	r := newRuntime(t, "adopt")
	spec := specOf("adopt", "adopt-w01", "s001")
	first, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(ctx, spec.Session) })
	other := newRuntime(t, "someone-else")
	if list, _ := other.List(ctx); len(list) != 0 {
		t.Errorf("another portal lists %+v", list)
	}
	if err := other.Stop(ctx, spec.Session); err == nil {
		t.Error("another portal stopped a session that is not its own")
	}
	r.Close()
	again := newRuntime(t, "adopt")
	list, err := again.List(ctx)
	if err != nil || len(list) != 1 || list[0] != first {
		t.Fatalf("list after restart %+v, %v, want %+v", list, err, first)
	}
	uid := podUID(t, spec)
	inst, err := again.Start(ctx, spec)
	if err != nil || inst != first {
		t.Fatalf("start after restart: %+v, %v", inst, err)
	}
	if podUID(t, spec) != uid {
		t.Error("adopting the session replaced its pod")
	}
}

func podUID(t *testing.T, spec runtime.Spec) string {
	pod, err := cluster.Client.CoreV1().Pods(spec.Environment).Get(ctx, spec.Session, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(pod.UID)
}

// TestEnvironments: an environment's namespace with its objects, removed
// when the environment is no longer wanted.
func TestEnvironments(t *testing.T) {
	r := newRuntime(t, "envs")
	env := runtime.EnvironmentSpec{Name: "envs-w01", Workshop: "lab", Portal: "envs", Objects: []map[string]any{{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "shared"},
		"data":     map[string]any{"ns": "$(workshop_namespace)", "env": "$(environment_name)", "domain": "$(ingress_domain)"},
	}}}
	if err := r.SyncEnvironments(ctx, []runtime.EnvironmentSpec{env}); err != nil {
		t.Fatal(err)
	}
	cm, err := cluster.Client.CoreV1().ConfigMaps("envs-w01").Get(ctx, "shared", metav1.GetOptions{})
	if err != nil || cm.Data["ns"] != "envs-w01" || cm.Data["env"] != "envs-w01" || cm.Data["domain"] != "training.example" {
		t.Fatalf("environment object %+v, %v", cm, err)
	}
	ns, err := cluster.Client.CoreV1().Namespaces().Get(ctx, "envs-w01", metav1.GetOptions{})
	if err != nil || ns.Labels[labelPortal] != "envs" || ns.Labels[labelEnvironment] != "envs-w01" {
		t.Fatalf("environment namespace %+v, %v", ns, err)
	}
	waitFor(t, "the informer to see the namespace", 5*time.Second, func() bool {
		_, err := r.namespaces.Get("envs-w01")
		return err == nil
	})
	if err := r.SyncEnvironments(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the environment namespace to go", 5*time.Second, namespaceEnding("envs-w01"))
}

// sessionClient is a client with the session's own credentials: the
// kubeconfig its host serves at /config/kubeconfig and its terminal uses
// (TestKubeconfig shows they are the same).
func sessionClient(t *testing.T, session, env string) k8s.Interface {
	t.Helper()
	secret, err := cluster.Client.CoreV1().Secrets(env).Get(ctx, session+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(secret.Data[sessionhost.SeedKubeconfig])
	if err != nil {
		t.Fatal(err)
	}
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestSessionCannotReachItsHost: with its own credentials, admin of its
// namespace, a session can neither read, change nor stop its host (pod,
// service, account, secrets), nor make a service or endpoints the portal
// would reach it by, nor change what an allocation applies. What it makes
// in its own namespace in their likeness, under the names the host had
// there once, the portal ignores.
func TestSessionCannotReachItsHost(t *testing.T) {
	r := newRuntime(t, "hostile")
	spec := specOf("hostile", "hostile-w01", "s001")
	spec.Cluster.RequestObjects = []map[string]any{{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "greeting"},
		"data":     map[string]any{"text": "$(GREETING)"},
	}}
	inst, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(ctx, spec.Session) })
	name, env := spec.Session, spec.Environment
	session := sessionClient(t, name, env)
	core := session.CoreV1()
	merge := []byte(`{"metadata":{"labels":{"portico.dev/session":"elsewhere"}}}`)
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s with the session's credentials: %v, want forbidden", what, err)
		}
	}

	// Its host: pod, service, account and secrets.
	_, err = core.Pods(env).Get(ctx, name, metav1.GetOptions{})
	forbidden("get the host pod", err)
	_, err = core.Pods(env).List(ctx, metav1.ListOptions{})
	forbidden("list the pods of the environment namespace", err)
	_, err = core.Pods(env).Patch(ctx, name, types.MergePatchType, merge, metav1.PatchOptions{})
	forbidden("patch the host pod", err)
	forbidden("delete the host pod", core.Pods(env).Delete(ctx, name, metav1.DeleteOptions{}))
	_, err = core.Services(env).Get(ctx, name, metav1.GetOptions{})
	forbidden("get the host service", err)
	_, err = core.Services(env).List(ctx, metav1.ListOptions{})
	forbidden("list the services of the environment namespace", err)
	_, err = core.Services(env).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"selector":{"app":"mine"}}}`), metav1.PatchOptions{})
	forbidden("repoint the host service", err)
	forbidden("delete the host service", core.Services(env).Delete(ctx, name, metav1.DeleteOptions{}))
	_, err = core.ServiceAccounts(env).Get(ctx, name, metav1.GetOptions{})
	forbidden("get the session's account", err)
	forbidden("delete the session's account", core.ServiceAccounts(env).Delete(ctx, name, metav1.DeleteOptions{}))
	for _, secret := range []string{name + "-config", name + "-request", name + "-token"} {
		_, err = core.Secrets(env).Get(ctx, secret, metav1.GetOptions{})
		forbidden("get secret "+secret, err)
		_, err = core.Secrets(env).Patch(ctx, secret, types.MergePatchType, []byte(`{"stringData":{"request-objects.json":"[]"}}`), metav1.PatchOptions{})
		forbidden("patch secret "+secret, err)
		_, err = core.Secrets(env).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: env}}, metav1.UpdateOptions{})
		forbidden("replace secret "+secret, err)
		forbidden("delete secret "+secret, core.Secrets(env).Delete(ctx, secret, metav1.DeleteOptions{}))
	}
	_, err = core.Secrets(env).List(ctx, metav1.ListOptions{})
	forbidden("list the secrets of the environment namespace", err)

	// No way for the portal to reach something else at the host's
	// address: no service, endpoints or slice in the environment
	// namespace, no pod of its own there.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 10080}}}}
	_, err = core.Services(env).Create(ctx, svc, metav1.CreateOptions{})
	forbidden("create a service in the environment namespace", err)
	eps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.99"}}, Ports: []corev1.EndpointPort{{Port: 10080}}}}}
	_, err = core.Endpoints(env).Create(ctx, eps, metav1.CreateOptions{})
	forbidden("create endpoints in the environment namespace", err)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-mine", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.99"}}},
	}
	_, err = session.DiscoveryV1().EndpointSlices(env).Create(ctx, slice, metav1.CreateOptions{})
	forbidden("create an endpoint slice in the environment namespace", err)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: testImage}}}}
	_, err = core.Pods(env).Create(ctx, pod, metav1.CreateOptions{})
	forbidden("create a pod in the environment namespace", err)
	// Nor reach into the host through the API server.
	for _, sub := range []string{"exec", "attach", "portforward", "proxy"} {
		review, err := session.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: env, Verb: "create", Resource: "pods", Subresource: sub, Name: name}},
		}, metav1.CreateOptions{})
		if err != nil || review.Status.Allowed {
			t.Errorf("pods/%s of the host: %+v, %v; want not allowed", sub, review.Status, err)
		}
	}
	// Its namespace, whose labels name the environment, is not its to
	// change or delete.
	_, err = core.Namespaces().Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":{"portico.dev/environment":"elsewhere"}}}`), metav1.PatchOptions{})
	forbidden("relabel its namespace", err)
	forbidden("delete its namespace", core.Namespaces().Delete(ctx, name, metav1.DeleteOptions{}))

	// In its own namespace it may make what it likes: a config secret
	// asking for other request objects, and a service and a pod named and
	// labelled as the host's, under the names the host had there once.
	rogue := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "portico-session"}, StringData: map[string]string{
		"request-objects.json": `[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"rogue"}}]`,
		"variables.json":       `{}`,
	}}
	for _, secretName := range []string{"portico-session", name + "-config"} {
		rogue.Name = secretName
		if _, err := core.Secrets(name).Create(ctx, rogue, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a secret in its own namespace: %v", err)
		}
	}
	host, err := cluster.Client.CoreV1().Pods(env).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, podName := range []string{name, "session-host"} {
		decoy := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Labels: host.Labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: testImage}}},
		}
		if _, err := core.Pods(name).Create(ctx, decoy, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a pod in its own namespace: %v", err)
		}
		decoySvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: podName}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{labelSession: name, labelRole: roleSession},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 10080}}}}
		if _, err := core.Services(name).Create(ctx, decoySvc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a service in its own namespace: %v", err)
		}
	}
	if err := r.Allocate(ctx, inst, spec.ConfigPassword, runtime.Allocation{
		User: runtime.User{Username: "alice"}, Params: []runtime.EnvVar{{Name: "GREETING", Value: "Hi"}},
	}); err != nil {
		t.Fatal(err)
	}
	if cm, err := cluster.Client.CoreV1().ConfigMaps(name).Get(ctx, "greeting", metav1.GetOptions{}); err != nil || cm.Data["text"] != "Hi" {
		t.Errorf("the workshop's request object: %+v, %v", cm, err)
	}
	if _, err := cluster.Client.CoreV1().ConfigMaps(name).Get(ctx, "rogue", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the request object of the session's own secret was applied: %v", err)
	}
	// The session's pods never reach the runtime's caches, which watch
	// environment namespaces only.
	pods, err := r.hostPods(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := pods.List(labels.Everything()); err != nil || len(list) != 1 || list[0].UID != host.UID {
		t.Errorf("cached host pods %v, %v; want the host's alone", list, err)
	}
	r.mu.Lock()
	watched := slices.Collect(maps.Keys(r.hosts))
	r.mu.Unlock()
	if !slices.Equal(watched, []string{env}) {
		t.Errorf("pods watched in %v, want %s only", watched, env)
	}
	if st, err := r.Status(ctx, name); err != nil || st != inst {
		t.Errorf("Status = %+v, %v; want %+v", st, err, inst)
	}
	if got := podUID(t, spec); got != string(host.UID) {
		t.Errorf("the host pod was replaced")
	}
}
