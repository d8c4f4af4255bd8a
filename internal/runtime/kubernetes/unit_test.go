package kubernetes

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/portico-dev/portico/internal/runtime"
)

// Tests of this file need no cluster.

func TestSubstitute(t *testing.T) {
	in := map[string]any{
		"$(session_name)-key": "a $(session_name) b $(session_name)",
		"list":                []any{"$(GREETING)", 3, true, nil},
		"unknown":             "$(nope) $(",
		"injection":           "$(PARAM)",
	}
	vars := map[string]string{"session_name": "p-w01-s001", "GREETING": "Hi", "PARAM": "x\nkind: Secret"}
	got := substitute(in, vars)
	want := map[string]any{
		"p-w01-s001-key": "a p-w01-s001 b p-w01-s001",
		"list":           []any{"Hi", 3, true, nil},
		"unknown":        "$(nope) $(",
		// A value stays one string: it cannot add fields.
		"injection": "x\nkind: Secret",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("substitute = %#v", got)
	}
}

func TestObjectsOf(t *testing.T) {
	objs, err := objectsOf([]map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a"}, "data": map[string]any{"n": 3}},
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "b", "namespace": "$(session_namespace)"}},
	}, map[string]string{"session_namespace": "ns1"}, "ns1", "spec.session.objects")
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].GetNamespace() != "ns1" || objs[1].GetNamespace() != "ns1" {
		t.Errorf("namespaces %q %q, want ns1", objs[0].GetNamespace(), objs[1].GetNamespace())
	}
	if objs[0].Object["data"].(map[string]any)["n"] != int64(3) {
		t.Errorf("numbers are %T, want int64 as unstructured has them", objs[0].Object["data"].(map[string]any)["n"])
	}
	_, err = objectsOf([]map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a", "namespace": "other"}},
	}, nil, "ns1", "spec.request.objects")
	if err == nil || !strings.Contains(err.Error(), `spec.request.objects[0]: ConfigMap a: namespace "other"`) {
		t.Errorf("object in another namespace: %v", err)
	}
}

// educatesBudgets are Educates' named namespace budgets
// (session-manager/handlers/namespace_budgets.py): the compute quota, the
// limits a container gets when it states none, the largest volume claim,
// and the object counts.
var educatesBudgets = map[string]struct {
	cpu, memory, defaultCPU, defaultMemory, claim string
	claims, controllers, secrets, services        string
}{
	"small":     {"1", "1Gi", "250m", "256Mi", "1Gi", "3", "10", "20", "5"},
	"medium":    {"2", "2Gi", "500m", "512Mi", "5Gi", "6", "15", "25", "10"},
	"large":     {"4", "4Gi", "500m", "1Gi", "10Gi", "12", "25", "35", "20"},
	"x-large":   {"8", "8Gi", "500m", "2Gi", "20Gi", "18", "35", "45", "30"},
	"xx-large":  {"8", "12Gi", "500m", "2Gi", "20Gi", "24", "45", "55", "40"},
	"xxx-large": {"8", "16Gi", "500m", "2Gi", "20Gi", "30", "55", "65", "50"},
}

// TestBudgets: each named budget makes Educates' LimitRange and three
// ResourceQuotas, by Educates' names and with its values: the session
// host is not in the session's namespace, so nothing is added for it.
func TestBudgets(t *testing.T) {
	if q, l, err := budgetOf(""); q != nil || l != nil || err != nil {
		t.Errorf("no budget: %v %v %v", q, l, err)
	}
	if q, l, err := budgetOf("custom"); q != nil || l != nil || err != nil {
		t.Errorf("custom: %v %v %v", q, l, err)
	}
	if _, _, err := budgetOf("huge"); err == nil {
		t.Error("unknown budget accepted")
	}
	if len(budgets) != len(educatesBudgets) {
		t.Errorf("%d budgets, Educates has %d", len(budgets), len(educatesBudgets))
	}
	eq := func(what string, got resource.Quantity, want string) {
		t.Helper()
		if got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s = %s, want %s", what, got.String(), want)
		}
	}
	for name, want := range educatesBudgets {
		quotas, limits, err := budgetOf(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		byName := map[string]*corev1.ResourceQuota{}
		for _, q := range quotas {
			byName[q.Name] = q
		}
		compute, timebound, counts := byName["compute-resources"], byName["compute-resources-timebound"], byName["object-counts"]
		if len(quotas) != 3 || compute == nil || timebound == nil || counts == nil {
			t.Fatalf("%s: quotas %v, want compute-resources, compute-resources-timebound, object-counts", name, quotas)
		}
		if !slices.Equal(compute.Spec.Scopes, []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating}) ||
			!slices.Equal(timebound.Spec.Scopes, []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}) {
			t.Errorf("%s: scopes %v and %v", name, compute.Spec.Scopes, timebound.Spec.Scopes)
		}
		for what, q := range map[string]*corev1.ResourceQuota{"compute": compute, "timebound": timebound} {
			eq(name+" "+what+" limits.cpu", q.Spec.Hard[corev1.ResourceLimitsCPU], want.cpu)
			eq(name+" "+what+" limits.memory", q.Spec.Hard[corev1.ResourceLimitsMemory], want.memory)
		}
		eq(name+" persistentvolumeclaims", counts.Spec.Hard[corev1.ResourcePersistentVolumeClaims], want.claims)
		eq(name+" replicationcontrollers", counts.Spec.Hard[corev1.ResourceReplicationControllers], want.controllers)
		eq(name+" secrets", counts.Spec.Hard[corev1.ResourceSecrets], want.secrets)
		eq(name+" services", counts.Spec.Hard[corev1.ResourceServices], want.services)
		eq(name+" services.loadbalancers", counts.Spec.Hard[corev1.ResourceServicesLoadBalancers], "0")
		eq(name+" services.nodeports", counts.Spec.Hard[corev1.ResourceServicesNodePorts], "0")

		if limits.Name != "resource-limits" || len(limits.Spec.Limits) != 3 {
			t.Fatalf("%s: limit range %s with %d items", name, limits.Name, len(limits.Spec.Limits))
		}
		items := map[corev1.LimitType]corev1.LimitRangeItem{}
		for _, it := range limits.Spec.Limits {
			items[it.Type] = it
		}
		for _, typ := range []corev1.LimitType{corev1.LimitTypePod, corev1.LimitTypeContainer} {
			it := items[typ]
			eq(fmt.Sprintf("%s %s min cpu", name, typ), it.Min[corev1.ResourceCPU], "1m")
			eq(fmt.Sprintf("%s %s min memory", name, typ), it.Min[corev1.ResourceMemory], "1Mi")
			eq(fmt.Sprintf("%s %s max cpu", name, typ), it.Max[corev1.ResourceCPU], want.cpu)
			eq(fmt.Sprintf("%s %s max memory", name, typ), it.Max[corev1.ResourceMemory], want.memory)
		}
		c := items[corev1.LimitTypeContainer]
		eq(name+" container default cpu", c.Default[corev1.ResourceCPU], want.defaultCPU)
		eq(name+" container default memory", c.Default[corev1.ResourceMemory], want.defaultMemory)
		eq(name+" container default request cpu", c.DefaultRequest[corev1.ResourceCPU], "50m")
		eq(name+" container default request memory", c.DefaultRequest[corev1.ResourceMemory], "128Mi")
		pvc := items[corev1.LimitTypePersistentVolumeClaim]
		eq(name+" claim min", pvc.Min[corev1.ResourceStorage], "1Gi")
		eq(name+" claim max", pvc.Max[corev1.ResourceStorage], want.claim)
	}
}

// TestHostResources: the host's container takes spec.session.resources,
// else the defaults when the session has a budget, else nothing.
func TestHostResources(t *testing.T) {
	for _, tc := range []struct {
		limits      runtime.Limits
		budget      bool
		cpu, memory string
	}{
		{runtime.Limits{}, false, "", ""},
		{runtime.Limits{}, true, "500m", "512Mi"},
		{runtime.Limits{Memory: 2 << 30, CPUMilli: 250}, true, "250m", "2Gi"},
		{runtime.Limits{Memory: 2 << 30}, false, "", "2Gi"},
	} {
		res := hostResources(tc.limits, tc.budget)
		for name, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: tc.cpu, corev1.ResourceMemory: tc.memory} {
			lim, hasLimit := res.Limits[name]
			req := res.Requests[name]
			switch {
			case want == "" && hasLimit:
				t.Errorf("%+v, budget %v: %s limit %s, want none", tc.limits, tc.budget, name, lim.String())
			case want != "" && (lim.Cmp(resource.MustParse(want)) != 0 || req.Cmp(lim) != 0):
				t.Errorf("%+v, budget %v: %s limit %s request %s, want both %s", tc.limits, tc.budget, name, lim.String(), req.String(), want)
			}
		}
	}
}

// TestHostName: the host's pod and service are named after the session,
// and a session whose name cannot name a service (it starts with a digit)
// gets a name that can, its own.
func TestHostName(t *testing.T) {
	if got := hostName("lab-w01-s001"); got != "lab-w01-s001" {
		t.Errorf("hostName = %q, want the session's name", got)
	}
	a, b := hostName("1lab-w01-s001"), hostName("1lab-w01-s002")
	for _, n := range []string{a, b} {
		if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
			t.Errorf("hostName = %q: %v", n, errs)
		}
	}
	if a == b {
		t.Errorf("two sessions share the host name %q", a)
	}
}

func TestPodFailure(t *testing.T) {
	waiting := func(reason string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "session", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}}}}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{waiting("ContainerCreating"), ""},
		{waiting("ErrImagePull"), "session host container session: ErrImagePull: m"},
		{&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "low memory"}}, "session host pod failed: Evicted: low memory"},
		{&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, "session host exited"},
	} {
		if got := podFailure(tc.pod); got != tc.want {
			t.Errorf("podFailure = %q, want %q", got, tc.want)
		}
	}
}

// TestSessionRules: the session's Role has the rules of the cluster's admin
// role, except what a Role cannot hold or what would let the session change
// its budget or its namespace.
func TestSessionRules(t *testing.T) {
	admin := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec"}, Verbs: []string{"create", "delete"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"*"}},
		// view's part of admin: reading the budget stays.
		{APIGroups: []string{""}, Resources: []string{"resourcequotas", "limitranges", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
		// A cluster's admin extended by aggregation to write them.
		{APIGroups: []string{""}, Resources: []string{"configmaps", "resourcequotas"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"*"}, Resources: []string{"limitranges", "namespaces/finalize"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"*"}, Verbs: []string{"patch"}},
		{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}},
		// Another group's resources of the same names are not the budget.
		{APIGroups: []string{"example.com"}, Resources: []string{"limitranges"}, Verbs: []string{"create"}},
	}
	got, dropped := sessionRules(admin)
	want := []rbacv1.PolicyRule{
		admin[0],
		admin[1],
		admin[2],
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"resourcequotas"}, Verbs: []string{"get"}},
		{APIGroups: []string{"*"}, Resources: []string{"limitranges", "namespaces/finalize"}, Verbs: []string{"get", "list", "watch"}},
		admin[7],
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules\n%v\nwant\n%v", got, want)
	}
	if len(dropped) != 2 {
		t.Errorf("dropped %q, want the wildcard write and the non-resource rule", dropped)
	}
}

// What the kubelet reports of what a session controls reaches errors and
// failures clipped, whole characters only.
func TestPodReasonsClipped(t *testing.T) {
	huge := strings.Repeat("é", 100_000)
	failed := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: huge}}
	pending := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: huge, Message: huge}}}}
	for what, got := range map[string]string{"podFailure": podFailure(failed), "podPending": podPending(pending)} {
		if len(got) > 3*maxReason || !utf8.ValidString(got) || !strings.HasSuffix(got, "é…") {
			t.Errorf("%s: %d bytes, valid UTF-8 %v, ends %q", what, len(got), utf8.ValidString(got), got[max(0, len(got)-10):])
		}
	}
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q", got)
	}
}

// The informer keeps of a host pod what the runtime reads, and the runtime
// reads the same of it trimmed.
func TestHostPodOf(t *testing.T) {
	now := metav1.Now()
	waiting := func(reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "session", Image: "x", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: strings.Repeat("t", 4096)}}}
	}
	meta := metav1.ObjectMeta{
		Name: "p-w01-s001", Namespace: "p-w01", ResourceVersion: "7",
		Labels:        map[string]string{labelPortal: "p", labelRole: roleSession, labelSession: "p-w01-s001", "pile": "x"},
		Annotations:   map[string]string{"pile": strings.Repeat("x", 100<<10)},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "session", Image: "x", Env: []corev1.EnvVar{{Name: "PILE", Value: "x"}}}}}
	pods := []*corev1.Pod{
		{ObjectMeta: meta, Spec: spec, Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull")}}},
		{ObjectMeta: meta, Spec: spec, Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{waiting("CrashLoopBackOff")}}},
		{ObjectMeta: meta, Spec: spec, Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "low memory"}},
		{ObjectMeta: meta, Spec: spec, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
		{ObjectMeta: meta, Spec: spec, Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "no node"}},
			ContainerStatuses: []corev1.ContainerStatus{waiting("ContainerCreating")}}},
	}
	deleting := pods[3].DeepCopy()
	deleting.DeletionTimestamp = &now
	pods = append(pods, deleting)
	for i, pod := range pods {
		o, err := hostPodOf(pod.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		trimmed := o.(*corev1.Pod)
		if podFailure(trimmed) != podFailure(pod) || podPending(trimmed) != podPending(pod) || podReady(trimmed) != podReady(pod) {
			t.Errorf("pod %d read differently once trimmed: %q %q %v, want %q %q %v", i,
				podFailure(trimmed), podPending(trimmed), podReady(trimmed), podFailure(pod), podPending(pod), podReady(pod))
		}
		if trimmed.Name != pod.Name || trimmed.Namespace != pod.Namespace || trimmed.ResourceVersion != "7" || trimmed.Labels[labelRole] != roleSession {
			t.Errorf("pod %d: identity lost: %+v", i, trimmed.ObjectMeta)
		}
		if trimmed.Labels["pile"] != "" || trimmed.Annotations != nil || trimmed.ManagedFields != nil || len(trimmed.Spec.Containers) != 0 {
			t.Errorf("pod %d keeps what the runtime does not read: %+v", i, trimmed)
		}
		for _, c := range append(trimmed.Status.ContainerStatuses, trimmed.Status.InitContainerStatuses...) {
			if c.LastTerminationState.Terminated != nil || c.Image != "" {
				t.Errorf("pod %d keeps container status %+v", i, c)
			}
		}
		again, _ := hostPodOf(trimmed.DeepCopy())
		if !reflect.DeepEqual(again, trimmed) {
			t.Errorf("pod %d: trimming twice changes it", i)
		}
	}
	tombstone := cache.DeletedFinalStateUnknown{Key: "p-w01/p-w01-s001"}
	if o, err := hostPodOf(tombstone); err != nil || o != tombstone {
		t.Errorf("tombstone: %v, %v", o, err)
	}
}

// A kubeconfig sets no request rate; client-go's default for that, 5 a
// second, would pace every start of a large reserve.
func TestUnthrottle(t *testing.T) {
	cfg := &rest.Config{}
	unthrottle(cfg)
	if cfg.QPS >= 0 {
		t.Errorf("QPS %v: client-go's default limit stays", cfg.QPS)
	}
	// Over rest.RESTClientFor's rule: a limiter only for a positive QPS.
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	client, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if client.GetRateLimiter() != nil {
		t.Errorf("client has a rate limiter %T", client.GetRateLimiter())
	}
	set := &rest.Config{QPS: 50, Burst: 100}
	unthrottle(set)
	if set.QPS != 50 || set.Burst != 100 {
		t.Errorf("a configured limit changed to QPS %v, burst %d", set.QPS, set.Burst)
	}
	limited := &rest.Config{RateLimiter: flowcontrol.NewFakeAlwaysRateLimiter()}
	unthrottle(limited)
	if limited.QPS != 0 {
		t.Errorf("a configured rate limiter overridden: QPS %v", limited.QPS)
	}
}
