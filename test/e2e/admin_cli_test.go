package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	portico "github.com/portico-dev/portico/client"
)

// TestAdminCLI drives a real portal with the admin commands of the real
// binary, its settings from a config file (portal and client), the
// environment (staff account) and flags (output, and an account that
// overrides the environment's).
func TestAdminCLI(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 3, Reserved: 1}))
	ctx := context.Background()
	robot := p.api(robotUser, robotPass)
	if msg := eventually(settle, func() string {
		if cat, err := robot.Environments(ctx, portico.CatalogOptions{}); err != nil || len(cat.Environments) != 1 {
			return "environment not running"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	a, err := robot.RequestSession(ctx, envName, portico.SessionRequest{User: "carol@example.com", IndexURL: indexURL})
	if err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "portico"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "portico", "client.yaml"), []byte("portal: "+p.url+"\nclient_id: "+clientID+
		"\nclient_secret: "+clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_CONFIG_HOME=" + home, "PORTICO_USERNAME=" + adminUser, "PORTICO_PASSWORD=" + adminPass}
	// cli runs the binary and returns its stdout, failing the test unless
	// the exit status is the one wanted.
	cli := func(wantExit int, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != wantExit {
			t.Fatalf("portico %s: exit %d (%v), want %d\n%s%s", strings.Join(args, " "), code, err, wantExit, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	decode := func(raw string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, raw)
		}
	}

	var sessions []portico.StaffSession
	decode(first(cli(0, "sessions", "ls", "-o", "json")), &sessions)
	found := false
	for _, s := range sessions {
		found = found || s.Name == a.Name && s.User == "carol@example.com" && s.Environment == envName
	}
	if !found {
		t.Errorf("sessions ls -o json has no session %s of carol: %+v", a.Name, sessions)
	}
	table := first(cli(0, "sessions", "ls", "--search", "carol"))
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], a.Name) || !strings.Contains(lines[1], "carol@example.com") {
		t.Errorf("sessions ls --search carol:\n%s", table)
	}

	var one portico.StaffSession
	decode(first(cli(0, "sessions", "show", a.Name, "-o", "json")), &one)
	if one.Name != a.Name || one.URL != sessionURL(p.url, a.Name) || one.Expires.IsZero() {
		t.Errorf("sessions show: %+v", one)
	}
	var sc portico.Schedule
	decode(first(cli(0, "sessions", "extend", "-o", "json", a.Name)), &sc)
	if sc.Extended || sc.Expires.IsZero() {
		t.Errorf("extend of a fresh session: %+v", sc)
	}

	users := first(cli(0, "users", "ls", "--search", "carol"))
	if !strings.Contains(users, "carol@example.com") || !strings.HasPrefix(users, "USERNAME") {
		t.Errorf("users ls:\n%s", users)
	}
	var envs []portico.Environment
	decode(first(cli(0, "environments", "ls", "-o", "json")), &envs)
	if len(envs) != 1 || envs[0].Name != envName || envs[0].Capacity != 3 || envs[0].Allocated != 1 {
		t.Errorf("environments ls: %+v", envs)
	}

	// The token is the staff account's, good for the API.
	tok := strings.TrimSpace(first(cli(0, "token")))
	c := p.client()
	c.bearer = tok
	var authz struct{ Staff bool }
	if status := c.get("/workshops/session/"+a.Name+"/authorize/", &authz); status != 200 || !authz.Staff {
		t.Errorf("the CLI's token: %d %+v", status, authz)
	}

	// Flags win over the environment: the robot is no staff.
	if _, stderr := cli(1, "users", "ls", "--username", robotUser, "--password", robotPass); !strings.Contains(stderr, "403") {
		t.Errorf("users ls as the robot: %s", stderr)
	}

	cli(0, "sessions", "terminate", a.Name)
	if msg := eventually(settle, func() string {
		if _, err := robot.SessionSchedule(ctx, a.Name); !portico.IsNotFound(err) {
			return "session still there after terminate: " + errString(err)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	if _, stderr := cli(1, "sessions", "show", a.Name); !strings.Contains(stderr, "404") {
		t.Errorf("show of an ended session: %s", stderr)
	}

	decode(first(cli(0, "environments", "refresh", envName, "-o", "json")), &envs)
	names := []string{}
	for _, e := range envs {
		names = append(names, e.Name+" "+e.State)
	}
	if !strings.Contains(strings.Join(names, ","), portalName+"-w02") {
		t.Errorf("after refresh: %v", names)
	}
}

func first(stdout, _ string) string { return stdout }

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
