package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterConfig(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := clusterConfig(""); err == nil || !strings.Contains(err.Error(), "no --kubeconfig, no KUBECONFIG, and not in a cluster") {
		t.Errorf("no configuration: %v", err)
	}
	if _, err := clusterConfig(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "config")
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://cluster.example:6443"}}]
users: [{name: u, user: {token: t0k3n}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, env string }{{path, ""}, {"", path}} {
		t.Setenv("KUBECONFIG", tc.env)
		cfg, err := clusterConfig(tc.flag)
		if err != nil || cfg.Host != "https://cluster.example:6443" || cfg.BearerToken != "t0k3n" {
			t.Errorf("flag %q, KUBECONFIG %q: %+v, %v", tc.flag, tc.env, cfg, err)
		}
	}
}

// The session image the portal runs by default is the one deploy/ tags
// for the same release: the Helm chart's appVersion.
func TestDefaultSessionImageIsThisRelease(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "portico", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `appVersion: "` + release + `"`; !strings.Contains(string(chart), want) {
		t.Errorf("Chart.yaml has no %s", want)
	}
	if strings.HasSuffix(defaultSessionImage, ":latest") || !strings.HasSuffix(defaultSessionImage, ":"+release) {
		t.Errorf("default session image %s, want the tag %s", defaultSessionImage, release)
	}
}
