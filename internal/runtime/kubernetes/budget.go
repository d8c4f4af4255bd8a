package kubernetes

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/portico-dev/portico/internal/runtime"
)

// budget is the compute a session's own workloads may use in its
// namespace: Educates' named budgets, by the same names and sizes.
type budget struct {
	cpu, memory, storage string
}

var budgets = map[string]budget{
	"small":     {"1000m", "1Gi", "5Gi"},
	"medium":    {"2000m", "2Gi", "5Gi"},
	"large":     {"4000m", "4Gi", "10Gi"},
	"x-large":   {"8000m", "8Gi", "20Gi"},
	"xx-large":  {"12000m", "12Gi", "20Gi"},
	"xxx-large": {"16000m", "16Gi", "20Gi"},
}

// Default resources of the session host's container in a namespace with a
// quota, where every container must state them, when the workshop's
// session.resources does not.
var (
	hostCPU    = resource.MustParse("500m")
	hostMemory = resource.MustParse("512Mi")
)

// hostResources are the requests and limits of the session host's
// container: spec.session.resources when given (requests equal to limits,
// so the host is never the first evicted), else the defaults when a quota
// requires them, else none.
func hostResources(l runtime.Limits, quota bool) corev1.ResourceRequirements {
	list := corev1.ResourceList{}
	if l.CPUMilli > 0 {
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(l.CPUMilli), resource.DecimalSI)
	} else if quota {
		list[corev1.ResourceCPU] = hostCPU
	}
	if l.Memory > 0 {
		list[corev1.ResourceMemory] = *resource.NewQuantity(l.Memory, resource.BinarySI)
	} else if quota {
		list[corev1.ResourceMemory] = hostMemory
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}
}

// quotaOf is the ResourceQuota of a session namespace: the budget for the
// attendee's own workloads plus what the session host, which lives in the
// same namespace, takes. nil for no budget or "custom" (the workshop
// brings its own in session.objects).
func quotaOf(name string, host corev1.ResourceRequirements) (*corev1.ResourceQuota, *corev1.LimitRange, error) {
	if name == "" || name == "custom" {
		return nil, nil, nil
	}
	b, ok := budgets[name]
	if !ok {
		return nil, nil, fmt.Errorf("unknown budget %q", name)
	}
	cpu, memory, storage := resource.MustParse(b.cpu), resource.MustParse(b.memory), resource.MustParse(b.storage)
	totalCPU, totalMemory := cpu.DeepCopy(), memory.DeepCopy()
	totalCPU.Add(host.Limits[corev1.ResourceCPU])
	totalMemory.Add(host.Limits[corev1.ResourceMemory])
	quota := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
		corev1.ResourceLimitsCPU:       totalCPU,
		corev1.ResourceLimitsMemory:    totalMemory,
		corev1.ResourceRequestsCPU:     totalCPU,
		corev1.ResourceRequestsMemory:  totalMemory,
		corev1.ResourceRequestsStorage: storage,
		// Counts as Educates sets them: a session cannot expose itself
		// outside the cluster or hoard volumes.
		corev1.ResourcePersistentVolumeClaims: resource.MustParse("3"),
		corev1.ResourceServicesLoadBalancers:  resource.MustParse("0"),
		corev1.ResourceServicesNodePorts:      resource.MustParse("0"),
		corev1.ResourceReplicationControllers: resource.MustParse("10"),
	}}}
	// Containers that say nothing get small defaults, so that a plain
	// `kubectl run` works under the quota; none may exceed the budget.
	limits := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{
			Type: corev1.LimitTypeContainer,
			Max:  corev1.ResourceList{corev1.ResourceCPU: maxQ(cpu, host.Limits[corev1.ResourceCPU]), corev1.ResourceMemory: maxQ(memory, host.Limits[corev1.ResourceMemory])},
			Default: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("500m"),
				corev1.ResourceMemory: resource.MustParse("512Mi"),
			},
			DefaultRequest: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		{
			Type: corev1.LimitTypePersistentVolumeClaim,
			Max:  corev1.ResourceList{corev1.ResourceStorage: storage},
		},
	}}}
	return quota, limits, nil
}

func maxQ(a, b resource.Quantity) resource.Quantity {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}
