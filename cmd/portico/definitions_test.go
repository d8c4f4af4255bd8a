package main

import (
	"flag"
	"strings"
	"testing"
)

func TestDefinitionFlags(t *testing.T) {
	for _, c := range []struct {
		args   []string
		config string
		err    string // "" when accepted
	}{
		{args: nil},
		{args: []string{"--definitions", "kubernetes", "--portal-name", "p"}},
		{args: []string{"--definitions", "kubernetes"}, config: "portal.yaml", err: "exclude each other"},
		{args: []string{"--portal-name", "p"}, err: "needs --definitions kubernetes"},
		{args: []string{"--definitions", "etcd"}, err: "not files or kubernetes"},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		f := addDefinitionFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := f.check(c.config)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%v with --config %q: %v, want %q", c.args, c.config, err, c.err)
		}
	}
}

// The status carries the credentials the accounts have: those generated on
