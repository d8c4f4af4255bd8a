// Package kubetest runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver and kube-controller-manager on free loopback ports, in a
// temporary directory, from binaries built by scripts/kube-test-binaries
// (Debian ships no kube-apiserver). There is no kubelet and no scheduler:
// pods stay Pending, and tests play the kubelet's part by writing pod
// status themselves.
//
// The controller manager runs the controllers the portal relies on in a
// real cluster: namespace deletion, service accounts and their token
// secrets, resource quota status, garbage collection, and the aggregation
// of the built-in admin role whose rules the sessions' Roles take.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes release scripts/kube-test-binaries builds by
// default; the default cache directory is named after it.
const Version = "v1.37.2"

// AssetsEnv names the directory holding the binaries; the build script
// reads the same variable.
const AssetsEnv = "PORTICO_KUBE_ASSETS"

// ErrNoBinaries is wrapped by Start when the binaries are not built.
var ErrNoBinaries = errors.New("Kubernetes test binaries not found: run scripts/kube-test-binaries (or set " + AssetsEnv + ")")

var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// AssetsDir is where the binaries are looked for: $PORTICO_KUBE_ASSETS, or
// the build script's default cache directory.
func AssetsDir() string {
	if d := os.Getenv(AssetsEnv); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "portico", "kube-"+Version)
}

// Cluster is a running control plane.
type Cluster struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// Client is a clientset made of Config.
	Client kubernetes.Interface
	// CA is the PEM certificate authority of the API server's certificate,
	// also the root CA the controller manager puts in token secrets.
	CA []byte

	dir   string
	procs []*proc // in start order; stopped in reverse
	once  sync.Once
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Start starts etcd, the API server and the controller manager, and
// returns once the API server is ready. The error wraps ErrNoBinaries when
// the binaries are missing; callers skip then.
func Start() (_ *Cluster, err error) {
	assets := AssetsDir()
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(assets, b)); err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s missing in %s", ErrNoBinaries, b, assets)
		}
	}
	dir, err := os.MkdirTemp("", "portico-kubetest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	pki, err := writePKI(dir)
	if err != nil {
		return nil, err
	}
	c.CA = pki.ca
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	// system:masters is the superuser group, as for cluster-admin.
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.run("etcd", filepath.Join(assets, "etcd"),
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", // test data: speed over durability
		"--log-level=warn"); err != nil {
		return nil, err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.run("kube-apiserver", filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver"),
		"--tls-cert-file="+pki.servingCert, "--tls-private-key-file="+pki.servingKey,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		// As in real clusters (kubeadm, the managed ones): what keeps
		// privileged pods out of a namespace is its pod security.
		"--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.saKey, "--service-account-signing-key-file="+pki.saKey,
		// Every session host has a Service: room for the benchmark
		// harness's reserve of 1,000 (a /24 holds 254).
		"--service-cluster-ip-range=10.0.0.0/16",
		// Without it the server exits: it will not advertise 127.0.0.1
		// as the endpoint of the kubernetes service.
		"--endpoint-reconciler-type=none",
		"--v=0"); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.ca},
		QPS:             200,
		Burst:           400,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if err := c.awaitReady(60 * time.Second); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, adminKubeconfig(host, pki.caFile, token), 0o600); err != nil {
		return nil, err
	}
	if err := c.run("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=namespace-controller,serviceaccount-controller,serviceaccount-token-controller,resourcequota-controller,garbage-collector-controller,clusterrole-aggregation-controller",
		"--service-account-private-key-file="+pki.saKey,
		"--root-ca-file="+pki.caFile,
		"--leader-elect=false",
		"--secure-port=0", // serves nothing the tests need
		"--concurrent-namespace-syncs=10",
		"--v=0"); err != nil {
		return nil, err
	}
	// Until the aggregation controller has filled in the built-in admin
	// role, it has no rules, and a session's Role made from it none.
	if err := c.awaitAdminRole(60 * time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) awaitAdminRole(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		role, err := c.Client.RbacV1().ClusterRoles().Get(ctx, "admin", metav1.GetOptions{})
		if err == nil && len(role.Rules) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the admin cluster role was not aggregated within %s (%v)\n%s", timeout, err, c.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the controller manager and the API server, then etcd (the
// API server retries for a long time when etcd goes first), and removes
// the temporary directory. Safe to call more than once.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		os.RemoveAll(c.dir)
	})
}

// Logs returns the last lines each component wrote, for a failing test.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s:\n%s\n", p.name, tail(p.log, 20))
	}
	return b.String()
}

func (c *Cluster) run(name, path string, args ...string) error {
	logPath := filepath.Join(c.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The components die with the test process even when it is killed
	// before Stop runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	return nil
}

// awaitReady polls /readyz until the API server answers ok.
func (c *Cluster) awaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited at start:\n%s", p.name, tail(p.log, 20))
			default:
			}
		}
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("ok")) {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %v\n%s", timeout, last, c.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type pki struct {
	ca                      []byte
	caFile                  string
	servingCert, servingKey string
	saKey                   string
}

// writePKI makes a CA, a serving certificate for 127.0.0.1 signed by it,
// and the key that signs service account tokens.
func writePKI(dir string) (pki, error) {
	var p pki
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "portico-kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return p, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return p, err
	}
	p.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return p, err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return p, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return p, err
	}
	p.caFile = filepath.Join(dir, "ca.crt")
	p.servingCert = filepath.Join(dir, "apiserver.crt")
	p.servingKey = filepath.Join(dir, "apiserver.key")
	p.saKey = filepath.Join(dir, "sa.key")
	files := map[string][]byte{
		p.caFile:      p.ca,
		p.servingCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		p.servingKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		p.saKey:       pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
	}
	for path, b := range files {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return p, err
		}
	}
	return p, nil
}

func adminKubeconfig(host, caFile, token string) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, host, caFile, token)
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "(no log)"
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// Fate is what the fake kubelet does with a pod: make it ready, or leave
// it waiting with a container failure reason.
type Fate struct {
	Ready   bool
	Reason  string // a container waiting reason, such as ImagePullBackOff
	Message string
}

// Kubelet plays the kubelet's part for pods matching selector until ctx
// ends: each new pod gets the status fate returns for it, written through
// the status subresource, as a kubelet would.
func (c *Cluster) Kubelet(ctx context.Context, selector string, fate func(*corev1.Pod) Fate) {
	handle := func(pod *corev1.Pod) {
		if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending || len(pod.Status.ContainerStatuses) > 0 {
			return // handled already
		}
		f := fate(pod)
		if err := SetPodStatus(ctx, c.Client, pod, f); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "kubetest: fake kubelet: %s/%s: %v\n", pod.Namespace, pod.Name, err)
		}
	}
	go func() {
		for ctx.Err() == nil {
			w, err := c.Client.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for e := range w.ResultChan() {
				if pod, ok := e.Object.(*corev1.Pod); ok && (e.Type == watch.Added || e.Type == watch.Modified) {
					handle(pod)
				}
			}
			w.Stop()
		}
	}()
	// Pods made before the watch began.
	if list, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: selector}); err == nil {
		for i := range list.Items {
			handle(&list.Items[i])
		}
	}
}

// SetPodStatus writes the status a kubelet would for fate: Running and
// Ready, or Pending with the container waiting for fate.Reason.
func SetPodStatus(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, fate Fate) error {
	pod = pod.DeepCopy()
	now := metav1.Now()
	var statuses []corev1.ContainerStatus
	for _, ctr := range pod.Spec.Containers {
		s := corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image}
		if fate.Ready {
			s.Ready = true
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else {
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: fate.Reason, Message: fate.Message}
		}
		statuses = append(statuses, s)
	}
	pod.Status.ContainerStatuses = statuses
	ready := corev1.ConditionFalse
	pod.Status.Phase = corev1.PodPending
	if fate.Ready {
		ready = corev1.ConditionTrue
		pod.Status.Phase = corev1.PodRunning
	}
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
	}
	_, err := client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

// Kubeconfig is a kubeconfig of the cluster administrator, the CA inline,
// for programs under test that take a --kubeconfig.
func (c *Cluster) Kubeconfig() []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, c.Config.Host, base64.StdEncoding.EncodeToString(c.CA), c.Config.BearerToken)
}
