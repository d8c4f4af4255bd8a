// Package kubernetes is the session runtime for a Kubernetes cluster, the
// way Educates runs every session. Each workshop environment gets a
// namespace named after it, holding its environment objects and the
// session hosts of its sessions: each host a pod behind a service, with its
// ServiceAccount and its secrets (configuration, token, request). Each
// session gets a namespace named after it (labelled with the portal,
// environment and session) holding a Role of admin rights there, bound to
// the session's account, a ResourceQuota and LimitRange from the
// workshop's budget, and the workshop's session objects; its request
// objects follow at allocation. The session administers its namespace and
// has no rights in the environment's: it can neither read the host's
// secrets nor replace, redirect or stop its host.
//
// Everything the runtime knows is in the cluster, found by label, so a
// restarted portal (or another replica) lists and re-adopts what is there.
// Readiness and failure of hosts come from pod informers (one watch per
// environment namespace) and, while a session starts, a watch of its pod's
// events; nothing polls per session.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	k8s "k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

const (
	defaultStartTimeout = 5 * time.Minute // image pulls take time
	syncTimeout         = 30 * time.Second
	// checkTimeout bounds an API call of an event handler, which holds up
	// the events after it.
	checkTimeout = 5 * time.Second
	// exitsBuffer is how many exits Exited holds for a slow reader.
	exitsBuffer = 1024
)

// errStopped ends a Start overtaken by a Stop of the same session.
var errStopped = errors.New("session stopped while starting")

// Options configures a Runtime.
type Options struct {
	// Config reaches the cluster; required.
	Config *rest.Config
	// Portal is the portal's name; required. What the runtime creates is
	// labelled with it, so that portals can share a cluster.
	Portal string
	// Image is the session host image of workshops that name none;
	// required. It must have portico-session on PATH (hostProgram).
	Image string
	// PullPolicy of session host images; IfNotPresent when empty.
	PullPolicy corev1.PullPolicy
	// SessionRole is the ClusterRole whose rules each session's Role, in
	// its namespace, takes (less any that would change its quota, limits
	// or namespace); "admin" when empty.
	SessionRole string
	// APIServer is the URL sessions reach the API server at, for their
	// kubeconfig; Config.Host when empty (right for a portal in the
	// cluster).
	APIServer string
	// IngressDomain is the $(ingress_domain) of workshop objects.
	IngressDomain string
	// StartTimeout bounds a Start; 5 minutes when zero.
	StartTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Runtime runs sessions on a cluster. It implements runtime.Runtime,
// runtime.ExitWatcher and runtime.EnvironmentRuntime.
type Runtime struct {
	portal, image, sessionRole, apiServer, ingressDomain string
	pullPolicy                                           corev1.PullPolicy
	ca                                                   []byte
	startTimeout                                         time.Duration
	log                                                  *slog.Logger

	client  k8s.Interface
	dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	http    *http.Client

	namespaces corelisters.NamespaceLister
	stopInform chan struct{}
	closeOnce  sync.Once

	exits chan string
	locks keyedMutex

	mu       sync.Mutex
	waiters  map[string]map[chan struct{}]bool  // session → channels pinged when its pod or namespace changes
	stopping map[string]bool                    // sessions this process is stopping: their pod going is expected
	starts   map[string]context.CancelCauseFunc // Starts in flight, which a Stop of their session cuts short
	exited   map[string]bool                    // sessions whose exit was reported
	envs     map[string]string                  // environment → digest of what was applied to it
	hosts    map[string]*hostWatch              // environment namespace → informer of its session hosts
	closed   bool                               // Close was called: no informer starts any more
}

// hostWatch is the informer of the session host pods of one environment
// namespace.
type hostWatch struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
}

var (
	_ runtime.Runtime            = (*Runtime)(nil)
	_ runtime.ExitWatcher        = (*Runtime)(nil)
	_ runtime.EnvironmentRuntime = (*Runtime)(nil)
)

// New connects to the cluster and starts the informer of the portal's
// namespaces; it fails when the cluster cannot be listed. Close stops the
// informers.
func New(opts Options) (*Runtime, error) {
	switch {
	case opts.Config == nil:
		return nil, errors.New("kubernetes runtime: no cluster configuration")
	case opts.Image == "":
		return nil, errors.New("kubernetes runtime: no session host image")
	}
	if errs := validation.IsValidLabelValue(opts.Portal); opts.Portal == "" || len(errs) > 0 {
		return nil, fmt.Errorf("kubernetes runtime: portal name %q cannot be a label value", opts.Portal)
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.UserAgent = "portico"
	unthrottle(cfg)
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes runtime: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes runtime: %w", err)
	}
	r := &Runtime{
		portal:        opts.Portal,
		image:         opts.Image,
		sessionRole:   opts.SessionRole,
		apiServer:     opts.APIServer,
		ingressDomain: opts.IngressDomain,
		pullPolicy:    opts.PullPolicy,
		ca:            cfg.CAData,
		startTimeout:  opts.StartTimeout,
		log:           opts.Logger,
		client:        client,
		dynamic:       dyn,
		mapper:        restmapper.NewDeferredDiscoveryRESTMapperWithContext(memory.NewMemCacheClientWithContext(client.Discovery())),
		// As the portal's proxy to sessions: HTTP_PROXY applies, and
		// NO_PROXY should name .svc. A host's answer is the session's to
		// write: callers bound its time, sessionhost.Client its body, the
		// transport its headers.
		http:       runtime.HostClient(),
		stopInform: make(chan struct{}),
		exits:      make(chan string, exitsBuffer),
		waiters:    make(map[string]map[chan struct{}]bool),
		stopping:   make(map[string]bool),
		starts:     make(map[string]context.CancelCauseFunc),
		exited:     make(map[string]bool),
		envs:       make(map[string]string),
		hosts:      make(map[string]*hostWatch),
	}
	if r.sessionRole == "" {
		r.sessionRole = "admin"
	}
	if r.apiServer == "" {
		r.apiServer = cfg.Host
	}
	if r.pullPolicy == "" {
		r.pullPolicy = corev1.PullIfNotPresent
	}
	if r.startTimeout <= 0 {
		r.startTimeout = defaultStartTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if len(r.ca) == 0 && cfg.CAFile != "" {
		// Token secrets carry the CA; this is the fallback for clusters
		// whose controller manager has no root CA file.
		r.ca, _ = os.ReadFile(cfg.CAFile)
	}
	if err := r.startInformers(); err != nil {
		r.Close()
		return nil, fmt.Errorf("kubernetes runtime: %w", err)
	}
	return r, nil
}

// unthrottle lifts client-go's default client-side limit, 5 requests a
// second in bursts of 10, from a configuration that sets none (as a
// kubeconfig never does). A session's start takes about twenty requests,
// so that default paced a reserve of 1,000 to over an hour. The
// runtime's load is bounded without it: by the reconciler's cap on
// parallel starts, each a sequence of requests, and on the server by API
// Priority and Fairness, which queues a client that asks too much (as
// controller-runtime relies on, with no client-side limit by default). A
// configuration with a limit of its own keeps it.
func unthrottle(cfg *rest.Config) {
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1 // negative: no client-side limit
	}
}

// Close stops the informers.
func (r *Runtime) Close() {
	r.closeOnce.Do(func() {
		close(r.stopInform)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		for env, w := range r.hosts {
			close(w.stop)
			delete(r.hosts, env)
		}
	})
}

func (r *Runtime) startInformers() error {
	portal := labels.SelectorFromSet(labels.Set{labelPortal: r.portal}).String()
	factory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = portal }))
	nsInformer := factory.Core().V1().Namespaces()
	r.namespaces = nsInformer.Lister()
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.namespaceChanged(o, false) },
		UpdateFunc: func(_, o any) { r.namespaceChanged(o, false) },
		DeleteFunc: func(o any) { r.namespaceChanged(o, true) },
	}); err != nil {
		return err
	}
	factory.Start(r.stopInform)
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cannot list %v of the cluster within %s", typ, syncTimeout)
		}
	}
	return nil
}

// hostPods returns the cache of the session host pods of environment
// namespace env, starting its informer on first use. Pods are watched in
// environment namespaces only, which only the portal writes: the pods a
// session makes in its own namespace, with whatever labels, never reach
// the runtime.
func (r *Runtime) hostPods(ctx context.Context, env string) (corelisters.PodNamespaceLister, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("kubernetes runtime closed")
	}
	w := r.hosts[env]
	if w == nil {
		var err error
		if w, err = r.watchHosts(env); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.hosts[env] = w
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return nil, fmt.Errorf("cannot list the session hosts of namespace %s: %w", env, context.Cause(ctx))
	}
	return corelisters.NewPodLister(w.informer.GetIndexer()).Pods(env), nil
}

// watchHosts starts the informer of the session host pods of namespace
// env.
func (r *Runtime) watchHosts(env string) (*hostWatch, error) {
	selector := labels.SelectorFromSet(labels.Set{labelPortal: r.portal, labelRole: roleSession}).String()
	informer := coreinformers.NewFilteredPodInformer(r.client, env, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = selector })
	if err := informer.SetTransform(hostPodOf); err != nil {
		return nil, err
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.podChanged(o, false) },
		UpdateFunc: func(_, o any) { r.podChanged(o, false) },
		DeleteFunc: func(o any) { r.podChanged(o, true) },
	}); err != nil {
		return nil, err
	}
	w := &hostWatch{informer: informer, stop: make(chan struct{})}
	go informer.Run(w.stop)
	return w, nil
}

// hostPodOf trims a pod, in place, to what the runtime reads of a session
// host's pod before the informer caches it: its name, the portal's labels,
// its deletion and the state of its containers. Whoever reads more of the
// cached pods keeps it here.
func hostPodOf(o any) (any, error) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil // a tombstone, whose pod was trimmed before
	}
	kept := make(map[string]string)
	for _, k := range []string{labelManagedBy, labelPortal, labelEnvironment, labelSession, labelRole} {
		if v, ok := pod.Labels[k]; ok {
			kept[k] = v
		}
	}
	pod.Labels = kept
	pod.Annotations, pod.ManagedFields, pod.OwnerReferences, pod.Finalizers = nil, nil, nil, nil
	pod.Spec = corev1.PodSpec{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for i, c := range list {
			list[i] = corev1.ContainerStatus{Name: c.Name, State: corev1.ContainerState{Waiting: c.State.Waiting}}
		}
	}
	pod.Status.EphemeralContainerStatuses = nil
	return pod, nil
}

// podChanged wakes the Starts waiting for the pod's session and reports
// the exit of a host that was ready and failed or went without a Stop.
func (r *Runtime) podChanged(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = d.Obj, true
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	session := pod.Labels[labelSession]
	if session == "" || pod.Name != hostName(session) || pod.Labels[labelRole] != roleSession {
		return
	}
	r.ping(session)
	failure := podFailure(pod)
	if deleted {
		failure = "session host pod deleted"
	}
	if failure == "" {
		return
	}
	ns, err := r.namespaces.Get(session)
	if err != nil || ns.Labels[labelEnvironment] != pod.Namespace || ns.Annotations[annotationStarted] != "true" || ns.DeletionTimestamp != nil {
		return // still starting (Start reports it) or going away
	}
	if deleted && r.namespaceGoing(session) {
		// Stopped by another replica, whose deletion of the namespace
		// this one's cache has not seen yet.
		return
	}
	r.mu.Lock()
	report := !r.stopping[session] && !r.exited[session]
	if report {
		r.exited[session] = true
	}
	r.mu.Unlock()
	if report {
		r.log.Warn("session host ended", "session", session, "reason", failure)
		select {
		case r.exits <- session:
		default:
			r.log.Error("session exit dropped: nobody reads them", "session", session)
		}
	}
}

// namespaceGoing asks the API server whether the namespace of session is
// gone or being deleted.
func (r *Runtime) namespaceGoing(session string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	ns, err := r.client.CoreV1().Namespaces().Get(ctx, session, metav1.GetOptions{})
	return apierrors.IsNotFound(err) || err == nil && ns.DeletionTimestamp != nil
}

// namespaceChanged wakes the Starts waiting for a session namespace, and
// stops watching the hosts of an environment namespace that is gone.
func (r *Runtime) namespaceChanged(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = d.Obj, true
	}
	ns, ok := o.(*corev1.Namespace)
	if !ok {
		return
	}
	r.ping(ns.Name)
	if deleted && ns.Labels[labelRole] == roleEnvironment {
		r.mu.Lock()
		if w := r.hosts[ns.Name]; w != nil {
			close(w.stop)
			delete(r.hosts, ns.Name)
		}
		r.mu.Unlock()
	}
}

// Exited implements runtime.ExitWatcher.
func (r *Runtime) Exited() <-chan string { return r.exits }

// watch returns a channel pinged when the pod or namespace of session
// changes, and the function that stops it.
func (r *Runtime) watch(session string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	if r.waiters[session] == nil {
		r.waiters[session] = make(map[chan struct{}]bool)
	}
	r.waiters[session][ch] = true
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.waiters[session], ch)
		if len(r.waiters[session]) == 0 {
			delete(r.waiters, session)
		}
		r.mu.Unlock()
	}
}

func (r *Runtime) ping(session string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.waiters[session] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Status reports a session from the informers' caches.
func (r *Runtime) Status(ctx context.Context, name string) (runtime.Instance, error) {
	ns, err := r.namespaces.Get(name)
	if apierrors.IsNotFound(err) || err == nil && ns.Labels[labelRole] != roleSession {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	if err != nil {
		return runtime.Instance{}, err
	}
	return r.inspect(ctx, ns)
}

// inspect tells the state of the session of namespace ns; it fails only
// when the cache of its environment's hosts cannot be filled.
func (r *Runtime) inspect(ctx context.Context, ns *corev1.Namespace) (runtime.Instance, error) {
	env := ns.Labels[labelEnvironment]
	inst := runtime.Instance{Session: ns.Name, Address: address(ns.Name, env)}
	switch {
	case ns.DeletionTimestamp != nil:
		inst.Failed = "session namespace being deleted"
		return inst, nil
	case !validName(env):
		inst.Address, inst.Failed = "", "session namespace names no environment namespace"
		return inst, nil
	}
	pods, err := r.hostPods(ctx, env)
	if err != nil {
		return runtime.Instance{}, err
	}
	pod, err := pods.Get(hostName(ns.Name))
	switch {
	case apierrors.IsNotFound(err):
		if ns.Annotations[annotationStarted] == "true" {
			inst.Failed = "session host pod deleted"
		}
	case err != nil:
		inst.Failed = err.Error()
	case podFailure(pod) != "":
		inst.Failed = podFailure(pod)
	default:
		inst.Ready = podReady(pod)
	}
	return inst, nil
}

// List reports every session namespace of the portal.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	list, err := r.namespaces.List(labels.SelectorFromSet(labels.Set{labelRole: roleSession}))
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Instance, 0, len(list))
	for _, ns := range list {
		inst, err := r.inspect(ctx, ns)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, nil
}

// Stop deletes the session's host and its namespace, and with them
// everything of the session. The deletion goes on in the cluster after
// Stop returns.
func (r *Runtime) Stop(ctx context.Context, name string) error {
	if !validName(name) {
		return nil
	}
	// A Start of the session waiting for its pod would hold the lock for
	// minutes: it ends now, deleting what it made.
	r.mu.Lock()
	if cancel := r.starts[name]; cancel != nil {
		cancel(errStopped)
	}
	r.mu.Unlock()
	unlock, err := r.locks.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer unlock()
	r.mu.Lock()
	r.stopping[name] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.stopping, name)
		delete(r.exited, name)
		r.mu.Unlock()
	}()
	if err := r.removeSession(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// removeSession deletes the namespace of session name, if it is a session
// namespace of this portal (a namespace of anyone else is never touched),
// then its host. The namespace goes first, so that every replica takes the
// host's end for a stop, not an exit. The namespace owns the host's
// objects: those of a stop cut short, or of a namespace that went some
// other way, are the garbage collector's.
func (r *Runtime) removeSession(ctx context.Context, name string) error {
	ns, err := r.ownNamespace(ctx, name, roleSession)
	if err != nil || ns == nil {
		return err
	}
	if err := r.deleteNamespace(ctx, ns); err != nil {
		return err
	}
	if env := ns.Labels[labelEnvironment]; validName(env) {
		return r.deleteHost(ctx, name, env)
	}
	return nil
}

// deleteHost deletes the objects of the session host of session in
// environment namespace env, the pod first, so that the host ends at once.
func (r *Runtime) deleteHost(ctx context.Context, session, env string) error {
	core := r.client.CoreV1()
	opts := metav1.DeleteOptions{}
	deletes := []struct {
		what string
		del  func() error
	}{
		{"pod", func() error { return core.Pods(env).Delete(ctx, hostName(session), opts) }},
		{"service", func() error { return core.Services(env).Delete(ctx, hostName(session), opts) }},
		{"config secret", func() error { return core.Secrets(env).Delete(ctx, configSecretName(session), opts) }},
		{"request secret", func() error { return core.Secrets(env).Delete(ctx, requestSecretName(session), opts) }},
		// The account's token stops working with it.
		{"service account", func() error { return core.ServiceAccounts(env).Delete(ctx, serviceAccountName(session), opts) }},
		{"token secret", func() error { return core.Secrets(env).Delete(ctx, tokenSecretName(session), opts) }},
	}
	for _, d := range deletes {
		if err := d.del(); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("session host %s: %w", d.what, err)
		}
	}
	return nil
}

// ownNamespace returns namespace name if it is one of this portal's of the
// given role, nil if there is none, and an error for a namespace of
// anyone else.
func (r *Runtime) ownNamespace(ctx context.Context, name, role string) (*corev1.Namespace, error) {
	ns, err := r.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ns.Labels[labelPortal] != r.portal || ns.Labels[labelRole] != role {
		return nil, fmt.Errorf("namespace %s does not belong to portal %s: left alone", name, r.portal)
	}
	return ns, nil
}

// deleteNamespace deletes ns, unless it is being deleted already or has
// been replaced by a namespace of the same name.
func (r *Runtime) deleteNamespace(ctx context.Context, ns *corev1.Namespace) error {
	if ns.DeletionTimestamp != nil {
		return nil
	}
	policy := metav1.DeletePropagationBackground
	err := r.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &ns.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone meanwhile, or replaced by a namespace of the same name
	}
	return err
}

// Activity asks the session host how recently it was used.
func (r *Runtime) Activity(ctx context.Context, inst runtime.Instance) (runtime.Activity, error) {
	if inst.Address == "" {
		return runtime.Activity{}, fmt.Errorf("activity of %s: no address", inst.Session)
	}
	ctx, cancel := context.WithTimeout(ctx, sessionhost.CallTimeout)
	defer cancel()
	act, err := (sessionhost.Client{HTTP: r.http}).Activity(ctx, inst.Address)
	if err != nil {
		return act, fmt.Errorf("activity of %s: %w", inst.Session, err)
	}
	return act, nil
}

// Allocate gives a session its owner: the request Secret the host reads,
// the workshop's request objects with the request parameters substituted,
// and, as a fast path, a POST to the host. The Secret is what counts: a
// host that the POST does not reach (starting, restarting, or a portal
// outside the cluster network) reads it from its mounted copy. What to
// apply comes from the session's config Secret in the environment
// namespace, which the session can neither read nor write.
func (r *Runtime) Allocate(ctx context.Context, inst runtime.Instance, secret string, a runtime.Allocation) error {
	name := inst.Session
	if !validName(name) {
		return fmt.Errorf("allocate %s: invalid session name", name)
	}
	ns, err := r.ownNamespace(ctx, name, roleSession)
	if err == nil && ns == nil {
		err = runtime.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("allocate %s: %w", name, err)
	}
	env := ns.Labels[labelEnvironment]
	if !validName(env) {
		return fmt.Errorf("allocate %s: session namespace names no environment namespace", name)
	}
	cfg, err := r.client.CoreV1().Secrets(env).Get(ctx, configSecretName(name), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("allocate %s: %w", name, err)
	}
	var (
		templates []map[string]any
		vars      map[string]string
	)
	if err := json.Unmarshal(cfg.Data[requestObjectsKey], &templates); err != nil {
		return fmt.Errorf("allocate %s: request objects: %w", name, err)
	}
	if err := json.Unmarshal(cfg.Data[variablesKey], &vars); err != nil {
		return fmt.Errorf("allocate %s: variables: %w", name, err)
	}
	if err := r.allocate(ctx, ns, env, cfg.Labels, templates, vars, a); err != nil {
		return fmt.Errorf("allocate %s: %w", name, err)
	}
	if err := r.post(ctx, address(name, env), secret, a); err != nil {
		r.log.Info("session host not told of its owner directly; it reads the request secret", "session", name, "err", err)
	}
	return nil
}

// allocate applies the request objects in the session namespace ns and
// writes the request Secret in the environment namespace env.
func (r *Runtime) allocate(ctx context.Context, ns *corev1.Namespace, env string, lbls map[string]string, templates []map[string]any, vars map[string]string, a runtime.Allocation) error {
	vars = withParams(vars, a)
	objs, err := objectsOf(templates, vars, ns.Name, "spec.request.objects")
	if err != nil {
		return err
	}
	if err := r.apply(ctx, objs, "spec.request.objects", lbls); err != nil {
		return err
	}
	s, err := requestSecretOf(ns, env, lbls, &a)
	if err != nil {
		return err
	}
	_, err = r.client.CoreV1().Secrets(env).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
	if apierrors.IsNotFound(err) {
		_, err = r.client.CoreV1().Secrets(env).Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager})
	}
	return err
}

// requestSecretOf is the request Secret of the session of namespace ns:
// each request parameter under its name, as Educates has them, and the
// whole allocation for the host; empty while the session has no owner.
func requestSecretOf(ns *corev1.Namespace, env string, lbls map[string]string, a *runtime.Allocation) (*corev1.Secret, error) {
	s := &corev1.Secret{ObjectMeta: hostMeta(requestSecretName(ns.Name), ns, env, lbls), Data: map[string][]byte{}}
	if a == nil {
		return s, nil
	}
	for _, p := range a.Params {
		// A name that cannot be a key is only in the allocation: the
		// portal validates names, but not against Secret key rules.
		if len(validation.IsConfigMapKey(p.Name)) == 0 && p.Name != allocationKey {
			s.Data[p.Name] = []byte(p.Value)
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	s.Data[allocationKey] = b
	return s, nil
}

func (r *Runtime) post(ctx context.Context, addr, secret string, a runtime.Allocation) error {
	ctx, cancel := context.WithTimeout(ctx, sessionhost.CallTimeout)
	defer cancel()
	return (sessionhost.Client{HTTP: r.http}).Allocate(ctx, addr, secret, a)
}

// markStarted records in the namespace that its host was ready once.
func (r *Runtime) markStarted(ctx context.Context, name string) error {
	patch := []byte(`{"metadata":{"annotations":{"` + annotationStarted + `":"true"}}}`)
	_, err := r.client.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// validName accepts names a namespace can have.
func validName(name string) bool { return len(validation.IsDNS1123Label(name)) == 0 }

func itoa(i int) string { return strconv.Itoa(i) }

// keyedMutex serialises the Starts and Stops of one session in this
// process; waiters give up with their context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch   chan struct{}
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, context.Cause(ctx)
	}
}
