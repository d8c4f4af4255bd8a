package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// The kube scenario runs the Kubernetes runtime against a real
// kube-apiserver whose nodes and pod lifecycles kwok simulates (there is no
// kubelet here): kube-apiserver, etcd and kube-controller-manager from
// kubetest, kwok with fake nodes, and the harness itself as the scheduler,
// binding each pending pod to a node.

const (
	// kwokEnv names the directory holding kwok and its stages;
	// scripts/kwok-binary reads the same variable.
	kwokEnv     = "PORTICO_KWOK"
	kwokVersion = "v0.8.0"
	// kwokLabel marks the fake nodes kwok manages.
	kwokLabel = "portico.dev/kwok"
	// podsPerNode is the pod capacity of a fake node, as on a large real
	// one.
	podsPerNode = 250
	// kubeSessionImage names the session host image; kwok runs no image.
	kubeSessionImage = "portico-session:bench"
	// kubeProfileWindow is how long the fill is profiled, from the start
	// of the portal, with --profile-at kube/<sessions>.
	kubeProfileWindow = 30 * time.Second
)

// Goals of issue 14 (goal 6), on 2 cores, for a reserve of
// kubeGoalSessions.
const (
	kubeGoalSessions = 1000
	kubeReadyGoal    = 3 * time.Minute
	kubeAdoptGoal    = 15 * time.Second
	kubeMemoryGoalMB = 200
)

// kwokDir is where scripts/kwok-binary puts kwok and its stages:
// $PORTICO_KWOK, or the script's default cache directory.
func kwokDir() string {
	if d := os.Getenv(kwokEnv); d != "" {
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
	return filepath.Join(cache, "portico", "kwok-"+kwokVersion)
}

// kubeMissing says what the kube scenario lacks to run, and how to build
// it; nil when everything is there.
func kubeMissing() error {
	var missing []string
	for _, f := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if !regularFile(filepath.Join(kubetest.AssetsDir(), f)) {
			missing = append(missing, f+" (run scripts/kube-test-binaries, or set "+kubetest.AssetsEnv+")")
		}
	}
	for _, f := range []string{"kwok", "stages.yaml"} {
		if !regularFile(filepath.Join(kwokDir(), f)) {
			missing = append(missing, f+" (run scripts/kwok-binary, or set "+kwokEnv+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the kube scenario needs %s", strings.Join(missing, ", "))
	}
	return nil
}

func regularFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// kubeScenario fills a reserve of --kube-sessions sessions on the
// Kubernetes runtime and measures how fast they become ready, what they
// cost the API server and the portal, and how long a restarted portal
// takes to adopt them.
func (b *bench) kubeScenario(ctx context.Context) error {
	o := b.opts
	n := o.kubeSessions
	if err := kubeMissing(); err != nil {
		return err
	}
	b.report.section("sessions on Kubernetes", fmt.Sprintf("one portal on SQLite with the KUBERNETES runtime against a real "+
		"kube-apiserver %s (with etcd and kube-controller-manager), whose nodes and pods kwok %s simulates: %d fake nodes "+
		"of %d pods, pods made Running and Ready by kwok's fast stages, bound to nodes by the harness (the scheduler's one "+
		"request per pod). The portal starts with a reserve of %d sessions; ready = the catalog's available count "+
		"(polled every 250 ms), timed from the start of the portal process. API objects: every listable kind, counted "+
		"before the portal starts and once all are ready. API requests: apiserver_request_total from the API server's "+
		"/metrics over the same span: the portal's, and those its objects cause in the controller manager, kwok and the "+
		"harness's binder. Re-adoption: the portal is killed (SIGKILL; a SIGTERM would end its sessions), started again "+
		"on the same data, and timed until it logs `sessions adopted` (which waits for the killed holder's reconciler "+
		"lease to lapse, up to 6 s).", kubetest.Version, kwokVersion, nodesFor(n), podsPerNode, n))

	cluster, err := kubetest.Start()
	if err != nil {
		return err
	}
	defer cluster.Stop()
	dir, err := b.tempDir("kube")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cluster.Kubeconfig(), 0o600); err != nil {
		return err
	}
	nodes, err := addNodes(ctx, cluster.Client, nodesFor(n))
	if err != nil {
		return err
	}
	stopKwok, kwokPid, err := b.startKwok(ctx, dir, kubeconfig)
	if err != nil {
		return err
	}
	defer stopKwok()
	if err := awaitNodesReady(ctx, cluster.Client, nodes, time.Minute); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(filepath.Join(dir, "kwok.log"), 2000))
	}
	bindCtx, stopBinding := context.WithCancel(ctx)
	defer stopBinding()
	go bindPods(bindCtx, cluster.Client, nodes, b.logf)
	b.logf("cluster up: %s, %d kwok nodes", cluster.Config.Host, len(nodes))

	objectsBefore, err := countObjects(ctx, cluster)
	if err != nil {
		return err
	}
	requestsBefore, err := requestTotals(ctx, cluster.Client)
	if err != nil {
		return err
	}
	components := b.components(kwokPid)
	componentsBefore := componentCPU(components)
	cfg := portalConfig{name: "kube", runtime: "kubernetes", capacity: n, reserved: n, noReserveWait: true,
		args: []string{"--kubeconfig", kubeconfig, "--session-image", kubeSessionImage}}
	t0 := time.Now()
	p, err := b.startPortal(ctx, cfg)
	if err != nil {
		return err
	}
	// Killed, never stopped: a single portal that stops ends its
	// sessions, which is no figure of this run.
	defer func() { p.kill() }()
	var prof *profiler
	if o.profiled("kube", n) {
		prof = b.startProfiles(ctx, p.debugURL, fmt.Sprintf("the first %s of the kube fill", kubeProfileWindow), kubeProfileWindow)
	}
	fill, err := b.awaitKubeReady(ctx, p, n, t0, o.kubeLimit)
	if perr := prof.wait(); perr != nil {
		b.logf("kube profile: %v", perr)
	}
	cpu, _ := p.cpu()
	rss, _ := p.rssKB()
	peak, _ := statusKB(p.pid, "VmHWM")
	componentsUsed := diffCounts(componentsBefore, componentCPU(components))
	requestsAfter, rerr := requestTotals(ctx, cluster.Client)
	objectsAfter, oerr := countObjects(ctx, cluster)
	if err := errors.Join(rerr, oerr); err != nil {
		return err
	}
	b.logf("kube: %d of %d ready in %s (first after %s); portal CPU %.1f s, RSS %.1f MB (peak %.1f MB)",
		fill.ready, n, fill.last.Round(100*time.Millisecond), fill.first.Round(100*time.Millisecond), cpu, float64(rss)/1024, float64(peak)/1024)

	perSession := func(v float64) float64 { return v / float64(max(fill.ready, 1)) }
	// The goals are for a reserve of 1,000: for another, the rows say
	// what they would be and judge nothing.
	goal := func(ok bool) *bool {
		if n != kubeGoalSessions {
			return nil
		}
		return met(ok)
	}
	readyTarget := fmt.Sprintf("< %.0f s for %d", kubeReadyGoal.Seconds(), kubeGoalSessions)
	if fill.ready == n {
		b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "time to all ready", Value: fill.last.Seconds(), Unit: "s",
			Target: readyTarget, Met: goal(fill.last < kubeReadyGoal)})
	} else {
		b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "ready within the limit", Value: float64(fill.ready), Unit: "sessions",
			Target: readyTarget, Met: goal(false), Note: fmt.Sprintf("gave up after %s", o.kubeLimit)})
	}
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "sessions ready per second", Value: float64(fill.ready) / fill.last.Seconds(), Unit: "/s",
		Note: fmt.Sprintf("first ready after %.1f s; 10%% to 90%%: %.2f /s", fill.first.Seconds(), fill.steadyRate())})
	objects := diffCounts(objectsBefore, objectsAfter)
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "API objects per session", Value: perSession(sum(objects)), Unit: "objects",
		Detail: perKind(objects, perSession), Note: breakdown(objects, perSession, 20)})
	requests := diffCounts(requestsBefore, requestsAfter)
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "API requests per session", Value: perSession(sum(requests)), Unit: "requests",
		Detail: perKind(requests, perSession), Note: breakdown(requests, perSession, 12)})
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "portal CPU, start to all ready", Value: cpu, Unit: "CPU s",
		Note: fmt.Sprintf("%.1f CPU ms per session", 1000*perSession(cpu))})
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "cluster CPU, start to all ready", Value: sum(componentsUsed), Unit: "CPU s",
		Detail: componentsUsed, Note: breakdown(componentsUsed, func(v float64) float64 { return v }, len(componentsUsed))})
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "portal RSS, all ready", Value: float64(rss) / 1024, Unit: "MB",
		Target: fmt.Sprintf("< %d MB for %d", kubeMemoryGoalMB, kubeGoalSessions), Met: goal(float64(rss)/1024 < kubeMemoryGoalMB),
		Note: fmt.Sprintf("peak VmHWM %.1f MB", float64(peak)/1024)})
	if err != nil {
		return err // after the rows: a fill cut short still says how far it got
	}

	p.kill()
	cfg.dataDir = filepath.Join(p.dir, "data")
	t1 := time.Now()
	p, err = b.startPortal(ctx, cfg)
	if err != nil {
		return err
	}
	adopted, err := awaitAdopted(ctx, p, o.kubeLimit)
	if err != nil {
		return err
	}
	took := time.Since(t1)
	cpu, _ = p.cpu()
	rss, _ = p.rssKB()
	b.logf("kube: restarted portal adopted %d sessions after %s (CPU %.1f s, RSS %.1f MB)", adopted, took.Round(100*time.Millisecond), cpu, float64(rss)/1024)
	b.report.add(row{Case: fmt.Sprintf("%d sessions", n), Metric: "re-adoption after a restart", Value: took.Seconds(), Unit: "s",
		Target: fmt.Sprintf("< %.0f s for %d", kubeAdoptGoal.Seconds(), kubeGoalSessions), Met: goal(took < kubeAdoptGoal && adopted == n),
		Note: fmt.Sprintf("%d adopted; portal CPU by then %.2f s, RSS %.1f MB", adopted, cpu, float64(rss)/1024)})
	if adopted != n {
		return fmt.Errorf("the restarted portal adopted %d of %d sessions", adopted, n)
	}
	return nil
}

// nodesFor is how many fake nodes hold n session hosts, with room to
// spare.
func nodesFor(n int) int { return n/podsPerNode + 1 }

// kubeFill is how a reserve filled: how many were ready, when the first
// and the last were, and when each tenth of them was.
type kubeFill struct {
	ready       int
	first, last time.Duration
	tenths      [11]time.Duration // tenths[i]: when i*n/10 were ready
}

// steadyRate is sessions per second from 10% to 90% of the fill: the rate
// without the portal's start and the stragglers.
func (f kubeFill) steadyRate() float64 {
	d := f.tenths[9] - f.tenths[1]
	if d <= 0 {
		return 0
	}
	return 0.8 * float64(f.ready) / d.Seconds()
}

// awaitKubeReady polls the catalog until n sessions are available, or
// limit has passed since t0.
func (b *bench) awaitKubeReady(ctx context.Context, p *portal, n int, t0 time.Time, limit time.Duration) (kubeFill, error) {
	var f kubeFill
	next := 1 // next tenth to record
	lastLog := time.Now()
	for {
		_, avail, err := p.environment(ctx)
		now := time.Since(t0)
		if err == nil && avail > f.ready {
			if f.ready == 0 {
				f.first = now
			}
			f.ready, f.last = avail, now
			for next <= 10 && avail >= next*n/10 {
				f.tenths[next] = now
				next++
			}
		}
		if f.ready >= n {
			return f, nil
		}
		if time.Since(lastLog) > 10*time.Second {
			b.logf("kube: %d of %d ready after %s", f.ready, n, now.Round(time.Second))
			lastLog = time.Now()
		}
		if now > limit {
			f.last = now
			return f, fmt.Errorf("%d of %d sessions ready after %s", f.ready, n, limit)
		}
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-p.exited:
			return f, fmt.Errorf("portal exited\n%s", tail(filepath.Join(p.dir, "portal.log"), 2000))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var adoptedLine = regexp.MustCompile(`msg="sessions adopted" running=(\d+)`)

// awaitAdopted waits until the portal logs that it adopted its sessions,
// and returns how many.
func awaitAdopted(ctx context.Context, p *portal, limit time.Duration) (int, error) {
	logPath := filepath.Join(p.dir, "portal.log")
	deadline := time.Now().Add(limit)
	for {
		log, _ := os.ReadFile(logPath)
		if m := adoptedLine.FindSubmatch(log); m != nil {
			return strconv.Atoi(string(m[1]))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the restarted portal adopted no sessions within %s\n%s", limit, tail(logPath, 2000))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.exited:
			return 0, fmt.Errorf("restarted portal exited\n%s", tail(logPath, 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// addNodes creates n fake nodes for kwok to manage.
func addNodes(ctx context.Context, client kubernetes.Interface, n int) ([]string, error) {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   *resource.NewQuantity(podsPerNode, resource.DecimalSI),
	}
	var names []string
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:   fmt.Sprintf("kwok-node-%d", i),
				Labels: map[string]string{kwokLabel: "true", "type": "kwok"},
				// What kwok's own examples put on its nodes: tools that
				// look for it know the node is simulated.
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("fake node: %w", err)
		}
		names = append(names, node.Name)
	}
	return names, nil
}

// startKwok runs kwok on the fake nodes, with the stages that make their
// pods Running and Ready at once and delete deleted pods.
func (b *bench) startKwok(ctx context.Context, dir, kubeconfig string) (stop func(), pid int, err error) {
	logf, err := os.Create(filepath.Join(dir, "kwok.log"))
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	kwok := kwokDir()
	cmd := exec.Command(filepath.Join(kwok, "kwok"),
		"--kubeconfig="+kubeconfig,
		"--config="+filepath.Join(kwok, "stages.yaml"),
		"--manage-nodes-with-label-selector="+kwokLabel+"=true",
		// Room for every pod's address; kwok's default is a /24.
		"--cidr=10.128.0.0/12",
		"--node-ip=10.127.0.1")
	cmd.Env = append(os.Environ(), markerEnv+"="+b.root)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start kwok: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}, cmd.Process.Pid, nil
}

// components finds the processes of the simulated cluster: kwok, and the
// control plane kubetest started as children of this process.
func (b *bench) components(kwokPid int) map[string]int {
	out := map[string]int{"kwok": kwokPid}
	for _, pid := range pids() {
		if parentPid(pid) != os.Getpid() {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || filepath.Dir(exe) != filepath.Clean(kubetest.AssetsDir()) {
			continue
		}
		out[filepath.Base(exe)] = pid
	}
	return out
}

// parentPid is the parent of pid, or 0 when it cannot be read.
func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command name, in parentheses: state, then the parent.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// componentCPU is the CPU time each process of components has used, in
// seconds.
func componentCPU(components map[string]int) map[string]float64 {
	out := make(map[string]float64, len(components))
	for name, pid := range components {
		if s, err := cpuSeconds(pid); err == nil {
			out[name] = s
		}
	}
	return out
}

// awaitNodesReady waits until kwok has made every node Ready.
func awaitNodesReady(ctx context.Context, client kubernetes.Interface, nodes []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kwokLabel + "=true"})
		ready := 0
		if err == nil {
			for _, node := range list.Items {
				for _, c := range node.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready == len(nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kwok made %d of %d nodes ready within %s (%v)", ready, len(nodes), limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bindPods plays the scheduler's part until ctx ends: each pod without a
// node is bound to one of nodes, in turn, with one Binding, as
// kube-scheduler does.
func bindPods(ctx context.Context, client kubernetes.Interface, nodes []string, logf func(string, ...any)) {
	pending := make(chan *corev1.Pod, 1024)
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range 4 {
		wg.Go(func() {
			i := w
			for pod := range pending {
				i++
				binding := &corev1.Binding{
					ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
					Target:     corev1.ObjectReference{Kind: "Node", Name: nodes[i%len(nodes)]},
				}
				err := client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
				// Seen twice (added, then changed before the binding), or
				// gone: nothing to bind.
				if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
					logf("binding pod %s/%s: %v", pod.Namespace, pod.Name, err)
				}
			}
		})
	}
	defer close(pending)
	unbound := metav1.ListOptions{FieldSelector: "spec.nodeName="}
	for ctx.Err() == nil {
		list, err := client.CoreV1().Pods("").List(ctx, unbound)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for i := range list.Items {
			select {
			case pending <- &list.Items[i]:
			case <-ctx.Done():
				return
			}
		}
		opts := unbound
		opts.ResourceVersion = list.ResourceVersion
		w, err := client.CoreV1().Pods("").Watch(ctx, opts)
		if err != nil {
			continue
		}
		for e := range w.ResultChan() {
			if pod, ok := e.Object.(*corev1.Pod); ok && e.Type == kwatch.Added {
				select {
				case pending <- pod:
				case <-ctx.Done():
				}
			}
		}
		w.Stop()
	}
}

// countObjects counts the objects of every listable kind in the cluster,
// by kind.
func countObjects(ctx context.Context, c *kubetest.Cluster) (map[string]float64, error) {
	// A group that cannot be discovered just now (an aggregated API) is
	// left out: the kinds the portal makes are built in.
	cfg := rest.CopyConfig(c.Config)
	// Listing every kind lists deprecated ones, which the API server
	// warns about: no news for this report.
	cfg.WarningHandler = rest.NoWarnings{}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover the cluster's kinds: %w", err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]float64)
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			list, err := md.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("count %s: %w", r.Name, err)
			}
			if len(list.Items) > 0 {
				counts[r.Kind] += float64(len(list.Items))
			}
		}
	}
	return counts, nil
}

// requestTotals reads apiserver_request_total from the API server's
// /metrics, summed by verb and resource (with its subresource).
func requestTotals(ctx context.Context, client kubernetes.Interface) (map[string]float64, error) {
	body, err := client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server metrics: %w", err)
	}
	return parseRequestTotals(body)
}

// parseRequestTotals sums the apiserver_request_total samples of a
// Prometheus text exposition by "VERB resource[/subresource]".
func parseRequestTotals(body []byte) (map[string]float64, error) {
	const metric = "apiserver_request_total{"
	out := make(map[string]float64)
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(metric))
		if !ok {
			continue
		}
		end := bytes.LastIndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		lbls := parseLabels(string(rest[:end]))
		fields := strings.Fields(string(rest[end+1:]))
		if len(fields) == 0 {
			return nil, fmt.Errorf("sample without a value %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", line, err)
		}
		what := lbls["resource"]
		if what == "" {
			what = "(no resource)"
		}
		if s := lbls["subresource"]; s != "" {
			what += "/" + s
		}
		out[lbls["verb"]+" "+what] += v
	}
	if len(out) == 0 {
		return nil, errors.New("no apiserver_request_total in the API server's metrics")
	}
	return out, nil
}

// parseLabels reads the label pairs of a sample, name="value", with the
// exposition format's escapes in values.
func parseLabels(s string) map[string]string {
	out := make(map[string]string)
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(rest[i])
				}
				continue
			}
			v.WriteByte(rest[i])
		}
		out[strings.TrimSpace(name)] = v.String()
		s = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return out
}

// diffCounts is after less before, by key, without the keys that did not
// change.
func diffCounts(before, after map[string]float64) map[string]float64 {
	out := make(map[string]float64)
	for k := range maps.Keys(before) {
		if d := after[k] - before[k]; d != 0 {
			out[k] = d
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok && v != 0 {
			out[k] = v
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// perKind scales counts to per-session figures, for the JSON report.
func perKind(m map[string]float64, per func(float64) float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = math.Round(per(v)*100) / 100
	}
	return out
}

// breakdown names the top entries of m, largest first, per session.
func breakdown(m map[string]float64, per func(float64) float64, top int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, k := range keys {
		if i == top {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", k, num(per(m[k]))))
	}
	return strings.Join(parts, ", ")
}
