package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// Start creates the session's namespace and host, and returns once its
// host's pod is ready. A session already there, even one made before a
// portal restart, is adopted as it is. A Start that fails deletes what it
// made, so a failed session holds nothing in the cluster, and says why: the
// pod's own reason (an image that cannot be pulled, a quota exceeded) or
// the last warning event about it.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	name := spec.Session
	switch {
	case !validName(name):
		return runtime.Instance{}, fmt.Errorf("start session: %q cannot name a namespace", name)
	case !validName(spec.Environment):
		return runtime.Instance{}, fmt.Errorf("start %s: environment %q cannot name a namespace", name, spec.Environment)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.startTimeout, fmt.Errorf("session host not ready after %s", r.startTimeout))
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	r.mu.Lock()
	r.starts[name] = stop
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.starts, name)
		r.mu.Unlock()
	}()
	unlock, err := r.locks.lock(ctx, name)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	defer unlock()
	inst, created, err := r.start(ctx, spec)
	if err != nil {
		if created {
			// Not ctx: it may be what ended the start.
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout)
			if derr := r.removeSession(dctx, name); derr != nil {
				r.log.Error("cannot delete what a failed start made", "session", name, "err", derr)
			}
			dcancel()
		}
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	return inst, nil
}

// start does the work of Start; created reports whether a namespace of
// the session exists for Start to remove on failure.
func (r *Runtime) start(ctx context.Context, spec runtime.Spec) (inst runtime.Instance, created bool, err error) {
	name, env := spec.Session, spec.Environment
	changed, stop := r.watch(name)
	defer stop()
	if err := r.environmentNamespace(ctx, env); err != nil {
		return inst, false, fmt.Errorf("environment namespace: %w", err)
	}
	pods, err := r.hostPods(ctx, env)
	if err != nil {
		return inst, false, err
	}
	ns, err := r.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	fresh := true // no namespace of the session to resume
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return inst, false, err
	case ns.Labels[labelPortal] != r.portal || ns.Labels[labelRole] != roleSession || ns.Labels[labelEnvironment] != env:
		return inst, false, fmt.Errorf("namespace %s exists and is not a session of environment %s of portal %s", name, env, r.portal)
	case ns.DeletionTimestamp != nil:
		// The remains of an earlier attempt: wait until they are gone.
		if err := r.awaitGone(ctx, name, changed); err != nil {
			return inst, false, err
		}
	default:
		fresh = false
		cur, err := r.inspect(ctx, ns)
		if err != nil {
			return inst, false, err
		}
		if cur.Ready {
			return cur, true, nil // adopted
		}
	}
	if fresh {
		// A host pod left by an earlier namespace of the session (still
		// terminating, or its owner gone without a stop and the garbage
		// collector not there yet) goes before a new one takes its name.
		if err := r.clearHost(ctx, name, pods, changed); err != nil {
			return inst, false, err
		}
	}
	uid, err := r.create(ctx, spec)
	if err != nil {
		return inst, true, err
	}
	if err := r.awaitReady(ctx, name, env, uid, pods, changed); err != nil {
		return inst, true, err
	}
	if err := r.markStarted(ctx, name); err != nil {
		return inst, true, err
	}
	return runtime.Instance{Session: name, Address: address(name, env), Ready: true}, true, nil
}

// create makes the session namespace and its content, and the session
// host's objects in the environment namespace, owned by the session
// namespace; it returns the UID of the host's pod. Every step tolerates
// what exists already, so that a start cut short by a portal restart
// resumes.
func (r *Runtime) create(ctx context.Context, spec runtime.Spec) (types.UID, error) {
	name, env := spec.Session, spec.Environment
	lbls := r.sessionLabels(spec)
	core := r.client.CoreV1()
	opts := metav1.CreateOptions{FieldManager: fieldManager}
	ns, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: objectMeta(name, "", withPodSecurity(lbls))}, opts)
	if apierrors.IsAlreadyExists(err) {
		ns, err = core.Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: hostMeta(serviceAccountName(name), ns, env, lbls)}
	if _, err := createOwned(ctx, core.ServiceAccounts(env), sa); err != nil {
		return "", fmt.Errorf("service account: %w", err)
	}
	from, err := r.client.RbacV1().ClusterRoles().Get(ctx, r.sessionRole, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("role: the rules of cluster role %s: %w", r.sessionRole, err)
	}
	role, dropped := sessionRoleOf(name, lbls, from)
	if len(dropped) > 0 {
		r.log.Warn("rules of the cluster role left out of the session's role", "role", r.sessionRole, "session", name, "rules", dropped)
	}
	if err := exists(r.client.RbacV1().Roles(name).Create(ctx, role, opts)); err != nil {
		return "", fmt.Errorf("role: %w", err)
	}
	if err := exists(r.client.RbacV1().RoleBindings(name).Create(ctx, sessionBinding(name, env, lbls), opts)); err != nil {
		return "", fmt.Errorf("role binding: %w", err)
	}
	if _, err := createOwned(ctx, core.Secrets(env), tokenSecretOf(ns, env, lbls)); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	budget := spec.Cluster.Budget != "" && spec.Cluster.Budget != "custom"
	quotas, limits, err := budgetOf(spec.Cluster.Budget)
	if err != nil {
		return "", err
	}
	if limits != nil {
		limits.Namespace, limits.Labels = name, lbls
		if err := exists(core.LimitRanges(name).Create(ctx, limits, opts)); err != nil {
			return "", fmt.Errorf("limit range: %w", err)
		}
	}
	for _, q := range quotas {
		q.Namespace, q.Labels = name, lbls
		if err := exists(core.ResourceQuotas(name).Create(ctx, q, opts)); err != nil {
			return "", fmt.Errorf("resource quota %s: %w", q.Name, err)
		}
	}

	vars := r.dataVars(spec)
	token, ca, err := r.awaitToken(ctx, name, env)
	if err != nil {
		return "", err
	}
	kubeconfig, err := kubeconfigOf(r.apiServer, ca, token, name)
	if err != nil {
		return "", err
	}
	cfg, err := json.Marshal(podConfig(spec))
	if err != nil {
		return "", err
	}
	templates, err := json.Marshal(spec.Cluster.RequestObjects)
	if err != nil {
		return "", fmt.Errorf("spec.request.objects: %w", err)
	}
	varsJSON, err := json.Marshal(vars)
	if err != nil {
		return "", err
	}
	config := &corev1.Secret{ObjectMeta: hostMeta(configSecretName(name), ns, env, lbls), Data: map[string][]byte{
		sessionhost.SeedConfig:     cfg,
		sessionhost.SeedKubeconfig: kubeconfig,
		requestObjectsKey:          templates,
		variablesKey:               varsJSON,
	}}
	if _, err := createOwned(ctx, core.Secrets(env), config); err != nil {
		return "", fmt.Errorf("config secret: %w", err)
	}
	request, err := requestSecretOf(ns, env, lbls, spec.Owner)
	if err != nil {
		return "", err
	}
	if _, err := createOwned(ctx, core.Secrets(env), request); err != nil {
		return "", fmt.Errorf("request secret: %w", err)
	}

	// The API server refuses what a quota constrains until the quota
	// controller has computed its usage: the session and request objects
	// count against the budget.
	if err := r.awaitQuotas(ctx, name); err != nil {
		return "", err
	}
	if spec.Owner != nil {
		vars = withParams(vars, *spec.Owner)
	}
	objs, err := objectsOf(spec.Cluster.SessionObjects, vars, name, "spec.session.objects")
	if err != nil {
		return "", err
	}
	if err := r.apply(ctx, objs, "spec.session.objects", lbls); err != nil {
		return "", err
	}
	if spec.Owner == nil {
		// A reserve's request objects are applied when it is handed
		// out. A reserve that could never apply them fails to start now,
		// with the reason, rather than be handed out broken.
		objs, err := objectsOf(spec.Cluster.RequestObjects, vars, name, "spec.request.objects")
		if err != nil {
			return "", err
		}
		if err := r.check(ctx, objs, "spec.request.objects"); err != nil {
			return "", err
		}
	} else {
		// The session objects may bring quotas of their own (a custom
		// budget), which constrain the request objects as well.
		if err := r.awaitQuotas(ctx, name); err != nil {
			return "", err
		}
		if err := r.allocate(ctx, ns, env, lbls, spec.Cluster.RequestObjects, r.dataVars(spec), *spec.Owner); err != nil {
			return "", err
		}
	}
	if _, err := createOwned(ctx, core.Services(env), hostService(ns, env, lbls)); err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	pod, err := createOwned(ctx, core.Pods(env), r.hostPod(spec, ns, lbls, hostResources(spec.Limits, budget)))
	if err != nil {
		return "", fmt.Errorf("session host pod: %w", err)
	}
	return pod.UID, nil
}

// exists drops the error of a create that found the object there already.
func exists[T any](_ T, err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// objectClient is what createOwned needs of a typed client of one kind.
type objectClient[T metav1.Object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
}

// createOwned creates obj, an object of a session host, owned by the
// session namespace, and returns it as the cluster has it. An object of
// that name already owned by the same namespace is this session's, made by
// a start that was cut short. Any other is left from an earlier namespace
// of the same session name, which the garbage collector has not removed
// yet: its configuration, passwords included, is not this session's, so
// it is replaced.
func createOwned[T metav1.Object](ctx context.Context, c objectClient[T], obj T) (T, error) {
	opts := metav1.CreateOptions{FieldManager: fieldManager}
	made, err := c.Create(ctx, obj, opts)
	if !apierrors.IsAlreadyExists(err) {
		return made, err
	}
	cur, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return cur, err
	}
	if err == nil {
		owner := obj.GetOwnerReferences()[0].UID
		if slices.ContainsFunc(cur.GetOwnerReferences(), func(o metav1.OwnerReference) bool { return o.UID == owner }) {
			return cur, nil
		}
		uid := cur.GetUID()
		err := c.Delete(ctx, obj.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return cur, fmt.Errorf("%s left by an earlier start of the session: %w", obj.GetName(), err)
		}
	}
	made, err = c.Create(ctx, obj, opts)
	if apierrors.IsAlreadyExists(err) {
		return made, fmt.Errorf("%s left by an earlier start of the session is still being deleted", obj.GetName())
	}
	return made, err
}

// awaitReady waits until the host's pod (of UID uid) is ready, or fails
// with the reason it cannot start: from the pod itself, or from the last
// warning event about it (a failed mount, a refused sandbox) when the
// deadline passes.
func (r *Runtime) awaitReady(ctx context.Context, session, env string, uid types.UID, pods corelisters.PodNamespaceLister, changed <-chan struct{}) error {
	events, err := r.client.CoreV1().Events(env).Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.uid": string(uid), "type": corev1.EventTypeWarning}.String(),
	})
	var eventCh <-chan watch.Event
	if err == nil {
		defer events.Stop()
		eventCh = events.ResultChan()
	} else {
		r.log.Warn("cannot watch the events of a starting session", "session", session, "err", err)
	}
	var lastEvent string
	for {
		pod, err := pods.Get(hostName(session))
		switch {
		case apierrors.IsNotFound(err), err == nil && pod.UID != uid:
			// not in the cache yet, or the cache not past the pod it
			// replaces
			pod = nil
		case err != nil:
			return err
		case podFailure(pod) != "":
			return errors.New(podFailure(pod))
		case podReady(pod):
			return nil
		}
		select {
		case <-changed:
		case e, ok := <-eventCh:
			if !ok {
				eventCh = nil // the watch ended; the pod's status still tells
				continue
			}
			if ev, isEvent := e.Object.(*corev1.Event); isEvent {
				lastEvent = clip(ev.Reason) + ": " + clip(ev.Message)
			}
		case <-ctx.Done():
			err := context.Cause(ctx)
			if pod != nil {
				if why := podPending(pod); why != "" {
					err = fmt.Errorf("%w: %s", err, why)
				}
			}
			if lastEvent != "" {
				err = fmt.Errorf("%w; last event: %s", err, lastEvent)
			}
			return err
		}
	}
}

// awaitGone waits until namespace name no longer exists.
func (r *Runtime) awaitGone(ctx context.Context, name string, changed <-chan struct{}) error {
	for {
		if _, err := r.namespaces.Get(name); apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("namespace %s of an earlier attempt is still being deleted: %w", name, context.Cause(ctx))
		}
	}
}

// clearHost deletes the host pod of session, if there is one, and waits
// until it is gone.
func (r *Runtime) clearHost(ctx context.Context, session string, pods corelisters.PodNamespaceLister, changed <-chan struct{}) error {
	for {
		pod, err := pods.Get(hostName(session))
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if pod.DeletionTimestamp == nil {
			err := r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("session host pod of an earlier attempt: %w", err)
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("session host pod of an earlier attempt is still being deleted: %w", context.Cause(ctx))
		}
	}
}

// awaitQuotas waits until the quota controller has filled in the status
// of every quota in namespace ns.
func (r *Runtime) awaitQuotas(ctx context.Context, ns string) error {
	list, err := r.client.CoreV1().ResourceQuotas(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, q := range list.Items {
		if len(q.Status.Hard) > 0 {
			continue
		}
		lw := cache.NewFilteredListWatchFromClient(r.client.CoreV1().RESTClient(), "resourcequotas", ns,
			func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", q.Name).String()
			})
		_, err := watchtools.UntilWithSync(ctx, lw, &corev1.ResourceQuota{}, nil, func(e watch.Event) (bool, error) {
			q, ok := e.Object.(*corev1.ResourceQuota)
			return ok && len(q.Status.Hard) > 0, nil
		})
		if err != nil {
			return fmt.Errorf("resource quota %s not computed by the cluster: %w", q.Name, err)
		}
	}
	return nil
}

// awaitToken waits until the token controller has filled in the token
// secret of the account of session, in environment namespace env; ca falls
// back to the portal's own CA.
func (r *Runtime) awaitToken(ctx context.Context, session, env string) (token, ca []byte, err error) {
	lw := cache.NewFilteredListWatchFromClient(r.client.CoreV1().RESTClient(), "secrets", env,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", tokenSecretName(session)).String()
		})
	var secret *corev1.Secret
	_, err = watchtools.UntilWithSync(ctx, lw, &corev1.Secret{}, nil, func(e watch.Event) (bool, error) {
		s, ok := e.Object.(*corev1.Secret)
		if ok && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
			secret = s
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("service account token not issued by the cluster: %w", err)
	}
	ca = secret.Data[corev1.ServiceAccountRootCAKey]
	if len(ca) == 0 {
		ca = r.ca
	}
	return secret.Data[corev1.ServiceAccountTokenKey], ca, nil
}

// Container waiting reasons that do not go away by waiting.
var fatalWaiting = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// podFailure is why the pod cannot serve, or "" while it can or still may.
func podFailure(pod *corev1.Pod) string {
	switch pod.Status.Phase {
	case corev1.PodFailed:
		return join("session host pod failed", pod.Status.Reason, pod.Status.Message)
	case corev1.PodSucceeded:
		return "session host exited"
	}
	if pod.DeletionTimestamp != nil {
		return "session host pod being deleted"
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, c := range list {
			if w := c.State.Waiting; w != nil && fatalWaiting[w.Reason] {
				return join("session host container "+c.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}

// podPending says what a pending pod waits for, for a start that timed out.
func podPending(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Status == corev1.ConditionFalse && (c.Reason != "" || c.Message != "") {
			return join(string(c.Type), c.Reason, c.Message)
		}
	}
	for _, c := range pod.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil {
			return join("container "+c.Name, w.Reason, w.Message)
		}
	}
	return ""
}

func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// join says what failed and why, from reasons and messages of a pod,
// each clipped.
func join(what string, parts ...string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, clip(p))
		}
	}
	if len(nonEmpty) == 0 {
		return what
	}
	return what + ": " + strings.Join(nonEmpty, ": ")
}

// maxReason bounds each reason or message of a pod or an event that the
// runtime reports (in a Start's error, a session's Failed). The kubelet and
// the scheduler write them, but about what the session controls: it is
// admin of its namespace, may replace its host pod with one of its own,
// and its programs' output reaches probe failures and termination
// messages. What the runtime reports ends in the portal's logs, database
// and pages.
const maxReason = 512

// clip cuts s to at most maxReason bytes, on a character boundary, and
// marks the cut.
func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// dataVars are the Educates data variables of objects, before the request
// parameters.
func (r *Runtime) dataVars(spec runtime.Spec) map[string]string {
	return map[string]string{
		"session_name":       spec.Session,
		"session_id":         spec.ID,
		"session_namespace":  spec.Session,
		"workshop_namespace": spec.Environment,
		"environment_name":   spec.Environment,
		"workshop_name":      spec.Workshop,
		"training_portal":    spec.Portal,
		"service_account":    serviceAccountName(spec.Session),
		"ingress_domain":     r.ingressDomain,
	}
}

// withParams adds the request parameters of a to vars, in a copy. They
// cannot replace a data variable: the session's names are not the
// requester's to choose.
func withParams(vars map[string]string, a runtime.Allocation) map[string]string {
	out := make(map[string]string, len(vars)+len(a.Params))
	for _, p := range a.Params {
		out[p.Name] = p.Value
	}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// podConfig is the session host's configuration for a pod: its workshop
// directory is on the portal's disk, not in the pod, so relative
// directories of workshop files fail the setup with that reason.
func podConfig(spec runtime.Spec) sessionhost.Config {
	cfg := sessionhost.ConfigOf(spec)
	cfg.WorkshopDir = ""
	return cfg
}
