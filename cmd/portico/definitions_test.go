package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
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
// the first start win over the empty ones of the definitions.
func TestCredentialsOf(t *testing.T) {
	p := config.Portal{
		Admin: config.Credentials{Username: "educates", Password: "given"},
		Robot: config.Credentials{Username: "robot@educates"},
	}
	c := credentialsOf(p, auth.Generated{RobotPassword: "made", ClientID: "id", ClientSecret: "secret"})
	if c.AdminPassword != "given" || c.RobotUsername != "robot@educates" || c.RobotPassword != "made" ||
		c.ClientID != "id" || c.ClientSecret != "secret" {
		t.Errorf("credentials %+v", c)
	}
	if c := credentialsOf(p, auth.Generated{}); c.RobotPassword != "" || c.ClientSecret != "" {
		t.Errorf("a later start publishes %+v", c)
	}
}
