package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	// kubeFates is what the fake kubelet does with the pod of a session
	// namespace; pods of other namespaces become ready. kubeSeen counts
	// the pods it saw per namespace.
	kubeMu    sync.Mutex
	kubeFates = map[string]kubetest.Fate{}
	kubeSeen  = map[string]int{}
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
			kubeSeen[pod.Namespace]++
			if f, ok := kubeFates[pod.Namespace]; ok {
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

func setFate(ns string, f *kubetest.Fate) {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	if f == nil {
		delete(kubeFates, ns)
	} else {
		kubeFates[ns] = *f
	}
}

func seen(ns string) int {
	kubeMu.Lock()
	defer kubeMu.Unlock()
	return kubeSeen[ns]
}

// kubeDefinitions is a portal named name whose workshop uses the
// Kubernetes fields: a budget, session objects and request objects.
func kubeDefinitions(name string) string {
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
  workshops:
    - name: lab-kube
      capacity: 3
      reserved: 1
      expires: 60m
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
          account: $(service_account)
          workshop: $(workshop_namespace)
`, name, adminUser, adminPass, robotUser, robotPass, clientID, clientSecret)
}

// startKubePortal starts a portal on the test cluster.
func startKubePortal(t *testing.T, c *kubetest.Cluster, name string) *portal {
	t.Helper()
	return startKubePortalWith(t, c, name, nil)
}

// startKubePortalWith starts a portal on the test cluster with env added
// to its environment.
func startKubePortalWith(t *testing.T, c *kubetest.Cluster, name string, env []string) *portal {
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
		args:    []string{"--runtime", "kubernetes", "--kubeconfig", kubeconfig, "--session-image", "registry.example/portico-session:test"},
		env:     env,
	}
	p.url = "http://" + p.addr
	if err := os.Mkdir(filepath.Dir(p.config), 0o700); err != nil {
		t.Fatal(err)
	}
	p.writeConfig(kubeDefinitions(name))
	t.Cleanup(p.cleanup)
	p.start()
	p.waitReady()
	return p
}

// available waits until the portal's environment has n sessions ready
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

// TestKubernetesSessionLifecycle: acceptance items 1, 3 and 4 of sessions
// on Kubernetes, through the REST API of the real binary.
func TestKubernetesSessionLifecycle(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	core := c.Client.CoreV1()
	const name = "kube-life"
	env := name + "-w01"
	// The reserve refilled after the first allocation cannot pull its
	// image, until the test lets it.
	refill := env + "-s002"
	setFate(refill, &kubetest.Fate{Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.example/lab-kube:1"`})
	t.Cleanup(func() { setFate(refill, nil) })

	p := startKubePortal(t, c, name)
	robot := p.robot()
	// The environment's namespace, then the reserved session's.
	if msg := eventually(settle, func() string {
		if _, err := core.Namespaces().Get(ctx, env, metav1.GetOptions{}); err != nil {
			return "environment namespace: " + err.Error()
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	awaitAvailable(t, robot, env, 1)
	first := env + "-s001"
	ns, err := core.Namespaces().Get(ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["portico.dev/portal"] != name || ns.Labels["portico.dev/environment"] != env || ns.Labels["portico.dev/session"] != first {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	checks := map[string]func() error{
		"service account": func() error { _, err := core.ServiceAccounts(first).Get(ctx, first, metav1.GetOptions{}); return err },
		"role": func() error {
			_, err := c.Client.RbacV1().Roles(first).Get(ctx, "portico-session", metav1.GetOptions{})
			return err
		},
		"role binding": func() error {
			_, err := c.Client.RbacV1().RoleBindings(first).Get(ctx, "portico-session", metav1.GetOptions{})
			return err
		},
		"quota": func() error {
			_, err := core.ResourceQuotas(first).Get(ctx, "compute-resources", metav1.GetOptions{})
			return err
		},
		"limit range": func() error {
			_, err := core.LimitRanges(first).Get(ctx, "resource-limits", metav1.GetOptions{})
			return err
		},
		"pod": func() error {
			pod, err := core.Pods(first).Get(ctx, "session-host", metav1.GetOptions{})
			if err == nil && pod.Spec.Containers[0].Image != "registry.example/lab-kube:1" {
				err = fmt.Errorf("image %s, want the workshop's", pod.Spec.Containers[0].Image)
			}
			return err
		},
		"service": func() error { _, err := core.Services(first).Get(ctx, "session-host", metav1.GetOptions{}); return err },
		"session object": func() error {
			cm, err := core.ConfigMaps(first).Get(ctx, "session-info", metav1.GetOptions{})
			if err == nil && (cm.Data["account"] != first || cm.Data["workshop"] != env) {
				err = fmt.Errorf("data %v", cm.Data)
			}
			return err
		},
	}
	for what, check := range checks {
		if err := check(); err != nil {
			t.Errorf("%s of %s: %v", what, first, err)
		}
	}
	if _, err := core.ConfigMaps(first).Get(ctx, "greeting", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("request object before allocation: %v", err)
	}

	// Allocation of the reserve, with a request parameter.
	resp, raw := robot.do("POST", "/workshops/environment/"+env+"/request/?index_url=https://hub.test/&user=alice",
		strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "Hi"}]}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request: %d %s", resp.StatusCode, raw)
	}
	if !strings.Contains(string(raw), `"name":"`+first+`"`) || !strings.Contains(string(raw), `"namespace":"`+first+`"`) {
		t.Fatalf("allocation %s, want the reserved session %s in its namespace", raw, first)
	}
	if msg := eventually(settle, func() string {
		cm, err := core.ConfigMaps(first).Get(ctx, "greeting", metav1.GetOptions{})
		if err != nil {
			return "request object: " + err.Error()
		}
		if want := "Hi from " + first; cm.Data["text"] != want {
			return fmt.Sprintf("request object text %q, want %q", cm.Data["text"], want)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	// The refill fails to pull its image: the start fails with the reason,
	// its namespace is deleted, and it is tried again, backing off.
	if msg := eventually(2*settle, func() string {
		if n := seen(refill); n < 2 {
			return fmt.Sprintf("the refill's pod was made %d times, want a retry", n)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	if !strings.Contains(p.output(), "ImagePullBackOff") {
		t.Error("the portal's log does not give the reason of the failed start")
	}
	setFate(refill, nil)
	awaitAvailable(t, robot, env, 1)

	// Terminate: the namespace goes.
	resp, raw = robot.do("GET", "/workshops/session/"+first+"/terminate/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("terminate: %d %s", resp.StatusCode, raw)
	}
	if msg := eventually(2*settle, func() string {
		if _, err := core.Namespaces().Get(ctx, first, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("namespace of the terminated session still there (%v)", err)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// TestKubernetesRestartAdopts: acceptance item 5. A portal killed with
// SIGKILL and started again keeps the session namespaces of live sessions
// as they are, and removes those of sessions it does not have.
func TestKubernetesRestartAdopts(t *testing.T) {
	c := requireKube(t)
	ctx := context.Background()
	core := c.Client.CoreV1()
	const name = "kube-adopt"
	env := name + "-w01"
	p := startKubePortal(t, c, name)
	robot := p.robot()
	awaitAvailable(t, robot, env, 1)
	reserve := env + "-s001"
	pod, err := core.Pods(reserve).Get(ctx, "session-host", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.kill9()

	// A session namespace of this portal that no live session owns: what
	// is left of a session that ended while its namespace was kept.
	stale := env + "-s099"
	labels := map[string]string{"app.kubernetes.io/managed-by": "portico", "portico.dev/portal": name,
		"portico.dev/environment": env, "portico.dev/session": stale, "portico.dev/role": "session"}
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stale, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.restart()
	if msg := eventually(2*settle, func() string {
		ns, err := core.Namespaces().Get(ctx, stale, metav1.GetOptions{})
		if err == nil && ns.DeletionTimestamp == nil {
			return "the namespace of a session the portal does not have is kept"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	robot = p.robot()
	awaitAvailable(t, robot, env, 1)
	again, err := core.Pods(reserve).Get(ctx, "session-host", metav1.GetOptions{})
	if err != nil || again.UID != pod.UID {
		t.Fatalf("pod of the reserved session after the restart: %v (uid %s, was %s)", err, again.UID, pod.UID)
	}
	// It is the one handed out, not a replacement.
	resp, raw := robot.do("GET", "/workshops/environment/"+env+"/request/?index_url=https://hub.test/&user=bob", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"name":"`+reserve+`"`) {
		t.Fatalf("request after restart: %d %s, want the adopted %s", resp.StatusCode, raw, reserve)
	}
}
