package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// client-go logs through klog; its lines come out of the portal's logger,
// in its format and at its level, and not on klog's own stderr.
func TestKlogGoesThroughTheLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger(&out, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
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

func TestLoggerFlags(t *testing.T) {
	for _, c := range []struct{ format, level, err string }{
		{"text", "debug", ""},
		{"json", "ERROR", ""},
		{"xml", "info", "--log-format"},
		{"text", "verbose", "--log-level"},
	} {
		_, err := newLogger(&bytes.Buffer{}, c.format, c.level)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("--log-format %s --log-level %s: %v", c.format, c.level, err)
		}
	}
}
