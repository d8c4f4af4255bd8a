package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// hostRunner plays the kubelet and the cluster network for the session
// pods of one portal, so that the portal reaches real session hosts at
// their service addresses: it runs portico-session for each pod as the pod
// would (its home seeded from the pod's Secret), and serves as the
// portal's HTTP proxy, mapping <pod>.<environment namespace>.svc:10080 to
// the host it runs.
type hostRunner struct {
	t      *testing.T
	client k8s.Interface
	dir    string
	proxy  *httptest.Server

	mu       sync.Mutex
	addrs    map[string]string // service address → local address
	services map[string]string // session → service address
	procs    []*exec.Cmd
}

var (
	hostRunnersMu sync.Mutex
	hostRunners   = map[string]*hostRunner{} // by portal name
)

func newHostRunner(t *testing.T, c *kubetest.Cluster, portal string) *hostRunner {
	h := &hostRunner{t: t, client: c.Client, dir: t.TempDir(), addrs: map[string]string{}, services: map[string]string{}}
	h.proxy = httptest.NewServer(http.HandlerFunc(h.serveProxy))
	hostRunnersMu.Lock()
	hostRunners[portal] = h
	hostRunnersMu.Unlock()
	t.Cleanup(func() {
		hostRunnersMu.Lock()
		delete(hostRunners, portal)
		hostRunnersMu.Unlock()
		h.proxy.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, cmd := range h.procs {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return h
}

// runnerFor is the host runner of the portal of pod, if any.
func runnerFor(pod *corev1.Pod) *hostRunner {
	hostRunnersMu.Lock()
	defer hostRunnersMu.Unlock()
	return hostRunners[pod.Labels["portico.dev/portal"]]
}

func (h *hostRunner) serveProxy(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Host
	// The portal's proxy to sessions keeps the browser's Host, and Go's
	// transport puts that Host in the absolute URL it sends a proxy: the
	// session is then known by its origin, <session>.<domain>.
	h.mu.Lock()
	if session, _, ok := strings.Cut(r.URL.Hostname(), "."); ok && h.services[session] != "" {
		service = h.services[session]
	}
	target, ok := h.addrs[service]
	h.mu.Unlock()
	if !ok {
		http.Error(w, "no such service: "+service, http.StatusBadGateway)
		return
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: "http", Host: target})
		pr.Out.Host = pr.In.Host
	}}
	rp.ServeHTTP(w, r)
}

// run starts the session host of pod and returns the status a kubelet
// would report.
func (h *hostRunner) run(pod *corev1.Pod) kubetest.Fate {
	if err := h.start(pod); err != nil {
		return kubetest.Fate{Reason: "RunContainerError", Message: err.Error()}
	}
	return kubetest.Fate{Ready: true}
}

func (h *hostRunner) start(pod *corev1.Pod) error {
	ctx := context.Background()
	session := pod.Labels["portico.dev/session"]
	secret, err := h.client.CoreV1().Secrets(pod.Namespace).Get(ctx, session+"-config", metav1.GetOptions{})
	if err != nil {
		return err
	}
	seed, home := filepath.Join(h.dir, session, "seed"), filepath.Join(h.dir, session, "home")
	for _, d := range []string{seed, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for _, k := range []string{"session.json", "kubeconfig"} {
		if err := os.WriteFile(filepath.Join(seed, k), secret.Data[k], 0o600); err != nil {
			return err
		}
	}
	// The image's program (deploy/kubernetes/Dockerfile.session), with
	// this machine's paths for the pod's.
	if c := pod.Spec.Containers[0].Command; len(c) == 0 || c[0] != "portico-session" {
		return fmt.Errorf("pod command %q: the session image runs portico-session", c)
	}
	cmd := exec.Command(sessionBinary, "--home", home, "--listen", "127.0.0.1:0", "--seed", seed,
		"--allocation-file", filepath.Join(h.dir, session, "allocation.json"))
	cmd.Dir = home
	logf, err := os.Create(filepath.Join(h.dir, session, "host.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	h.mu.Lock()
	h.procs = append(h.procs, cmd)
	h.mu.Unlock()
	for deadline := time.Now().Add(settle); ; time.Sleep(20 * time.Millisecond) {
		addr, err := os.ReadFile(filepath.Join(home, ".portico", "address"))
		if err == nil {
			service := pod.Name + "." + pod.Namespace + ".svc:10080"
			h.mu.Lock()
			h.addrs[service] = string(addr)
			h.services[session] = service
			h.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("session host of %s did not serve", session)
		}
	}
}

// TestKubernetesKubeconfigThroughPortal: acceptance item 2. The kubeconfig
// a front end gets from the session's /config/kubeconfig, through the
// portal and the session's service, works with client-go in the session's
// namespace only.
func TestKubernetesKubeconfigThroughPortal(t *testing.T) {
	c := requireKube(t)
	const name = "kube-cfg"
	env := name + "-w01"
	h := newHostRunner(t, c, name)
	p := startKubePortalWith(t, c, name, kubeEntry{Capacity: 3, Reserved: 1, Initial: 1}, []string{"HTTP_PROXY=" + h.proxy.URL, "http_proxy=" + h.proxy.URL, "NO_PROXY=", "no_proxy="})
	robot := p.robot()
	awaitAvailable(t, robot, env, 1)
	ctx := context.Background()

	var sessions []string
	for _, user := range []string{"alice", "bob"} {
		var a allocation
		if code := robot.get("/workshops/environment/"+env+"/request/?index_url=https://hub.test/&user="+user, &a); code != http.StatusOK {
			t.Fatalf("request for %s: %d", user, code)
		}
		sessions = append(sessions, a.Name)
	}
	var cfg struct{ URL, Password string }
	robot.mustGet("/workshops/session/"+sessions[0]+"/config/", &cfg)
	var kubeconfig []byte
	if msg := eventually(settle, func() string {
		resp, raw := p.client().do("GET", cfg.URL+"/config/kubeconfig?token="+url.QueryEscape(cfg.Password), nil)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("/config/kubeconfig: %d %s", resp.StatusCode, raw)
		}
		kubeconfig = raw
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	client, err := k8s.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "from-the-session"}}
	if _, err := client.CoreV1().ConfigMaps(sessions[0]).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Errorf("create a config map in its own namespace: %v", err)
	}
	if _, err := client.CoreV1().ConfigMaps(sessions[1]).Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a config map in another session's namespace: %v, want forbidden", err)
	}
	// Nothing at cluster scope, to read or to write.
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list namespaces: %v, want forbidden", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-cfg-mine"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create a namespace: %v, want forbidden", err)
	}
	// alice's session came from the reserve: its host got its owner by
	// the portal's POST, through the same path (the test writes no
	// allocation file).
	var vars map[string]string
	resp, raw := p.client().do("GET", cfg.URL+"/config/variables?token="+url.QueryEscape(cfg.Password), nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &vars) != nil || vars["username"] != "alice" {
		t.Errorf("variables of alice's session: %d %s", resp.StatusCode, raw)
	}
}

// TestBrowserKubernetes: the browser flow of a person (register, start,
// terminal, finish) and the admin's view of the session, on Kubernetes,
// with sessions on their own origins under --session-domain, as behind an
// ingress with a wildcard name.
func TestBrowserKubernetes(t *testing.T) {
	requireChromium(t)
	c := requireKube(t)
	const name = portalName // the browser helpers know its environment
	h := newHostRunner(t, c, name)
	p := startKubePortalWith(t, c, name, kubeEntry{Capacity: 2, Reserved: 1, Initial: 1},
		[]string{"HTTP_PROXY=" + h.proxy.URL, "http_proxy=" + h.proxy.URL, "NO_PROXY=", "no_proxy="})
	awaitAvailable(t, p.robot(), envName, 1)
	browsers := newChromium(t)
	alice := browsers.person("alice", p)
	alice.register("alice")
	alice.waitCard("available")
	session := alice.startWorkshop()
	alice.waitDashboard(session)
	if loc := alice.location(); !strings.HasPrefix(loc, "http://"+session+"."+kubeSessionDomain+":") {
		t.Errorf("the dashboard is at %s, not on the session's origin under --session-domain", loc)
	}
	alice.typeInTerminal(`echo "kube-$((6*7))"`, "kube-42")

	admin := browsers.person("admin", p)
	admin.open("/accounts/login/?next=/admin/sessions/")
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/sessions/")
	admin.open("/workshops/session/" + session + "/open/")
	admin.waitDashboard(session)

	alice.finish(session)
	awaitNamespaceGone(t, c, session, settle)
}
