package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitFile = "systemd/portico.service"

// unitSettings returns the settings of a unit file by name, in order,
// continuation lines joined.
func unitSettings(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[")) {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		k, v, ok := strings.Cut(cur.String(), "=")
		if !ok {
			t.Fatalf("%s: not a setting: %q", unitFile, cur.String())
		}
		settings[k] = append(settings[k], v)
		cur.Reset()
	}
	return settings
}

// TestSystemdUnit checks that the unit gives the local runtime what its
// sandbox needs, and withholds nothing it needs: a setting that would
// break sessions (hiding the loop devices or /dev/net/tun, read-only
// cgroups, over-mounted /proc, no namespaces) fails here.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	s := unitSettings(t, b)
	for key, want := range map[string]string{
		"User":               "root",    // user namespaces with ids of their own, loop mounts
		"Delegate":           "yes",     // the sessions' cgroups below the service's
		"KillMode":           "mixed",   // SIGTERM to the portal, which ends the sessions
		"StateDirectory":     "portico", // the data directory
		"StateDirectoryMode": "0700",
		"TasksMax":           "infinity", // each session has its own limit
		"EnvironmentFile":    "-/etc/portico/portico.env",
		"NoNewPrivileges":    "yes",
		"ProtectSystem":      "strict",
	} {
		if got := s[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	start := strings.Join(s["ExecStart"], " ")
	for _, arg := range []string{"serve", "--data-dir ${STATE_DIRECTORY}", "--config /etc/portico"} {
		if !strings.Contains(start, arg) {
			t.Errorf("ExecStart %q lacks %q", start, arg)
		}
	}
	if strings.Contains(start, "--database") || strings.Contains(start, "postgres://") {
		t.Errorf("ExecStart %q holds a database URL, which every user reads with ps", start)
	}
	// The capabilities of the local runtime: mounts, loop devices and
	// namespaces; the sessions' id maps (SETFCAP to map id 0); what the
	// session host keeps in its namespace must be in the bounding set of
	// the process that hands it over; its homes, processes, OOM scores and
	// network.
	bounding := strings.Fields(strings.Join(s["CapabilityBoundingSet"], " "))
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE",
		"CAP_NET_ADMIN", "CAP_SYS_CHROOT"} {
		if !slices.Contains(bounding, c) {
			t.Errorf("CapabilityBoundingSet lacks %s, which the local runtime uses", c)
		}
	}
	for _, c := range []string{"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_MAC_ADMIN", "CAP_BPF"} {
		if slices.Contains(bounding, c) {
			t.Errorf("CapabilityBoundingSet keeps %s, which nothing of the portal needs", c)
		}
	}
	for _, key := range []string{"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock",
		"ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset", "ProtectControlGroups",
		"RestrictNamespaces", "SystemCallFilter", "MemoryDenyWriteExecute", "PrivateUsers", "PrivateNetwork",
		"DynamicUser"} {
		if v, ok := s[key]; ok {
			t.Errorf("%s=%q breaks the sessions' sandbox", key, v)
		}
	}
}

// TestSystemdUnitVerifies has systemd-analyze check the unit as systemd
// would load it: a misspelled setting, a bad value or a missing program
// fails it.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: apt-get install systemd")
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// The binary is not installed here: a stand-in at another path takes
	// its place, since verify wants ExecStart's program to exist.
	dir := t.TempDir()
	bin := filepath.Join(dir, "portico")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("ExecStart=/usr/local/bin/portico ")) {
		t.Fatalf("ExecStart is not /usr/local/bin/portico, as the install lines of the unit say")
	}
	unit := filepath.Join(dir, "portico.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/local/bin/portico"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--man=no", unit)
	out, err := cmd.CombinedOutput()
	// verify exits 0 after a setting it ignores; anything it says about
	// the unit is a defect.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
