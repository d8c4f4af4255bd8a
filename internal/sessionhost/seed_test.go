package sessionhost

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

// TestRunFromSeedAndAllocationFile runs a host the way a pod does: an
// empty home, its configuration and kubeconfig in a seed directory (a
// mounted Secret), and its owner arriving in an allocation file rather
// than by POST.
func TestRunFromSeedAndAllocationFile(t *testing.T) {
	home, seedDir := t.TempDir(), t.TempDir()
	cfg, err := json.Marshal(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := []byte("apiVersion: v1\nkind: Config\n")
	for name, b := range map[string][]byte{SeedConfig: cfg, SeedKubeconfig: kubeconfig} {
		if err := os.WriteFile(filepath.Join(seedDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	allocation := filepath.Join(t.TempDir(), "allocation.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Home: home, Seed: seedDir, AllocationFile: allocation, Logger: slog.New(slog.DiscardHandler)})
	}()
	addr := waitForAddress(t, home, done)
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + addr + path + "?token=" + testConfig.ConfigPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get("/config/kubeconfig"); code != http.StatusOK || string(b) != string(kubeconfig) {
		t.Fatalf("kubeconfig: %d %q, want the seeded one", code, b)
	}

	a, _ := json.Marshal(runtime.Allocation{User: runtime.User{Username: "alice"},
		Params: []runtime.EnvVar{{Name: "GREETING", Value: "Hi"}}})
	if err := os.WriteFile(allocation, a, 0o600); err != nil {
		t.Fatal(err)
	}
	var vars map[string]string
	for deadline := time.Now().Add(3 * allocationPoll); ; time.Sleep(50 * time.Millisecond) {
		_, b := get("/config/variables")
		if err := json.Unmarshal(b, &vars); err != nil {
			t.Fatal(err)
		}
		if vars["username"] == "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("variables %v: the owner of the allocation file never arrived", vars)
		}
	}
	if vars["GREETING"] != "Hi" {
		t.Errorf("GREETING = %q, want the request parameter", vars["GREETING"])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A restarted host keeps its home, whatever the seed says now.
	if err := os.WriteFile(filepath.Join(seedDir, SeedKubeconfig), []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := seed(seedDir, home); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".kube", "config")); string(b) != string(kubeconfig) {
		t.Errorf("kubeconfig after a second seed: %q, want the first one kept", b)
	}
}

func TestSeedWithoutConfigFails(t *testing.T) {
	if err := seed(t.TempDir(), t.TempDir()); err == nil {
		t.Fatal("seed from a directory without session.json succeeded")
	}
}
