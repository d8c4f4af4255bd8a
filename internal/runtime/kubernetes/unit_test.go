package kubernetes

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

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

func TestQuota(t *testing.T) {
	if q, l, err := quotaOf("", hostResources(runtime.Limits{}, false)); q != nil || l != nil || err != nil {
		t.Errorf("no budget: %v %v %v", q, l, err)
	}
	if q, _, err := quotaOf("custom", corev1.ResourceRequirements{}); q != nil || err != nil {
		t.Errorf("custom: %v %v", q, err)
	}
	if _, _, err := quotaOf("huge", corev1.ResourceRequirements{}); err == nil {
		t.Error("unknown budget accepted")
	}
	host := hostResources(runtime.Limits{Memory: 2 << 30, CPUMilli: 250}, true)
	q, l, err := quotaOf("medium", host)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Spec.Hard[corev1.ResourceLimitsMemory]; got.String() != "4Gi" {
		t.Errorf("limits.memory %s, want medium's 2Gi + the host's 2Gi", got.String())
	}
	if got := q.Spec.Hard[corev1.ResourceLimitsCPU]; got.String() != "2250m" {
		t.Errorf("limits.cpu %s, want 2250m", got.String())
	}
	if got := l.Spec.Limits[0].Max[corev1.ResourceMemory]; got.String() != "2Gi" {
		t.Errorf("container max memory %s", got.String())
	}
	if r := hostResources(runtime.Limits{}, false); len(r.Limits) != 0 {
		t.Errorf("host resources without quota or limits: %v", r)
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
