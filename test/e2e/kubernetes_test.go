package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// The Kubernetes tests run the portal with --runtime kubernetes against a
// real API server (with etcd and the controller manager), shared by the
// tests of the package and started by the first that needs it. The test
// plays the kubelet: it writes the status of session pods.

var (
	kubeOnce    sync.Once
	kubeCluster *kubetest.Cluster
	kubeErr     error
	kubeCancel  context.CancelFunc
	// kubeFates is what the fake kubelet does with the host pod of a
	// session; the hosts of other sessions become ready.
	kubeMu    sync.Mutex
	kubeFates = map[string]kubetest.Fate{}
)

func requireKube(t *testing.T) *kubetest.Cluster {
	t.Helper()
	requireBinary(t)
	kubeOnce.Do(func() {
		kubeCluster, kubeErr = kubetest.Start()
		if kubeErr != nil {
			return
		}
		var ctx context.Context
		ctx, kubeCancel = context.WithCancel(context.Background())
		kubeCluster.Kubelet(ctx, "portico.dev/role=session", func(pod *corev1.Pod) kubetest.Fate {
			kubeMu.Lock()
			defer kubeMu.Unlock()
			if f, ok := kubeFates[pod.Labels["portico.dev/session"]]; ok {
				return f
			}
			if h := runnerFor(pod); h != nil {
				return h.run(pod)
			}
			return kubetest.Fate{Ready: true}
		})
	})
	if errors.Is(kubeErr, kubetest.ErrNoBinaries) {
		t.Skip(kubeErr)
	}
	if kubeErr != nil {
		t.Fatal(kubeErr)
	}
	return kubeCluster
}

func stopKube() {
	if kubeCluster != nil {
		kubeCancel()
		kubeCluster.Stop()
	}
}

func setFate(session string, f *kubetest.Fate) {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	if f == nil {
		delete(kubeFates, session)
	} else {
		kubeFates[session] = *f
	}
}

// kubeEntry sizes the workshop of a test portal on Kubernetes.
type kubeEntry struct {
	Capacity, Reserved, Initial int
	// Stopped leaves the workshop out of the portal: its environment stops.
	Stopped bool
}

// kubeDefinitions is a portal named name whose workshop uses the
// Kubernetes fields: a budget, session objects and request objects.
func kubeDefinitions(name string, e kubeEntry) string {
	workshops := fmt.Sprintf(`
    - name: lab-kube
      capacity: %d
      reserved: %d
      initial: %d
      expires: 60m`, e.Capacity, e.Reserved, e.Initial)
	if e.Stopped {
		workshops = " []"
	}
	return fmt.Sprintf(`apiVersion: training.educates.dev/v1beta1
kind: TrainingPortal
metadata:
  name: %s
spec:
  portal:
    credentials:
      admin: {username: %s, password: %s}
      robot: {username: %s, password: %s}
    clients:
      robot: {id: %s, secret: %s}
  workshops:%s
---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-kube
spec:
  title: Kubernetes lab
  workshop:
    image: registry.example/lab-kube:1
  request:
    parameters:
      - name: GREETING
        value: Hello
    objects:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: greeting
        data:
          text: $(GREETING) from $(session_namespace)
  session:
    namespaces:
      budget: small
    objects:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: session-info
        data:
          session: $(session_name)
          namespace: $(session_namespace)
          account: $(service_account)
          workshop: $(workshop_namespace)
          environment: $(environment_name)
          domain: $(ingress_domain)
`, name, adminUser, adminPass, robotUser, robotPass, clientID, clientSecret, workshops)
}

// startKubePortal starts a portal on the test cluster.
// kubeSessionDomain is the --session-domain of the portals on Kubernetes.
const kubeSessionDomain = "sessions.localhost"

func startKubePortal(t *testing.T, c *kubetest.Cluster, name string, e kubeEntry) *portal {
	t.Helper()
	return startKubePortalWith(t, c, name, e, nil)
}

// startKubePortalWith starts a portal on the test cluster with env added
// to its environment.
func startKubePortalWith(t *testing.T, c *kubetest.Cluster, name string, e kubeEntry, env []string) *portal {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, c.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &portal{
		t:       t,
		config:  filepath.Join(dir, "config", "portal.yaml"),
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "portal.log"),
		addr:    freeAddr(t),
		args: []string{"--runtime", "kubernetes", "--kubeconfig", kubeconfig,
			"--session-image", "registry.example/portico-session:test", "--ingress-domain", "training.example",
			// Sessions behind an ingress: a wildcard name of their own,
			// which browsers (and the tests' client) resolve to loopback.
			"--session-domain", kubeSessionDomain},
		env:           env,
		sessionDomain: kubeSessionDomain,
	}
	p.url = "http://" + p.addr
	if err := os.Mkdir(filepath.Dir(p.config), 0o700); err != nil {
		t.Fatal(err)
	}
	p.writeConfig(kubeDefinitions(name, e))
	t.Cleanup(p.cleanup)
	p.start()
	p.waitReady()
	return p
}

// awaitAvailable waits until the portal's environment has n sessions ready
// for somebody.
func awaitAvailable(t *testing.T, robot *client, env string, n int) {
	t.Helper()
	if msg := eventually(settle, func() string {
		var e environment
		if robot.get("/workshops/environment/"+env+"/status/", &e) != http.StatusOK || e.Available != n {
			return fmt.Sprintf("environment %+v, want %d available", e, n)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// kubeRequest asks the portal for a session of env for user, with the
// GREETING request parameter.
func kubeRequest(t *testing.T, robot *client, env, user, greeting string) allocation {
	t.Helper()
	resp, raw := robot.do("POST", "/workshops/environment/"+env+"/request/?index_url=https://hub.test/&user="+user,
		strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "`+greeting+`"}]}`), "Content-Type", "application/json")
	var a allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil || a.Name == "" {
		t.Fatalf("request for %s: %d %s", user, resp.StatusCode, raw)
	}
	if a.Namespace != a.Name {
		t.Errorf("session %s in namespace %q, want its own", a.Name, a.Namespace)
	}
	return a
}

// kubeSession is session name as the catalog shows it.
func kubeSession(t *testing.T, robot *client, env, name string) (catalogSession, bool) {
	t.Helper()
	var cat struct {
		Environments []environment
	}
	robot.mustGet("/workshops/catalog/environments/?sessions=true", &cat)
	for _, e := range cat.Environments {
		if e.Name != env || e.Sessions == nil {
			continue
		}
		for _, s := range *e.Sessions {
			if s.Name == name {
				return s, true
			}
		}
	}
	return catalogSession{}, false
}

// awaitSession waits until the catalog shows session name of env in state,
// owned by user.
func awaitSession(t *testing.T, robot *client, env, name, user, state string) {
	t.Helper()
	if msg := eventually(settle, func() string {
		s, ok := kubeSession(t, robot, env, name)
		if !ok || s.State != state || s.User != user {
			return fmt.Sprintf("session %s: %+v (listed: %v), want %s of %s", name, s, ok, state, user)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// kubeSessionClient is a client with the credentials of session of
// environment env: the kubeconfig its host serves and its terminal uses.
func kubeSessionClient(t *testing.T, c *kubetest.Cluster, env, session string) k8s.Interface {
	t.Helper()
	secret, err := c.Client.CoreV1().Secrets(env).Get(context.Background(), session+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(secret.Data["kubeconfig"])
	if err != nil {
		t.Fatal(err)
	}
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// kubeHostLeft names what is left of the host of session in environment
// namespace env.
func kubeHostLeft(c *kubetest.Cluster, env, session string) []string {
	ctx, core := context.Background(), c.Client.CoreV1()
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
	var left []string
	for _, what := range sortedKeys(gets) {
		if err := gets[what](); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("%s (%v)", what, err))
		}
	}
	return left
}

// awaitNamespaceGone waits until namespace ns is deleted or being deleted.
func awaitNamespaceGone(t *testing.T, c *kubetest.Cluster, ns string, timeout time.Duration) {
	t.Helper()
	if msg := eventually(timeout, func() string {
		got, err := c.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if err == nil && got.DeletionTimestamp == nil {
			return "namespace " + ns + " still there"
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err.Error()
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// TestKubernetesSessionLifecycle: acceptance items 1 and 3 through the REST
// API of the real binary. A session requested through the API gets its
// namespace with a Role and binding and its budget, and its host (account,
// pod, service, secrets) in the environment namespace, out of the
// session's reach; it is ready when its pod is, and is alice's;
// terminated, its namespace and host go. Session objects come at start,
// request objects with an owner.
func TestKubernetesSessionLifecycle(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	core := c.Client.CoreV1()
	const name = "kube-life"
	env := name + "-w01"
	first := env + "-s001"
	// The first session's pod stays starting until the test marks it
	// ready, as a kubelet would once its container is up.
	setFate(first, &kubetest.Fate{Reason: "ContainerCreating"})
	t.Cleanup(func() { setFate(first, nil) })

	// No reserve until the first request: alice's session is made for her.
	p := startKubePortal(t, c, name, kubeEntry{Capacity: 3, Reserved: 1, Initial: 0})
	robot := p.robot()
	if msg := eventually(settle, func() string {
		ns, err := core.Namespaces().Get(ctx, env, metav1.GetOptions{})
		if err != nil {
			return "environment namespace: " + err.Error()
		}
		if ns.Labels["portico.dev/portal"] != name || ns.Labels["portico.dev/environment"] != env {
			return fmt.Sprintf("environment namespace labels %v", ns.Labels)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	a := kubeRequest(t, robot, env, "alice", "Hi")
	if a.Name != first {
		t.Fatalf("alice got %s, want %s", a.Name, first)
	}
	// Everything of the session appears while its pod starts.
	checks := map[string]func() error{
		"namespace": func() error {
			ns, err := core.Namespaces().Get(ctx, first, metav1.GetOptions{})
			if err == nil && (ns.Labels["portico.dev/portal"] != name || ns.Labels["portico.dev/environment"] != env ||
				ns.Labels["portico.dev/session"] != first) {
				err = fmt.Errorf("labels %v, want portal, environment and session", ns.Labels)
			}
			return err
		},
		"service account": func() error { _, err := core.ServiceAccounts(env).Get(ctx, first, metav1.GetOptions{}); return err },
		"role": func() error {
			role, err := c.Client.RbacV1().Roles(first).Get(ctx, "portico-session", metav1.GetOptions{})
			if err == nil && len(role.Rules) == 0 {
				err = errors.New("no rules")
			}
			return err
		},
		"role binding": func() error {
			rb, err := c.Client.RbacV1().RoleBindings(first).Get(ctx, "portico-session", metav1.GetOptions{})
			if err == nil && (rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "portico-session" ||
				len(rb.Subjects) != 1 || rb.Subjects[0].Name != first || rb.Subjects[0].Namespace != env) {
				err = fmt.Errorf("binds %+v to %+v, want the session's account to its role", rb.Subjects, rb.RoleRef)
			}
			return err
		},
		"quotas": func() error {
			for _, q := range []string{"compute-resources", "compute-resources-timebound", "object-counts"} {
				if _, err := core.ResourceQuotas(first).Get(ctx, q, metav1.GetOptions{}); err != nil {
					return err
				}
			}
			return nil
		},
		"limit range": func() error {
			_, err := core.LimitRanges(first).Get(ctx, "resource-limits", metav1.GetOptions{})
			return err
		},
		"pod": func() error {
			pod, err := core.Pods(env).Get(ctx, first, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ctr := pod.Spec.Containers[0]; ctr.Image != "registry.example/lab-kube:1" || ctr.ReadinessProbe == nil {
				return fmt.Errorf("image %s, readiness probe %v: want the workshop's image, probed", ctr.Image, ctr.ReadinessProbe)
			}
			if pod.Spec.ServiceAccountName != first {
				return fmt.Errorf("runs as %q, want the session's account", pod.Spec.ServiceAccountName)
			}
			return nil
		},
		"service": func() error { _, err := core.Services(env).Get(ctx, first, metav1.GetOptions{}); return err },
		"session object": func() error {
			cm, err := core.ConfigMaps(first).Get(ctx, "session-info", metav1.GetOptions{})
			if err != nil {
				return err
			}
			want := map[string]string{"session": first, "namespace": first, "account": first, "workshop": env,
				"environment": env, "domain": "training.example"}
			if !maps.Equal(cm.Data, want) {
				return fmt.Errorf("data %v, want %v", cm.Data, want)
			}
			return nil
		},
		"request secret": func() error {
			s, err := core.Secrets(env).Get(ctx, first+"-request", metav1.GetOptions{})
			if err == nil && (string(s.Data["GREETING"]) != "Hi" || !strings.Contains(string(s.Data["allocation.json"]), `"username":"alice"`)) {
				err = fmt.Errorf("data %q, want alice and her parameter", s.Data)
			}
			return err
		},
		// alice's session is hers from its start: its request objects
		// come with it.
		"request object": func() error {
			cm, err := core.ConfigMaps(first).Get(ctx, "greeting", metav1.GetOptions{})
			if err == nil && cm.Data["text"] != "Hi from "+first {
				err = fmt.Errorf("text %q, want the parameter substituted", cm.Data["text"])
			}
			return err
		},
	}
	if msg := eventually(settle, func() string {
		var missing []string
		for _, what := range sortedKeys(checks) {
			if err := checks[what](); err != nil {
				missing = append(missing, what+": "+err.Error())
			}
		}
		return strings.Join(missing, "; ")
	}); msg != "" {
		t.Fatalf("session %s: %s", first, msg)
	}
	// Nothing of the host is where the session is admin.
	if pods, err := core.Pods(first).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods in the session namespace: %v, %v; want none", pods, err)
	}
	if secrets, err := core.Secrets(first).List(ctx, metav1.ListOptions{}); err != nil || len(secrets.Items) != 0 {
		t.Errorf("secrets in the session namespace: %v, %v; want none", secrets, err)
	}
	// The session's own credentials, those of its kubeconfig, reach
	// nothing of its host.
	session := kubeSessionClient(t, c, env, first)
	forbidden := map[string]func() error{
		"get the host pod":    func() error { _, err := session.CoreV1().Pods(env).Get(ctx, first, metav1.GetOptions{}); return err },
		"delete the host pod": func() error { return session.CoreV1().Pods(env).Delete(ctx, first, metav1.DeleteOptions{}) },
		"get the host service": func() error {
			_, err := session.CoreV1().Services(env).Get(ctx, first, metav1.GetOptions{})
			return err
		},
		"get the config secret": func() error {
			_, err := session.CoreV1().Secrets(env).Get(ctx, first+"-config", metav1.GetOptions{})
			return err
		},
		"get the request secret": func() error {
			_, err := session.CoreV1().Secrets(env).Get(ctx, first+"-request", metav1.GetOptions{})
			return err
		},
		"create a service in the environment namespace": func() error {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 10080}}}}
			_, err := session.CoreV1().Services(env).Create(ctx, svc, metav1.CreateOptions{})
			return err
		},
	}
	for _, what := range sortedKeys(forbidden) {
		if err := forbidden[what](); !apierrors.IsForbidden(err) {
			t.Errorf("%s with the session's credentials: %v, want forbidden", what, err)
		}
	}
	// Not ready while its pod is not.
	awaitSession(t, robot, env, first, "alice", "STARTING")

	// The kubelet's part: the container is up and its probe passes.
	pod, err := core.Pods(env).Get(ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kubetest.SetPodStatus(ctx, c.Client, pod, kubetest.Fate{Ready: true}); err != nil {
		t.Fatal(err)
	}
	awaitSession(t, robot, env, first, "alice", "WAITING")
	p.activate(a)
	awaitSession(t, robot, env, first, "alice", "RUNNING")

	// The reserve made after the first session has its session objects,
	// and no request objects until somebody has it.
	awaitAvailable(t, robot, env, 1)
	second := env + "-s002"
	if cm, err := core.ConfigMaps(second).Get(ctx, "session-info", metav1.GetOptions{}); err != nil || cm.Data["session"] != second {
		t.Errorf("session object of the reserve: %v, %v", cm, err)
	}
	if _, err := core.ConfigMaps(second).Get(ctx, "greeting", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("request object of the reserve before its allocation: %v", err)
	}
	if b := kubeRequest(t, robot, env, "bob", "Hey"); b.Name != second {
		t.Fatalf("bob got %s, want the reserve %s", b.Name, second)
	}
	if msg := eventually(settle, func() string {
		cm, err := core.ConfigMaps(second).Get(ctx, "greeting", metav1.GetOptions{})
		if err != nil {
			return "request object at allocation: " + err.Error()
		}
		if want := "Hey from " + second; cm.Data["text"] != want {
			return fmt.Sprintf("request object text %q, want %q", cm.Data["text"], want)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	// Terminate: the namespace goes, with everything in it, and the
	// host with it.
	for _, s := range []string{first, second} {
		if resp, raw := robot.do("GET", "/workshops/session/"+s+"/terminate/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("terminate %s: %d %s", s, resp.StatusCode, raw)
		}
	}
	if msg := eventually(2*settle, func() string {
		for _, s := range []string{first, second} {
			if _, err := core.Namespaces().Get(ctx, s, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("namespace of the terminated session %s still there (%v)", s, err)
			}
			if left := kubeHostLeft(c, env, s); len(left) > 0 {
				return fmt.Sprintf("host of the terminated session %s still there: %v", s, left)
			}
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	// The workshop leaves the portal: its environment stops, and its
	// namespace and that of its reserve are removed.
	awaitAvailable(t, robot, env, 1)
	third := env + "-s003"
	if _, err := core.Namespaces().Get(ctx, third, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace of the reserve %s: %v", third, err)
	}
	p.writeConfig(kubeDefinitions(name, kubeEntry{Stopped: true}))
	p.signal(syscall.SIGHUP)
	awaitNamespaceGone(t, c, third, 2*settle)
	awaitNamespaceGone(t, c, env, 2*settle)
}

// startFailures returns the times at which the portal logged a failed
// start of session, by attempt.
func startFailures(t *testing.T, log, session string) map[int]time.Time {
	t.Helper()
	out := map[int]time.Time{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="session start failed"`) || !strings.Contains(line, "session="+session+" ") {
			continue
		}
		var when time.Time
		attempt := 0
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "time="); ok {
				when, _ = time.Parse(time.RFC3339Nano, v)
			}
			if v, ok := strings.CutPrefix(field, "attempt="); ok {
				attempt, _ = strconv.Atoi(v)
			}
		}
		if attempt > 0 && !when.IsZero() {
			out[attempt] = when
		}
	}
	return out
}

// TestKubernetesFailedStart: acceptance item 4. A reserved session whose
// pod cannot pull its image fails its start with the kubelet's reason, its
// namespace is deleted, and it is tried again, backing off; it gives up
// its place to a person who needs it; the reserve is made again.
func TestKubernetesFailedStart(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	core := c.Client.CoreV1()
	const name = "kube-fail"
	env := name + "-w01"
	refill := env + "-s002"
	setFate(refill, &kubetest.Fate{Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.example/lab-kube:1"`})
	t.Cleanup(func() { setFate(refill, nil) })
	// Watch the refill's namespace come and go.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := core.Namespaces().Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=" + refill})
	if err != nil {
		t.Fatal(err)
	}
	var deletions atomic.Int32
	go func() {
		for e := range w.ResultChan() {
			if e.Type == watch.Deleted {
				deletions.Add(1)
			}
		}
	}()

	// Two places: alice's session and the reserve that cannot start.
	p := startKubePortal(t, c, name, kubeEntry{Capacity: 2, Reserved: 1, Initial: 1})
	robot := p.robot()
	awaitAvailable(t, robot, env, 1)
	if a := kubeRequest(t, robot, env, "alice", "Hi"); a.Name != env+"-s001" {
		t.Fatalf("alice got %s, want the reserve", a.Name)
	}

	// Three failed starts of the refill, each with the reason, each
	// leaving nothing in the cluster, each at least its backoff after the
	// one before. (Here deleting a namespace takes longer than the first
	// backoffs; the broker's tests show the schedule with a fake clock.)
	var failures map[int]time.Time
	if msg := eventually(4*settle, func() string {
		failures = startFailures(t, p.output(), refill)
		if len(failures) < 3 {
			return fmt.Sprintf("%d failed starts of %s logged, want 3", len(failures), refill)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	for _, line := range strings.Split(p.output(), "\n") {
		if strings.Contains(line, "session="+refill+" ") && strings.Contains(line, `msg="session start failed"`) &&
			!strings.Contains(line, `ImagePullBackOff: Back-off pulling image \"registry.example/lab-kube:1\"`) {
			t.Errorf("failed start logged without the kubelet's reason: %s", line)
		}
	}
	for n := 1; n < 3; n++ {
		backoff := time.Second << (n - 1)
		if gap := failures[n+1].Sub(failures[n]); gap < backoff {
			t.Errorf("attempt %d failed %s after attempt %d, want at least the backoff of %s", n+1, gap, n, backoff)
		}
	}
	t.Logf("failed starts of %s: %v; its namespace deleted %d times", refill, failures, deletions.Load())
	if n := deletions.Load(); n < 2 {
		t.Errorf("the refill's namespace was deleted %d times, want once per failed start", n)
	}

	// Both places are taken, one by the failing reserve: bob still gets a
	// session, a new one, and the failing reserve ends.
	b := kubeRequest(t, robot, env, "bob", "Yo")
	if b.Name == refill {
		t.Fatalf("bob got the reserve that cannot start")
	}
	awaitSession(t, robot, env, b.Name, "bob", "WAITING")
	awaitNamespaceGone(t, c, refill, 2*settle)

	// bob leaves: the reserve is made again, and starts.
	if resp, raw := robot.do("GET", "/workshops/session/"+b.Name+"/terminate/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("terminate: %d %s", resp.StatusCode, raw)
	}
	awaitAvailable(t, robot, env, 1)
	if msg := eventually(2*settle, func() string {
		if _, err := core.Namespaces().Get(ctx, refill, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("the ended reserve's namespace is still there (%v)", err)
		}
		if left := kubeHostLeft(c, env, refill); len(left) > 0 {
			return fmt.Sprintf("the ended reserve's host is still there: %v", left)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// TestKubernetesRestartAdopts: acceptance item 5. A portal killed with
// SIGKILL and started again keeps the session namespaces of live sessions
// as they are (an allocated session and a reserve), and removes those of
// sessions that ended or that it does not have.
func TestKubernetesRestartAdopts(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	core := c.Client.CoreV1()
	const name = "kube-adopt"
	env := name + "-w01"
	p := startKubePortal(t, c, name, kubeEntry{Capacity: 3, Reserved: 1, Initial: 1})
	robot := p.robot()
	awaitAvailable(t, robot, env, 1)
	alice := kubeRequest(t, robot, env, "alice", "Hi")
	p.activate(alice)
	awaitSession(t, robot, env, alice.Name, "alice", "RUNNING")
	awaitAvailable(t, robot, env, 1)
	// bob's session ends; its namespace goes.
	bob := kubeRequest(t, robot, env, "bob", "Yo")
	if resp, raw := robot.do("GET", "/workshops/session/"+bob.Name+"/terminate/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("terminate: %d %s", resp.StatusCode, raw)
	}
	if msg := eventually(2*settle, func() string {
		if _, err := core.Namespaces().Get(ctx, bob.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return "namespace of bob's ended session still there"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	awaitAvailable(t, robot, env, 1)
	reserve := env + "-s003"
	uids := map[string]types.UID{}
	for _, s := range []string{alice.Name, reserve} {
		pod, err := core.Pods(env).Get(ctx, s, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[s] = pod.UID
	}
	p.kill9()

	// While the portal is down, namespaces of this portal appear that no
	// live session owns: bob's ended session's (as a portal that died
	// before its deletion reached the cluster would leave it), and one of
	// a session the portal never had, with a host.
	stale := []string{bob.Name, env + "-s099"}
	for _, s := range stale {
		labels := map[string]string{"app.kubernetes.io/managed-by": "portico", "portico.dev/portal": name,
			"portico.dev/environment": env, "portico.dev/session": s, "portico.dev/role": "session"}
		ns, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s, Labels: labels}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s == bob.Name {
			continue
		}
		owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Namespace", Name: s, UID: ns.UID}}
		host := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: s, Labels: labels, OwnerReferences: owner},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "session", Image: "registry.example/lab-kube:1"}}}}
		if _, err := core.Pods(env).Create(ctx, host, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s + "-config", Labels: labels, OwnerReferences: owner}}
		if _, err := core.Secrets(env).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p.restart()
	for _, s := range stale {
		awaitNamespaceGone(t, c, s, 2*settle)
		if msg := eventually(2*settle, func() string {
			if left := kubeHostLeft(c, env, s); len(left) > 0 {
				return fmt.Sprintf("host of %s still there: %v", s, left)
			}
			return ""
		}); msg != "" {
			t.Fatal(msg)
		}
	}
	robot = p.robot()
	awaitAvailable(t, robot, env, 1)
	awaitSession(t, robot, env, alice.Name, "alice", "RUNNING")
	for s, uid := range uids {
		pod, err := core.Pods(env).Get(ctx, s, metav1.GetOptions{})
		if err != nil || pod.UID != uid {
			t.Fatalf("pod of %s after the restart: %v (uid %v, was %s)", s, err, pod.GetUID(), uid)
		}
	}
	// The reserve is the one handed out, not a replacement.
	if got := kubeRequest(t, robot, env, "carol", "Hi"); got.Name != reserve {
		t.Fatalf("carol got %s, want the adopted %s", got.Name, reserve)
	}
}
