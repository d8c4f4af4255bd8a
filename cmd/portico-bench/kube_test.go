package main

import "testing"

func TestParseRequestTotals(t *testing.T) {
	body := []byte(`# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 4.5e+01
apiserver_request_total{code="200",component="a\"b,c",dry_run="",group="rbac.authorization.k8s.io",resource="clusterroles",scope="resource",subresource="",verb="GET",version="v1"} 1
apiserver_request_duration_seconds_count{verb="GET"} 99
`)
	got, err := parseRequestTotals(body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"POST namespaces":           15,
		"POST pods/binding":         7,
		"GET (no resource)//readyz": 45,
		"GET clusterroles":          1,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, err := parseRequestTotals([]byte("apiserver_request_total{verb=\"GET\"}\n")); err == nil {
		t.Error("a sample without a value accepted")
	}
	if _, err := parseRequestTotals([]byte("go_goroutines 5\n")); err == nil {
		t.Error("metrics without the counter accepted")
	}
}

func TestDiffAndBreakdown(t *testing.T) {
	d := diffCounts(map[string]float64{"Pod": 2, "Node": 3, "Gone": 1}, map[string]float64{"Pod": 12, "Node": 3, "Secret": 40})
	if len(d) != 3 || d["Pod"] != 10 || d["Secret"] != 40 || d["Gone"] != -1 {
		t.Errorf("diff %v", d)
	}
	per := func(v float64) float64 { return v / 10 }
	if got := breakdown(map[string]float64{"Pod": 10, "Secret": 40, "Role": 10}, per, 2); got != "Secret 4.00, Pod 1.00, …" {
		t.Errorf("breakdown %q", got)
	}
}

// TestQuickKube runs the kube scenario with a reserve of 20 against the
// real binary, a real kube-apiserver and kwok: it checks that the harness
// works, not timings.
func TestQuickKube(t *testing.T) {
	if err := kubeMissing(); err != nil {
		t.Skip(err)
	}
	r, _ := quickRun(t, "--kube", "--kube-limit", "2m")
	if len(r.Failures) > 0 {
		t.Fatalf("failures: %v", r.Failures)
	}
	rows := map[string]row{}
	for _, x := range r.Rows {
		rows[x.Metric] = x
	}
	for _, m := range []string{"time to all ready", "sessions ready per second", "API objects per session", "API requests per session",
		"portal CPU, start to all ready", "cluster CPU, start to all ready", "portal RSS, all ready", "re-adoption after a restart"} {
		if x, ok := rows[m]; !ok || x.Value <= 0 {
			t.Errorf("row %q: %+v (present: %v)", m, x, ok)
		}
	}
	cpu, _ := rows["cluster CPU, start to all ready"].Detail.(map[string]any)
	for _, c := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kwok"} {
		if _, ok := cpu[c]; !ok {
			t.Errorf("no CPU of %s in %v", c, cpu)
		}
	}
	// Each session has at least its namespace, its host's pod and service.
	objects, _ := rows["API objects per session"].Detail.(map[string]any)
	for _, kind := range []string{"Namespace", "Pod", "Service"} {
		if v, _ := objects[kind].(float64); v < 1 {
			t.Errorf("%s per session: %v (all: %v)", kind, objects[kind], objects)
		}
	}
}
