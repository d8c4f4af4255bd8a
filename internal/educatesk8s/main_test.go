package educatesk8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// The tests of this package share one control plane, started by TestMain
// when the binaries of scripts/kube-test-binaries are there.
var (
	cluster    *kubetest.Cluster
	client     dynamic.Interface
	skipReason string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	cluster, err = kubetest.Start()
	if err != nil {
		skipReason = err.Error() + " (build them with scripts/kube-test-binaries)"
		if !errors.Is(err, kubetest.ErrNoBinaries) {
			fmt.Fprintln(os.Stderr, "kubetest:", err)
			return 1 // binaries there but broken: a failure, not a skip
		}
		return m.Run()
	}
	defer cluster.Stop()
	if client, err = dynamic.NewForConfig(cluster.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func requireCluster(t *testing.T) {
	t.Helper()
	if cluster == nil {
		t.Skip(skipReason)
	}
}

// requireCRDs is requireCluster with the custom resources installed.
func requireCRDs(t *testing.T) {
	t.Helper()
	requireCluster(t)
	if err := EnsureCRDs(context.Background(), client, true); err != nil {
		t.Fatal(err)
	}
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// waitFor polls cond, which says what it still waits for ("" once done),
// until it is done or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, last)
		}
	}
}

// str is the string at path in u, "" when absent.
func str(u *unstructured.Unstructured, path ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, path...)
	return s
}
