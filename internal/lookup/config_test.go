package lookup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimal = `
clients:
- {name: front, password: front-secret, roles: [tenant], tenants: [t1]}
`

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`clients: []`, "clients: at least one client"},
		{`clients: [{name: front, password: short, roles: [tenant]}]`, "clients[0].password: at least 8 characters"},
		{`clients: [{name: front, password: front-secret}]`, "clients[0].roles: at least one"},
		{`clients: [{name: front, password: front-secret, roles: [root]}]`, `clients[0].roles: "root" is not admin or tenant`},
		{`clients: [{name: Front, password: front-secret, roles: [admin]}]`, "clients[0].name"},
		{`clients: [{name: front, password: front-secret, roles: [admin], tenants: ["["]}]`, "clients[0].tenants"},
		{minimal + `tenants: [{name: t1, portals: {labelSelector: {matchExpressions: [{key: k, operator: Near}]}}}]`,
			`tenants[0].portals: labelSelector.matchExpressions: operator "Near"`},
		{minimal + `clusters: [{name: c, portals: [{name: p, url: "ftp://x", credentials: {clientId: a, clientSecret: b}}]}]`,
			"clusters[0].portals[0].url"},
		{minimal + `clusters: [{name: c, portals: [{name: p, url: "http://x", credentials: {clientId: a}}]}]`,
			"clusters[0].portals[0].credentials: clientId and clientSecret"},
		{minimal + `clusters: [{name: c, portals: [{name: p, url: "http://x", credentials: {clientId: a, clientSecret: b, username: u}}]}]`,
			"clusters[0].portals[0].credentials.password"},
		{minimal + `clusters: [{name: c}, {name: c}]`, `clusters[1].name: "c" is already a cluster`},
		{minimal + `colour: blue`, "field colour not found"},
		{`clients: [{name: front, password: {env: LOOKUP_TEST_UNSET_VARIABLE}, roles: [admin]}]`, "$LOOKUP_TEST_UNSET_VARIABLE is not set"},
		{`clients: [{name: front, password: {}, roles: [admin]}]`, "needs file or env"},
		{`clients: [{name: front, password: {env: A, file: B}, roles: [admin]}]`, "not several"},
	} {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.yaml, err, c.want)
		}
	}
}

// Secrets may stay out of the file: in a file of their own or in the
// environment.
func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-a-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOKUP_TEST_SECRET", "from-the-environment")
	cfg, err := ParseConfig([]byte(`
clients:
- {name: front, password: {file: ` + file + `}, roles: [tenant]}
clusters:
- name: c
  portals:
  - {name: p, url: "http://x", credentials: {clientId: a, clientSecret: {env: LOOKUP_TEST_SECRET}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clients[0].Password.Value; got != "from-a-file-secret" {
		t.Errorf("password from the file: %q", got)
	}
	if got := cfg.Clusters[0].Portals[0].Credentials.ClientSecret.Value; got != "from-the-environment" {
		t.Errorf("client secret from the environment: %q", got)
	}
}

func TestSelector(t *testing.T) {
	var s Selector
	s.NameSelector.MatchNames = []string{"cluster-*"}
	s.LabelSelector.MatchLabels = map[string]string{"customer": "c1"}
	s.LabelSelector.MatchExpressions = []Requirement{{Key: "env", Operator: "In", Values: []string{"prod", "staging"}},
		{Key: "retired", Operator: "DoesNotExist"}}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"cluster-1", map[string]string{"customer": "c1", "env": "prod"}, true},
		{"other", map[string]string{"customer": "c1", "env": "prod"}, false},
		{"cluster-1", map[string]string{"customer": "c2", "env": "prod"}, false},
		{"cluster-1", map[string]string{"customer": "c1", "env": "dev"}, false},
		{"cluster-1", map[string]string{"customer": "c1", "env": "prod", "retired": ""}, false},
		{"cluster-1", map[string]string{"customer": "c1"}, false},
	} {
		if got := s.matches(c.name, c.labels); got != c.want {
			t.Errorf("%s %v: %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if !(&Selector{}).matches("anything", nil) {
		t.Error("an empty selector selects everything")
	}
}

// The ranking of Educates' sort_workshop_environments.
func TestRank(t *testing.T) {
	p := func(capacity, allocated int) *portalState {
		return &portalState{portal: &portal{name: "p"}, state: &PortalState{Capacity: capacity, Allocated: allocated}}
	}
	e := func(name string, capacity, allocated, available int) EnvironmentState {
		return EnvironmentState{Name: name, Capacity: capacity, Allocated: allocated, Available: available}
	}
	got := rank([]candidate{
		{p(10, 10), e("portal-full", 5, 0, 3)},
		{p(0, 0), e("env-full", 2, 2, 0)},
		{p(0, 0), e("unlimited", 0, 0, 0)},
		{p(10, 2), e("reserve", 5, 1, 2)},
		{p(10, 2), e("room", 5, 1, 0)},
		{p(20, 2), e("bigger-portal", 5, 4, 0)},
	})
	var names []string
	for _, c := range got {
		names = append(names, c.env.Name)
	}
	want := "bigger-portal reserve room unlimited env-full portal-full"
	if strings.Join(names, " ") != want {
		t.Errorf("rank: %v, want %s", names, want)
	}
}
