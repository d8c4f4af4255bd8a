package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadBundledExample(t *testing.T) {
	defs, err := Load(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	if len(defs.Warnings) != 0 {
		t.Errorf("warnings: %q", defs.Warnings)
	}
	p := defs.Portal
	wantPortal := Portal{
		Name:              "portico",
		File:              filepath.Join("..", "..", "examples", "portal.yaml"),
		Title:             "Portico Workshops",
		Labels:            map[string]string{},
		DefaultLabels:     map[string]string{},
		Registration:      Registration{Type: "one-step", Enabled: true},
		CatalogVisibility: "private",
		Admin:             Credentials{Username: "educates"},
		Robot:             Credentials{Username: "robot@educates"},
		Entries: []Entry{{
			Name:     "lab-hello-terminal",
			Position: 1,
			Capacity: 10,
			Reserved: 2,
			Initial:  2,
			Expires:  60 * time.Minute,
			Overtime: 15 * time.Minute,
			Deadline: 120 * time.Minute,
			Orphaned: 15 * time.Minute,
			Env:      []EnvVar{},
			Labels:   map[string]string{},
		}},
	}
	if !reflect.DeepEqual(p, wantPortal) {
		t.Errorf("portal:\n got %+v\nwant %+v", p, wantPortal)
	}

	w := defs.Workshops["lab-hello-terminal"]
	if w == nil {
		t.Fatalf("workshop lab-hello-terminal not loaded; have %v", slices.Collect(mapsKeys(defs.Workshops)))
	}
	dir, _ := filepath.Abs(filepath.Join("..", "..", "examples", "lab-hello-terminal"))
	if w.Dir != dir || w.File != filepath.Join("..", "..", "examples", "lab-hello-terminal", "workshop.yaml") {
		t.Errorf("Dir, File = %q, %q", w.Dir, w.File)
	}
	if w.Title != "Hello, terminal" || w.Difficulty != "beginner" || w.Duration != "15m" || w.Description == "" {
		t.Errorf("workshop = %+v", w)
	}
	wantParams := []Parameter{
		{Name: "GREETING", Value: "Hello"},
		{Name: "LUCKY_NUMBER", Generate: "expression", From: "[1-9][0-9]{2}"},
	}
	if !reflect.DeepEqual(w.Parameters, wantParams) {
		t.Errorf("parameters = %+v", w.Parameters)
	}
	if !reflect.DeepEqual(w.SessionEnv, []EnvVar{{Name: "EDITOR", Value: "nano"}}) {
		t.Errorf("session env = %+v", w.SessionEnv)
	}
	wantFiles := []map[string]any{{
		"directory":    map[string]any{"path": "."},
		"includePaths": []any{"/workshop/**", "/exercises/**"},
	}}
	if !reflect.DeepEqual(w.Files, wantFiles) {
		t.Errorf("files = %#v", w.Files)
	}
	if len(w.Fingerprint) != 64 {
		t.Errorf("fingerprint = %q", w.Fingerprint)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"portal.yaml": strings.TrimSuffix(portalDoc(`
workshops:
- name: lab-a
- name: lab-b
`), workshopsAB),
		"workshops/a/workshop.yaml": strings.Split(workshopsAB, "---")[1],
		"workshops/b/workshop.yml":  strings.Split(workshopsAB, "---")[2],
		".git/broken.yaml":          "{{{ not yaml",
		"notes.txt":                 "not read",
	})
	defs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(defs.Portal.Entries); got != 2 {
		t.Fatalf("%d entries", got)
	}
	for name, sub := range map[string]string{"lab-a": "workshops/a", "lab-b": "workshops/b"} {
		w := defs.Workshops[name]
		if w == nil {
			t.Fatalf("%s not loaded", name)
		}
		if want := filepath.Join(dir, filepath.FromSlash(sub)); w.Dir != want {
			t.Errorf("%s: Dir = %q, want %q", name, w.Dir, want)
		}
	}
}

func TestLoadMultiDocument(t *testing.T) {
	defs, err := loadString(t, "---\n"+portalDoc(`
portal:
  title: Many
workshops:
- name: lab-b
- name: lab-a
`)+"---\n---\n")
	if err != nil {
		t.Fatal(err)
	}
	if defs.Portal.Title != "Many" || len(defs.Workshops) != 2 {
		t.Fatalf("got %+v", defs)
	}
	var names []string
	for _, e := range defs.Portal.Entries {
		names = append(names, e.Key())
	}
	if !slices.Equal(names, []string{"lab-b", "lab-a"}) {
		t.Errorf("entries %v, want definition order", names)
	}
}

func TestLoadPortalDefaults(t *testing.T) {
	defs, err := loadString(t, portalDoc(`
portal:
  sessions:
    registered: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	p := defs.Portal
	if p.Title != "Workshops" || p.Registration != (Registration{Type: "one-step", Enabled: true}) ||
		p.CatalogVisibility != "private" || p.Admin != (Credentials{Username: "educates"}) ||
		p.Robot != (Credentials{Username: "robot@educates"}) || p.RobotClient != (Client{}) {
		t.Errorf("defaults not applied: %+v", p)
	}
	if p.Sessions != (SessionLimits{Registered: 2, Anonymous: 2}) {
		t.Errorf("sessions = %+v, want anonymous to default to registered", p.Sessions)
	}
}

func TestLoadPortalSettings(t *testing.T) {
	defs, err := loadString(t, portalDoc(`
portal:
  title: Event
  password: open-sesame
  index: https://example.com/
  labels:
  - {name: event, value: kubecon}
  registration: {type: anonymous, enabled: false}
  catalog: {visibility: public}
  sessions: {maximum: 30, registered: 2, anonymous: 0}
  credentials:
    admin: {username: root, password: s3cret}
    robot: {username: bot, password: b0t}
  clients:
    robot: {id: client-id, secret: client-secret}
  updates: {workshop: true}
  workshop:
    defaults:
      labels: [{name: team, value: blue}]
  theme:
    frame:
      ancestors: [https://a.example.com, https://b.example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := defs.Portal
	p.Entries, p.File = nil, ""
	want := Portal{
		Name:              "test",
		Title:             "Event",
		Password:          "open-sesame",
		Index:             "https://example.com/",
		Labels:            map[string]string{"event": "kubecon"},
		DefaultLabels:     map[string]string{"team": "blue"},
		Registration:      Registration{Type: "anonymous", Enabled: false},
		CatalogVisibility: "public",
		Sessions:          SessionLimits{Maximum: 30, Registered: 2, Anonymous: 0},
		Admin:             Credentials{Username: "root", Password: "s3cret"},
		Robot:             Credentials{Username: "bot", Password: "b0t"},
		RobotClient:       Client{ID: "client-id", Secret: "client-secret"},
		UpdateWorkshop:    true,
		FrameAncestors:    []string{"https://a.example.com", "https://b.example.com"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("\n got %+v\nwant %+v", p, want)
	}
}

func TestLoadMergeKeys(t *testing.T) {
	defs, err := loadString(t, portalDoc(`
workshops:
- &base {name: lab-a, capacity: 3, expires: 10m}
- <<: *base
  alias: lab-a2
  capacity: 4
`))
	if err != nil {
		t.Fatal(err)
	}
	e := defs.Portal.Entries[1]
	if e.Name != "lab-a" || e.Alias != "lab-a2" || e.Capacity != 4 || e.Expires != 10*time.Minute {
		t.Errorf("merged entry = %+v", e)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"malformed YAML", "kind: [TrainingPortal\n", []string{"portal.yaml: invalid YAML: line"}},
		{"tab indentation", "kind: Workshop\nspec:\n\ttitle: x\n", []string{"portal.yaml: invalid YAML"}},
		{"no portal", strings.TrimPrefix(workshopsAB, "\n---\n"), []string{"no TrainingPortal found"}},
		{"bad duration", portalDoc(`
workshops:
- name: lab-a
- name: lab-b
  expires: ten minutes
`), []string{`portal.yaml:9: spec.workshops[1].expires: "ten minutes" is not a duration (use 30, 30s, 10m or 2h)`}},
		{"duration list", portalDoc(`
portal:
  workshop:
    defaults:
      orphaned: [1]
`), []string{`spec.portal.workshop.defaults.orphaned: expected a duration, found a list`}},
		{"float duration", portalDoc("workshops:\n- {name: lab-a, overdue: 1.5}\n"),
			[]string{`spec.workshops[0].overdue: "1.5" is not a duration`}},
		{"huge duration", portalDoc("workshops:\n- {name: lab-a, expires: 99999999999999h}\n"),
			[]string{`spec.workshops[0].expires: "99999999999999h" is too long`}},
		{"capacity not a number", portalDoc("workshops:\n- {name: lab-a, capacity: ten}\n"),
			[]string{`portal.yaml:7: spec.workshops[0].capacity: "ten" is not an integer`}},
		{"negative capacity", portalDoc("workshops:\n- {name: lab-a, capacity: -1}\n"),
			[]string{`spec.workshops[0].capacity: must not be negative`}},
		{"negative maximum", portalDoc("portal:\n  sessions:\n    maximum: -3\n"),
			[]string{`spec.portal.sessions.maximum: must not be negative`}},
		{"huge integer", portalDoc("portal:\n  capacity: 99999999999999999999999\n"),
			[]string{`spec.portal.capacity: "99999999999999999999999" is not an integer`}},
		{"registration type", portalDoc("portal:\n  registration:\n    type: two-step\n"),
			[]string{`portal.yaml:8: spec.portal.registration.type: "two-step" is not one of ["one-step" "anonymous"]`}},
		{"registration enabled", portalDoc("portal:\n  registration:\n    enabled: sure\n"),
			[]string{`spec.portal.registration.enabled: "sure" is not true or false`}},
		{"catalog visibility", portalDoc("portal:\n  catalog:\n    visibility: secret\n"),
			[]string{`spec.portal.catalog.visibility: "secret" is not one of`}},
		{"portal not a mapping", portalDoc("portal: hello\n"),
			[]string{`spec.portal: expected a mapping, found "hello"`}},
		{"workshops not a list", portalDoc("workshops:\n  name: lab-a\n"),
			[]string{`spec.workshops: expected a list, found a mapping`}},
		{"title not a string", portalDoc("portal:\n  title: {a: b}\n"),
			[]string{`spec.portal.title: expected a string, found a mapping`}},
		{"missing entry name", portalDoc("workshops:\n- capacity: 1\n"),
			[]string{`spec.workshops[0].name: required`}},
		{"missing workshop", portalDoc("workshops:\n- name: lab-a\n- name: lab-x\n"),
			[]string{`portal.yaml:8: spec.workshops[1].name: no Workshop named "lab-x"`}},
		{"duplicate entry", portalDoc("workshops:\n- name: lab-a\n- name: lab-b\n- name: lab-a\n"),
			[]string{`spec.workshops[2]: "lab-a" is already the name of spec.workshops[0]`}},
		{"alias clashes with name", portalDoc("workshops:\n- name: lab-a\n- {name: lab-b, alias: lab-a}\n"),
			[]string{`spec.workshops[1]: "lab-a" is already the name of spec.workshops[0]`}},
		{"env without name", portalDoc("workshops:\n- name: lab-a\n  env:\n  - value: x\n"),
			[]string{`spec.workshops[0].env[0].name: required`}},
		{"default label without name", portalDoc("portal:\n  workshop:\n    defaults:\n      labels: [{value: x}]\n"),
			[]string{`spec.portal.workshop.defaults.labels[0].name: required`}},
		{"key defined twice", portalDoc("portal:\n  title: a\n  title: b\n"),
			[]string{`portal.yaml:8: spec.portal.title: defined twice (first on line 7)`}},
		{"non-string key", portalDoc("portal:\n  [a]: b\n"),
			[]string{`spec.portal: mapping keys must be strings`}},
		{"alias cycle", portalDoc("portal: &p\n  <<: *p\n"),
			[]string{`spec.portal: alias *p refers to a value that contains it`}},
		{"merge of a scalar", portalDoc("portal:\n  <<: 3\n"),
			[]string{`spec.portal: expected a mapping or a list of mappings to merge, found "3"`}},
		{"missing name", "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nspec: {}\n",
			[]string{`portal.yaml:1: metadata.name: required`}},
		{"bad name", "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata: {name: My_Portal}\n",
			[]string{`portal.yaml:3: metadata.name: "My_Portal" is not a valid name`}},
		{"long name", "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata: {name: " + strings.Repeat("a", 64) + "}\n",
			[]string{`metadata.name: "aaaa`, `is longer than 63 characters`}},
		{"bad generation", "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata: {name: p, generation: x}\n",
			[]string{`metadata.generation: "x" is not an integer`}},
		{"two portals", portalDoc("{}") + "---\napiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata: {name: other}\n",
			[]string{`a second TrainingPortal, other; only one is allowed (the first is test in`}},
		{"duplicate workshop", portalDoc("{}") + strings.TrimPrefix(workshopsAB, "\n"),
			[]string{`metadata.name: Workshop lab-a is already defined in`}},
		{"several errors reported", portalDoc("portal:\n  title: [x]\nworkshops:\n- {name: lab-a, capacity: x}\n"),
			[]string{`spec.portal.title: expected a string`, `spec.workshops[0].capacity: "x" is not an integer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadString(t, tt.content)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), "portal.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadWorkshopErrors(t *testing.T) {
	workshop := func(params string) string {
		return portalDoc("{}") + "---\napiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata:\n  name: lab-p\nspec:\n  request:\n    parameters:\n" + indent(params, "    ")
	}
	tests := []struct {
		name   string
		params string
		want   string
	}{
		{"no name", "- value: x\n", `spec.request.parameters[0].name: required`},
		{"duplicate name", "- name: A\n- name: A\n", `spec.request.parameters[1].name: "A" is already the name of spec.request.parameters[0]`},
		{"unknown generator", "- {name: A, generate: random}\n", `spec.request.parameters[0].generate: "random" is not supported (use "expression")`},
		{"no pattern", "- {name: A, generate: expression}\n", `spec.request.parameters[0].from: required when generate is "expression"`},
		{"bad pattern", "- {name: A, generate: expression, from: '[a-'}\n", `spec.request.parameters[0].from: "[a-" is not a valid pattern: missing closing ]`},
		{"unsupported pattern", "- {name: A, generate: expression, from: '(?=a)'}\n", `spec.request.parameters[0].from: "(?=a)" is not a valid pattern`},
		{"huge pattern", "- {name: A, generate: expression, from: 'x{1000}y{1000}'}\n", `can generate values longer than 1024 characters`},
		{"empty class", "- {name: A, generate: expression, from: 'a[^\\x00-\\x{10FFFF}]'}\n", `has a part that matches no character`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadString(t, workshop(tt.params))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadFieldErrorType(t *testing.T) {
	_, err := loadString(t, portalDoc("workshops:\n- {name: lab-a, refresh: soon}\n"))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%v is not a *FieldError", err)
	}
	if fe.Line != 7 || fe.Path != "spec.workshops[0].refresh" || !strings.HasSuffix(fe.File, "portal.yaml") {
		t.Errorf("got %+v", fe)
	}
}

func TestLoadMissingPath(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("no error for a missing file")
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .yaml or .yml files") {
		t.Errorf("empty directory: %v", err)
	}
}

func TestUnknownFieldWarnings(t *testing.T) {
	content := portalDoc(`
portal:
  ingress:
    hostname: portal.example.com
  theme:
    name: dark
    frame:
      ancestors: [https://example.com]
workshops:
- name: lab-a
  registry: {host: r.example.com}
- name: lab-b
  registry: {host: r.example.com}
`) + `---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-x
  namespace: default
  labels:
    anything.example.com/goes: "here"
  annotations:
    note: also opaque
spec:
  title: X
  session:
    resources:
      memory: 1Gi
      storage: 5Gi
    network:
      outbound: false
    applications:
      console: {enabled: true}
    namespaces:
      budget: small
    env:
    - name: TOKEN
      valueFrom:
        secretKeyRef: {name: s, key: k}
  workshop:
    image: jdk17-environment:*
    files:
    - image:
        url: ghcr.io/x/y-files:latest
      includePaths: ["/workshop/**"]
  environment:
    objects: []
status:
  phase: Ready
`
	defs, err := loadString(t, content)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"portal.yaml: TrainingPortal test: fields not used by Portico: spec.portal.ingress, spec.portal.theme.name, spec.workshops[].registry",
		"portal.yaml: Workshop lab-x: fields not used by Portico: metadata.namespace, spec.session.applications.console, status",
	}
	if len(defs.Warnings) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(defs.Warnings, "\n"))
	}
	for i := range want {
		if !strings.HasSuffix(defs.Warnings[i], want[i]) {
			t.Errorf("warning %d:\n got %s\nwant …%s", i, defs.Warnings[i], want[i])
		}
	}
	if got := defs.Workshops["lab-x"].SessionEnv; !reflect.DeepEqual(got, []EnvVar{{Name: "TOKEN"}}) {
		t.Errorf("session env = %+v", got)
	}
	if got := defs.Workshops["lab-x"].Resources; got != (Resources{Memory: 1 << 30, Storage: 5 << 30}) {
		t.Errorf("resources = %+v", got)
	}
	if !defs.Workshops["lab-x"].Offline {
		t.Error("spec.session.network.outbound: false does not make the workshop offline")
	}
}

func TestLoadSkipsOtherDocuments(t *testing.T) {
	content := portalDoc("{}") + `---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: example.com/v1
kind: Workshop
metadata: {name: other}
---
- just a list
---
apiVersion: training.eduk8s.io/v1alpha2
kind: Workshop
metadata: {name: legacy}
`
	defs, err := loadString(t, content)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kind ConfigMap is neither TrainingPortal nor Workshop; skipped",
		`Workshop of apiVersion "example.com/v1" is not an Educates resource`,
		"is not a resource (expected a mapping); skipped",
	}
	if len(defs.Warnings) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(defs.Warnings, "\n"))
	}
	for i := range want {
		if !strings.Contains(defs.Warnings[i], want[i]) || !strings.Contains(defs.Warnings[i], "portal.yaml:") {
			t.Errorf("warning %q does not name the file and contain %q", defs.Warnings[i], want[i])
		}
	}
	if _, ok := defs.Workshops["legacy"]; !ok {
		t.Error("training.eduk8s.io Workshop not loaded")
	}
	if _, ok := defs.Workshops["other"]; ok {
		t.Error("Workshop of another API group loaded")
	}
}

func TestFingerprint(t *testing.T) {
	load := func(workshop string) string {
		t.Helper()
		defs, err := loadString(t, portalDoc("{}")+"---\n"+workshop)
		if err != nil {
			t.Fatal(err)
		}
		return defs.Workshops["lab-f"].Fingerprint
	}
	base := load("apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-f}\nspec: {title: F, tags: [a, b], session: {resources: {memory: 1Gi}}}\n")
	tests := []struct {
		name     string
		workshop string
		same     bool
	}{
		{"reformatted, keys reordered", "kind: Workshop\napiVersion: training.educates.dev/v1beta1\nmetadata:\n  name: lab-f\nspec:\n  session:\n    resources: {memory: 1Gi}\n  tags:\n  - a\n  - b\n  title: F # comment\n", true},
		{"metadata changed", "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-f, generation: 7}\nspec: {title: F, tags: [a, b], session: {resources: {memory: 1Gi}}}\n", true},
		{"used field changed", "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-f}\nspec: {title: G, tags: [a, b], session: {resources: {memory: 1Gi}}}\n", false},
		{"unused field changed", "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-f}\nspec: {title: F, tags: [a, b], session: {resources: {memory: 2Gi}}}\n", false},
		{"list order changed", "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-f}\nspec: {title: F, tags: [b, a], session: {resources: {memory: 1Gi}}}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := load(tt.workshop); (got == base) != tt.same {
				t.Errorf("fingerprint %s vs %s: same = %v, want %v", got, base, got == base, tt.same)
			}
		})
	}
}

func TestFingerprintOddValues(t *testing.T) {
	// Non-string keys and non-finite numbers, which encoding/json refuses.
	_, err := loadString(t, portalDoc("{}")+"---\napiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-o}\nspec:\n  extra: {1: one, true: yes, x: .nan, y: -.inf}\n")
	if err != nil {
		t.Fatal(err)
	}
}

// A file that cannot be parsed may hold what seems missing: its error comes
// alone, not with consequences such as a missing portal or workshop.
func TestLoadUnreadableFileErrorComesAlone(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"portal.yaml":   strings.TrimSuffix(portalDoc("workshops: [{name: lab-a}]"), workshopsAB),
		"workshop.yaml": "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata: {name: lab-a\n",
	})
	_, err := Load(dir)
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "workshop.yaml: invalid YAML") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want the YAML error only", msg)
	}
}

// A misspelled field is named with the field it is likely a slip of; Unused
// lists it, with its line, for a strict portal to refuse. Before, the
// warning did not say what was meant and nothing could refuse it.
func TestMisspelledFieldSuggestsTheField(t *testing.T) {
	defs, err := loadString(t, portalDoc("portal:\n  ttile: Lab\nworkshops:\n- {name: lab-a, capacty: 3}\n- {name: lab-b, capacty: 3, namespace: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "fields not used by Portico: spec.portal.ttile (did you mean title?), spec.workshops[].capacty (did you mean capacity?), spec.workshops[].namespace"
	if len(defs.Warnings) != 1 || !strings.HasSuffix(defs.Warnings[0], want) {
		t.Errorf("warnings %q, want one ending %q", defs.Warnings, want)
	}
	var got []string
	for _, e := range defs.Unused {
		got = append(got, strings.TrimPrefix(e.Error(), filepath.Dir(defs.Portal.File)+string(filepath.Separator)))
	}
	wantUnused := []string{
		"portal.yaml:7: spec.portal.ttile: not a field Portico uses; did you mean title?",
		"portal.yaml:9: spec.workshops[0].capacty: not a field Portico uses; did you mean capacity?",
		"portal.yaml:10: spec.workshops[1].capacty: not a field Portico uses; did you mean capacity?",
		"portal.yaml:10: spec.workshops[1].namespace: not a field Portico uses",
	}
	if !reflect.DeepEqual(got, wantUnused) {
		t.Errorf("unused:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantUnused, "\n"))
	}
	// When the misspelling makes the definition invalid, the error names
	// it too: capacty leaves the capacity 0, below the reserve.
	_, err = loadString(t, portalDoc("workshops:\n- {name: lab-a, capacty: 3, reserved: 2, namespace: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "reserved: 2 is more than the capacity, 0") ||
		!strings.Contains(err.Error(), "spec.workshops[0].capacty: not a field Portico uses; did you mean capacity?") ||
		strings.Contains(err.Error(), "namespace") {
		t.Errorf("error %v, want the reserve and the misspelling named, and no other unused field", err)
	}
	if clean, err := loadString(t, portalDoc("workshops:\n- {name: lab-a, capacity: 3}\n")); err != nil || len(clean.Unused) != 0 {
		t.Errorf("known fields: unused %v, err %v", clean.Unused, err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"capacity", "capacity", 0}, {"capacty", "capacity", 1}, {"capaciity", "capacity", 1},
		{"capacitx", "capacity", 1}, {"ttile", "title", 1}, {"expries", "expires", 1},
		{"", "abc", 3}, {"reserved", "expires", 6}, {"ingress", "image", 5},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// The bundled example keeps its TrainingPortal and its Workshop in files
// side by side: loading the first alone says to pass the directory.
func TestMissingWorkshopHintsAtTheDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"portal.yaml":   strings.SplitN(portalDoc("workshops:\n- name: lab-x\n"), "\n---\n", 2)[0],
		"lab-x/ws.yaml": "apiVersion: training.educates.dev/v1beta1\nkind: Workshop\nmetadata:\n  name: lab-x\nspec:\n  title: X\n",
	})
	_, err := Load(filepath.Join(dir, "portal.yaml"))
	if err == nil || !strings.Contains(err.Error(), `no Workshop named "lab-x"`) || !strings.Contains(err.Error(), "pass its directory, "+dir) {
		t.Fatalf("error %v, want one that says to pass %s", err, dir)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("the directory: %v", err)
	}
	// Alone in its directory, the file gets no hint: there is nothing beside it.
	alone := writeFiles(t, map[string]string{"portal.yaml": strings.SplitN(portalDoc("workshops:\n- name: lab-x\n"), "\n---\n", 2)[0]})
	if _, err := Load(filepath.Join(alone, "portal.yaml")); err == nil || strings.Contains(err.Error(), "pass its directory") {
		t.Errorf("file alone: error %v, want no hint", err)
	}
}
