package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

// TestMain serves the hidden mode, which the harness starts by running its
// own executable: in tests, this test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == fixedServerArg {
		if err := fixedServer(os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickReserved runs the harness in its quick mode against the real
// binary, built from this checkout, for one small scenario: it checks that
// the harness works, not timings.
// quickRun runs the harness in its quick mode against the real binary
// with args, and returns its report and the table it printed.
func quickRun(t *testing.T, args ...string) (report, *bytes.Buffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds portico and runs real portals")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "bench.json")
	var table bytes.Buffer
	err := run(ctx, append(append([]string{"--quick"}, args...), "--warmup", "100ms", "--window", "500ms", "--json", out), &table)
	t.Logf("table:\n%s", table.String())
	if err != nil {
		t.Fatal(err)
	}
	var r report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, &table
}

func TestQuickReserved(t *testing.T) {
	r, table := quickRun(t, "--scenarios", "reserved", "--clients", "1,4", "--reserve", "50")
	if len(r.Failures) > 0 {
		t.Fatalf("failures: %v", r.Failures)
	}
	metrics := map[string]int{}
	for _, x := range r.Rows {
		if x.Value <= 0 {
			t.Errorf("%s %s %s: %v", x.Section, x.Case, x.Metric, x.Value)
		}
		metrics[x.Case+" "+x.Metric+" vs "+x.Reference]++
	}
	for _, want := range []string{
		"1 connection storage ceiling vs ",
		"1 client throughput vs trivial handler",
		"4 clients throughput vs trivial handler",
		"4 clients p99 latency vs trivial handler",
		"4 clients throughput growth vs portico at 1 client",
	} {
		if metrics[want] != 1 {
			t.Errorf("no row %q in %v", want, metrics)
		}
	}
	if !strings.Contains(table.String(), "reserved allocation") {
		t.Errorf("no table printed")
	}
}

// TestQuickRush runs a small rush against the real binary: every request
// is answered with a session of its own, which the harness also checks in
// the portal's database, and each goal line has its same-run reference.
func TestQuickRush(t *testing.T) {
	r, _ := quickRun(t, "--scenarios", "rush", "--rush", "40")
	if len(r.Failures) > 0 {
		t.Fatalf("failures: %v", r.Failures)
	}
	rows := map[string]row{}
	for _, x := range r.Rows {
		rows[x.Case+" "+x.Metric] = x
	}
	if x := rows["N = 40 distinct sessions"]; x.Value != 40 || x.RefValue != 40 {
		t.Errorf("distinct sessions: %+v", x)
	}
	for _, m := range []string{"p50 latency", "p99 latency", "makespan"} {
		if x := rows["N = 40 "+m]; x.Value <= 0 || x.RefValue <= 0 || x.Reference != "trivial handler" {
			t.Errorf("no row %q with a value and its reference: %+v", m, x)
		}
	}
}

// TestQuickFlood runs the flood scenario in its quick mode against the
// real binary: the harness measures the request alone and under the
// flood, and every answer of the flood is a 401 or a 429.
func TestQuickFlood(t *testing.T) {
	r, _ := quickRun(t, "--scenarios", "flood", "--flood-loops", "2")
	rows := map[string]bool{}
	for _, x := range r.Rows {
		rows[x.Case+" "+x.Metric] = x.Metric == "flood checked" || x.Value > 0 && x.RefValue > 0
	}
	for _, c := range []string{"2 loops, one address", "2 loops, 2 addresses"} {
		for _, m := range []string{"p50 latency", "p99 latency", "throughput", "flood checked"} {
			if !rows[c+" "+m] {
				t.Errorf("no row %q with a value and its reference in %v", c+" "+m, rows)
			}
		}
	}
}

// TestQuickHost runs the host scenario in its quick mode against the real
// binaries: the session host the portal runs is portico-session, measured
// beside the portal binary run as the host, and goal 5 of issue 14 (host
// RSS, start CPU, size of the portal without Kubernetes) has its rows.
func TestQuickHost(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil && os.Geteuid() == 0 {
		t.Skip("as root the local runtime needs bubblewrap: apt-get install bubblewrap")
	}
	r, _ := quickRun(t, "--scenarios", "host", "--hosts", "2")
	if len(r.Failures) > 0 {
		t.Fatalf("failures: %v", r.Failures)
	}
	rows := map[string]row{}
	for _, x := range r.Rows {
		rows[x.Case+" "+x.Metric] = x
	}
	for _, m := range []string{"2 hosts RSS per idle host", "2 hosts CPU per host, start and 1 s idle", "stripped binaries portal, -tags nokubernetes"} {
		x, ok := rows[m]
		if !ok || x.Value <= 0 || x.RefValue <= 0 || x.Met == nil || !strings.HasPrefix(x.Target, "goal 5: ") {
			t.Errorf("no goal row %q with a value and its reference: %+v", m, x)
		}
	}
	host, ok := rows["2 hosts RSS per idle host"].Detail.(map[string]any)
	if !ok || fmt.Sprint(host["command"]) == "" || !strings.Contains(fmt.Sprint(host["command"]), sessionBinary) {
		t.Errorf("the hosts measured are not %s: %v", sessionBinary, host)
	}
	if x := rows["2 hosts RSS per idle host, `portico sessionhost`"]; x.Value <= 0 {
		t.Errorf("no row of the portal binary as the host: %+v", x)
	}
}

// TestQuickChaos runs the chaos scenario for 20 s against the real binary:
// three replicas on a throwaway PostgreSQL under load and faults of each
// kind, a replica whose machine clock is minutes off among them. Any
// invariant violation fails the run, and so the test.
func TestQuickChaos(t *testing.T) {
	if pgtest.BinDir() == "" {
		t.Skip("PostgreSQL is not installed: apt-get install -y postgresql")
	}
	r, _ := quickRun(t, "--scenarios", "chaos", "--faults", "kill-leader,kill-other,freeze-leader,freeze-other,postgres,host,clock")
	rows := map[string]float64{}
	for _, x := range r.Rows {
		if x.Section == "chaos" {
			rows[x.Case+" "+x.Metric] = x.Value
		}
	}
	if rows["faults all"] == 0 || rows["requests served (200, 302)"] == 0 || rows["sessions given out"] == 0 {
		t.Errorf("a chaos run without faults, answers or sessions: %v", rows)
	}
	if v, ok := rows["invariants violations"]; !ok || v != 0 {
		t.Errorf("violations: %v (row present: %v)", v, ok)
	}
}

func TestFlags(t *testing.T) {
	// The default run has the kube scenario only where its binaries are.
	kube, kwok := t.TempDir(), t.TempDir()
	t.Setenv("PORTICO_KUBE_ASSETS", kube)
	t.Setenv(kwokEnv, kwok)
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.scenarios, ",") != "reserved,rush,ondemand,catalog,idle,host,flood" || o.peer != "" {
		t.Errorf("default scenarios %v, peer %q", o.scenarios, o.peer)
	}
	if o.kubeSessions != 1000 {
		t.Errorf("kube sessions %d", o.kubeSessions)
	}
	for dir, files := range map[string][]string{kube: {"etcd", "kube-apiserver", "kube-controller-manager"}, kwok: {"kwok", "stages.yaml"}} {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if o, err = parseFlags(nil); err != nil || strings.Join(o.scenarios, ",") != "reserved,rush,ondemand,catalog,idle,host,flood,kube" {
		t.Errorf("default scenarios with the kube binaries: %v, %v", o.scenarios, err)
	}
	if o, err = parseFlags([]string{"--kube", "--quick"}); err != nil || strings.Join(o.scenarios, ",") != "kube" || o.kubeSessions != 20 {
		t.Errorf("--kube --quick: %v, %v", o, err)
	}
	if o, err = parseFlags([]string{"--kube", "--scenarios", "reserved", "--kube-sessions", "300"}); err != nil ||
		strings.Join(o.scenarios, ",") != "reserved,kube" || o.kubeSessions != 300 {
		t.Errorf("--kube with --scenarios: %v, %v", o, err)
	}
	if o.clients[len(o.clients)-1] != 256 || o.window != 5*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"--peer", "jupyterhub", "--scenarios", "ondemand", "--quick"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.scenarios, ",") != "ondemand,peer" || o.window != time.Second {
		t.Errorf("with the peer: %v, window %s", o.scenarios, o.window)
	}
	o, err = parseFlags([]string{"--chaos", "10m"})
	if err != nil || strings.Join(o.scenarios, ",") != "chaos" || o.chaos != 10*time.Minute {
		t.Errorf("--chaos 10m: %v, %v", o, err)
	}
	if o, err = parseFlags([]string{"--quick", "--scenarios", "chaos"}); err != nil || o.chaos != 20*time.Second {
		t.Errorf("quick chaos: %v, %v", o, err)
	}
	if o, err = parseFlags([]string{"--chaos", "1m", "--faults", "host, postgres"}); err != nil || len(o.faults) != 2 || o.faults[1] != faultPostgres {
		t.Errorf("--faults: %v, %v", o, err)
	}
	for _, bad := range [][]string{{"--scenarios", "nope"}, {"--chaos", "-1m"}, {"--faults", "meteor"}, {"--clients", "0"}, {"--peer", "other"}, {"extra"}, {"--flood-loops", "0"}, {"--kube-sessions", "-5"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !(&options{cpuProfile: "x", profileAt: "reserved/64"}).profiled("reserved", 64) {
		t.Error("reserved/64 not profiled")
	}
}

func TestSummarise(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := summarise(lat)
	if s.N != 100 || s.P50ms != 50 || s.P99ms != 99 || s.MaxMs != 100 || s.MeanMs != 50.5 {
		t.Errorf("%+v", s)
	}
	if (summarise(nil) != stats{}) {
		t.Error("empty")
	}
}

// The rush's check against the database fails on every way a session may
// be given wrongly.
func TestSameSessions(t *testing.T) {
	answers := []string{"s1", "s2"}
	if err := sameSessions(answers, map[string][]string{"rush-0": {"s1"}, "rush-1": {"s2"}}); err != nil {
		t.Errorf("right sessions refused: %v", err)
	}
	for name, held := range map[string]map[string][]string{
		"one missing":      {"rush-0": {"s1"}},
		"another user":     {"rush-0": {"s1"}, "rush-1": {"s2"}, "other": {"s3"}},
		"two for one user": {"rush-0": {"s1", "s3"}, "rush-1": {"s2"}},
		"swapped":          {"rush-0": {"s2"}, "rush-1": {"s1"}},
	} {
		if err := sameSessions(answers, held); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
