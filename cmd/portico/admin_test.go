package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
)

// runAdmin runs an admin command and returns what it printed.
func runAdmin(t *testing.T, noun string, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := admin(&out, noun, args)
	return out.String(), err
}

// The settings come from flags, else the environment, else the config
// file; an unknown key in the file is refused.
func TestAdminSettings(t *testing.T) {
	p := portaltest.Start(t, portaltest.Definitions(config.Entry{Capacity: 2, Expires: time.Hour}),
		portaltest.Options{Runtime: runtimetest.New()})
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	for _, k := range []string{"PORTICO_PORTAL", "PORTICO_CLIENT_ID", "PORTICO_CLIENT_SECRET", "PORTICO_USERNAME", "PORTICO_PASSWORD", "PORTICO_CLIENT_CONFIG"} {
		t.Setenv(k, "")
	}

	if _, err := runAdmin(t, "users", "ls"); err == nil || !strings.Contains(err.Error(), "--portal, --client-id, --client-secret") {
		t.Errorf("without settings: %v", err)
	}

	file := filepath.Join(home, "portico", "client.yaml")
	os.MkdirAll(filepath.Dir(file), 0o700)
	os.WriteFile(file, []byte("portal: "+p.Server.URL+"\nclient_id: "+portaltest.ClientID+"\nclient_secret: "+portaltest.ClientSecret+
		"\nusername: "+portaltest.AdminUser+"\npassword: wrong\n"), 0o600)
	if _, err := runAdmin(t, "users", "ls"); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("wrong password in the file: %v", err)
	}
	t.Setenv("PORTICO_PASSWORD", portaltest.AdminPassword)
	out, err := runAdmin(t, "users", "ls")
	if err != nil || !strings.HasPrefix(out, "USERNAME") || !strings.Contains(out, portaltest.AdminUser) {
		t.Errorf("password from the environment: %v\n%s", err, out)
	}
	// A flag wins over the environment: the robot may not list users.
	if _, err := runAdmin(t, "users", "ls", "--username", portaltest.RobotUser, "--password", portaltest.RobotPassword); err == nil ||
		!strings.Contains(err.Error(), "403") {
		t.Errorf("as the robot: %v", err)
	}

	other := filepath.Join(home, "other.yaml")
	os.WriteFile(other, []byte("portal: "+p.Server.URL+"\nclient_secrett: x\n"), 0o600)
	if _, err := runAdmin(t, "token", "--client-config", other); err == nil || !strings.Contains(err.Error(), "client_secrett") {
		t.Errorf("misspelled key: %v", err)
	}

	tok, err := runAdmin(t, "token")
	if err != nil || len(strings.TrimSpace(tok)) < 32 || strings.Count(tok, "\n") != 1 {
		t.Errorf("token: %v %q", err, tok)
	}
	out, err = runAdmin(t, "token", "-o", "json")
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.AccessToken == "" {
		t.Errorf("token -o json: %v %s", err, out)
	}

	for _, bad := range [][]string{{"sessions"}, {"sessions", "rm"}, {"sessions", "show"}, {"sessions", "ls", "-o", "yaml"},
		{"environments", "ls", "--search", "x"}} {
		if _, err := runAdmin(t, bad[0], bad[1:]...); err == nil {
			t.Errorf("%v is taken", bad)
		}
	}
	if out, err := runAdmin(t, "sessions", "--help"); err != nil || !strings.Contains(out, "portico sessions ls") {
		t.Errorf("help: %v %s", err, out)
	}
}
