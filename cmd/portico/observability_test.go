package main

import (
	"bytes"
	"strings"
	"testing"
)

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
