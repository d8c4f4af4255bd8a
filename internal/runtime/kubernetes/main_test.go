package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// The tests of this package share one control plane, started by TestMain
// when the binaries of scripts/kube-test-binaries are there.
var (
	cluster    *kubetest.Cluster
	skipReason string
	// fates holds what the fake kubelet does with the host pod of a
	// session (by session); pods of other sessions become ready.
	fates sync.Map
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	cluster, err = kubetest.Start()
	if err != nil {
		skipReason = err.Error()
		if !errors.Is(err, kubetest.ErrNoBinaries) {
			fmt.Fprintln(os.Stderr, "kubetest:", err)
			return 1 // binaries there but broken: a failure, not a skip
		}
		return m.Run()
	}
	defer cluster.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cluster.Kubelet(ctx, labelRole+"="+roleSession, func(pod *corev1.Pod) kubetest.Fate {
		if f, ok := fates.Load(pod.Labels[labelSession]); ok {
			return f.(kubetest.Fate)
		}
		return kubetest.Fate{Ready: true}
	})
	return m.Run()
}

func requireCluster(t *testing.T) {
	t.Helper()
	if cluster == nil {
		t.Skip(skipReason)
	}
}

// waitFor polls cond, a check of the cluster's state from the test's side,
// until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
