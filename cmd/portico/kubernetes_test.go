//go:build !nokubernetes

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
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

// client-go logs through klog; its lines come out of the portal's logger,
// in its format and at its level, and not on klog's own stderr.
func TestKlogGoesThroughTheLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger(&out, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	routeKlog(log)
	klog.InfoS("watch started", "resource", "pods")
	klog.ErrorS(nil, "watch failed", "resource", "namespaces")
	log.Info("portal info")
	log.Warn("portal warning")
	klog.Flush()
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["msg"] != "watch failed" || lines[0]["logger"] != "client-go" ||
		lines[0]["resource"] != "namespaces" || lines[0]["level"] != "ERROR" || lines[1]["msg"] != "portal warning" {
		t.Errorf("log at warn: %s", out.String())
	}
}
