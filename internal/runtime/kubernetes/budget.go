package kubernetes

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portico-dev/portico/internal/runtime"
)

// budget is what a session's own workloads may use in its namespace:
// Educates' named budgets (spec.session.namespaces.budget), by the same
// names and with the same values, so that a workshop sized for Educates
// fits here as it did there.
type budget struct {
	// cpu and memory bound the limits of all pods together (long-running
	// and time-bound ones each), and of any one pod or container.
	cpu, memory string
	// defaultCPU and defaultMemory are the limits of a container that
	// states none.
	defaultCPU, defaultMemory string
	// claim is the largest persistent volume claim.
	claim string
	// How many claims, replication controllers, secrets and services the
	// namespace may hold.
	claims, controllers, secrets, services int64
}

var budgets = map[string]budget{
	"small":     {"1", "1Gi", "250m", "256Mi", "1Gi", 3, 10, 20, 5},
	"medium":    {"2", "2Gi", "500m", "512Mi", "5Gi", 6, 15, 25, 10},
	"large":     {"4", "4Gi", "500m", "1Gi", "10Gi", 12, 25, 35, 20},
	"x-large":   {"8", "8Gi", "500m", "2Gi", "20Gi", 18, 35, 45, 30},
	"xx-large":  {"8", "12Gi", "500m", "2Gi", "20Gi", 24, 45, 55, 40},
	"xxx-large": {"8", "16Gi", "500m", "2Gi", "20Gi", 30, 55, 65, 50},
}

// Names of the budget's objects, as Educates names them: workshop
// instructions that show them (`kubectl describe quota compute-resources`)
// work unchanged.
const (
	limitRangeName     = "resource-limits"
	computeQuotaName   = "compute-resources"
	timeboundQuotaName = "compute-resources-timebound"
	countsQuotaName    = "object-counts"
	budgetAnnotation   = "resource-budget"
)

// Default resources of the session host's container, for a workshop with
// a budget that does not state them in session.resources: its host is then
// bounded as every container of its namespace is.
var (
	hostCPU    = resource.MustParse("500m")
	hostMemory = resource.MustParse("512Mi")
)

// hostResources are the requests and limits of the session host's
// container: spec.session.resources when given (requests equal to limits,
// so the host is never the first evicted), else the defaults for a
// session with a budget, else none. Limits.Storage is not applied yet:
// Educates gives the home a persistent volume of that size.
func hostResources(l runtime.Limits, budget bool) corev1.ResourceRequirements {
	list := corev1.ResourceList{}
	if l.CPUMilli > 0 {
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(l.CPUMilli), resource.DecimalSI)
	} else if budget {
		list[corev1.ResourceCPU] = hostCPU
	}
	if l.Memory > 0 {
		list[corev1.ResourceMemory] = *resource.NewQuantity(l.Memory, resource.BinarySI)
	} else if budget {
		list[corev1.ResourceMemory] = hostMemory
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}
}

// budgetOf is the ResourceQuotas and LimitRange of a session namespace with
// the named budget, as Educates makes them: a compute quota for
// long-running pods, one for time-bound pods, and object counts. The
// session host runs in the environment namespace, as in Educates, so the
// budget is the session's own workloads' alone. nil for no budget or
// "custom" (the workshop brings its own in session.objects).
//
// Beyond Educates, a session may have no LoadBalancer or NodePort service:
// either would expose it outside the cluster, to anybody.
func budgetOf(name string) ([]*corev1.ResourceQuota, *corev1.LimitRange, error) {
	if name == "" || name == "custom" {
		return nil, nil, nil
	}
	b, ok := budgets[name]
	if !ok {
		return nil, nil, fmt.Errorf("unknown budget %q", name)
	}
	cpu, memory := resource.MustParse(b.cpu), resource.MustParse(b.memory)
	meta := func(n string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: n, Annotations: map[string]string{budgetAnnotation: name}}
	}
	count := func(n int64) resource.Quantity { return *resource.NewQuantity(n, resource.DecimalSI) }
	compute := corev1.ResourceList{corev1.ResourceLimitsCPU: cpu, corev1.ResourceLimitsMemory: memory}
	quotas := []*corev1.ResourceQuota{
		{ObjectMeta: meta(computeQuotaName), Spec: corev1.ResourceQuotaSpec{
			Hard:   compute,
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating},
		}},
		{ObjectMeta: meta(timeboundQuotaName), Spec: corev1.ResourceQuotaSpec{
			Hard:   compute.DeepCopy(),
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating},
		}},
		{ObjectMeta: meta(countsQuotaName), Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePersistentVolumeClaims: count(b.claims),
			corev1.ResourceReplicationControllers: count(b.controllers),
			corev1.ResourceSecrets:                count(b.secrets),
			corev1.ResourceServices:               count(b.services),
			corev1.ResourceServicesLoadBalancers:  count(0),
			corev1.ResourceServicesNodePorts:      count(0),
		}}},
	}
	// No pod or container may exceed the budget.
	minimum := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m"), corev1.ResourceMemory: resource.MustParse("1Mi")}
	maximum := corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory}
	limits := &corev1.LimitRange{ObjectMeta: meta(limitRangeName), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypePod, Min: minimum, Max: maximum},
		{
			Type: corev1.LimitTypeContainer,
			Min:  minimum.DeepCopy(),
			Max:  maximum.DeepCopy(),
			// Containers that say nothing get these, so that a plain
			// `kubectl run` works under the quota.
			Default: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(b.defaultCPU),
				corev1.ResourceMemory: resource.MustParse(b.defaultMemory),
			},
			DefaultRequest: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		{
			Type: corev1.LimitTypePersistentVolumeClaim,
			Min:  corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			Max:  corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(b.claim)},
		},
	}}}
	return quotas, limits, nil
}
