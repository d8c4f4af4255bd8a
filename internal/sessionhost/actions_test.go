package sessionhost

import (
	"encoding/json"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// renderedAction is an action element as the dashboard's scripts see it.
type renderedAction struct {
	Name                       string
	Args                       map[string]any
	Autostart, Cascade, Hidden bool
	Banner, Body               string
}

var (
	actionTag  = regexp.MustCompile(`(?s)<div class="action action-[a-z]+"([^>]*)><div class="action-banner">(.*?)</div>(?:<pre class="action-body"><code>(.*?)</code></pre>)?`)
	attrOf     = regexp.MustCompile(`([a-z-]+)(?:="([^"]*)")?`)
	tagsInside = regexp.MustCompile(`<[^>]+>`)
)

// actionsOf returns the actions of a rendered page, in order.
func actionsOf(t *testing.T, page string) []renderedAction {
	t.Helper()
	var out []renderedAction
	for _, m := range actionTag.FindAllStringSubmatch(page, -1) {
		a := renderedAction{Banner: html.UnescapeString(tagsInside.ReplaceAllString(m[2], "")),
			Body: html.UnescapeString(m[3])}
		for _, attr := range attrOf.FindAllStringSubmatch(m[1], -1) {
			value := html.UnescapeString(attr[2])
			switch attr[1] {
			case "data-action":
				a.Name = value
			case "data-args":
				if err := json.Unmarshal([]byte(value), &a.Args); err != nil {
					t.Fatalf("data-args %q: %v", value, err)
				}
			case "data-autostart":
				a.Autostart = true
			case "data-cascade":
				a.Cascade = true
			case "hidden":
				a.Hidden = true
			}
		}
		out = append(out, a)
	}
	return out
}

func render(t *testing.T, vars map[string]string, lines ...string) string {
	t.Helper()
	out, err := renderMarkdown([]byte(strings.Join(lines, "\n")), vars, pageContext{base: "/p/"})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestTerminalAndCopyActions(t *testing.T) {
	vars := map[string]string{"session_name": "s1", "CMD": "ls -l"}
	s := render(t, vars,
		"```execute", "echo \"{{ session_name }}\" && cat <file>", "```",
		"```execute-2", "top", "```",
		"```execute-all", "clear", "```",
		"```execute", "<ctrl+c>", "```",
		"```terminal:execute", "command: {{< param CMD >}}", "session: 3", "clear: true", "```",
		"```terminal:execute", "command: |", "  pwd", "  whoami", "```",
		"```copy", "secret {{ session_name }}", "```",
		"```copy-and-edit", "edit me", "```",
		"```terminal:interrupt", "session: 2", "```",
		"```terminal:clear-all", "```",
		"```terminal:input", "text: y", "endl: false", "```",
		"```workshop:copy", "text: abc", "```",
		"```shell", "not clickable", "```",
		"```terminal:execute", "command: [unclosed", "```",
		"```terminal:execute", "command: x", "session: ../../x", "```",
		"```terminal:teleport", "```",
		"```terminal:execute", "- a list", "```",
	)
	type want struct {
		name string
		args map[string]any
		body string
	}
	wants := []want{
		{"terminal:execute", map[string]any{"command": `echo "s1" && cat <file>`, "session": "1"}, `echo "s1" && cat <file>`},
		{"terminal:execute", map[string]any{"command": "top", "session": "2"}, "top"},
		{"terminal:execute-all", map[string]any{"command": "clear"}, "clear"},
		{"terminal:interrupt", map[string]any{"session": "1"}, "<ctrl+c>"},
		{"terminal:execute", map[string]any{"command": "ls -l", "session": "3", "clear": true}, "ls -l"},
		{"terminal:execute", map[string]any{"command": "pwd\nwhoami\n"}, "pwd\nwhoami\n"},
		{"workshop:copy", map[string]any{"text": "secret s1"}, "secret s1"},
		{"workshop:copy-and-edit", map[string]any{"text": "edit me"}, "edit me"},
		{"terminal:interrupt", map[string]any{"session": "2"}, "<ctrl+c>"},
		{"terminal:clear-all", map[string]any{}, ""},
		{"terminal:input", map[string]any{"text": "y", "endl": false}, "y"},
		{"workshop:copy", map[string]any{"text": "abc"}, "abc"},
	}
	got := actionsOf(t, s)
	if len(got) != len(wants) {
		t.Fatalf("%d actions, want %d:\n%s", len(got), len(wants), s)
	}
	for i, w := range wants {
		g := got[i]
		if g.Name != w.name || !jsonEqual(g.Args, w.args) || g.Body != w.body {
			t.Errorf("action %d: %s %v %q, want %s %v %q", i+1, g.Name, g.Args, g.Body, w.name, w.args, w.body)
		}
	}
	for _, want := range []string{
		`Execute command in terminal &#34;2&#34;`, `Execute command in all terminals`,
		`<code class="language-shell">not clickable`,
		`class="action-error"`, `invalid YAML in ` + "```terminal:execute",
		`invalid terminal session &#34;../../x&#34;`,
		"```terminal:teleport is not an action Portico knows",
		"the body of a ```terminal:execute block is a YAML mapping of its fields",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %s in\n%s", want, s)
		}
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestEveryDocumentedAction renders each action Educates documents, with
// the fields of its documented example, as an action of that name whose
// arguments are the fields.
func TestEveryDocumentedAction(t *testing.T) {
	examples := map[string]string{
		"terminal:execute":                "command: echo hi\nsession: 2",
		"terminal:execute-all":            "command: echo hi",
		"terminal:input":                  "text: password\nsession: 1\nendl: false",
		"terminal:clear":                  "session: 1",
		"terminal:clear-all":              "",
		"terminal:interrupt":              "session: 1",
		"terminal:interrupt-all":          "",
		"workshop:copy":                   "text: echo hi",
		"workshop:copy-and-edit":          "text: echo hi",
		"dashboard:open-url":              "url: https://www.example.com/",
		"dashboard:open-dashboard":        "name: Terminal",
		"dashboard:create-dashboard":      "name: Example\nurl: terminal:example",
		"dashboard:reload-dashboard":      "name: Example\nurl: https://www.example.com/\nfocus: false",
		"dashboard:delete-dashboard":      "name: Example",
		"dashboard:expose-terminal":       "session: 1",
		"editor:open-file":                "file: ~/exercises/sample.txt\nline: 1",
		"editor:select-matching-text":     "file: ~/exercises/sample.txt\ntext: \"image: (.*)\"\nisRegex: true\ngroup: 1\nstart: 8\nstop: 12",
		"editor:replace-text-selection":   "file: ~/exercises/sample.txt\ntext: nginx:latest",
		"editor:append-lines-to-file":     "file: ~/exercises/sample.txt\ntext: |\n  Lorem ipsum\n",
		"editor:insert-lines-before-line": "file: ~/exercises/sample.txt\nline: 8\ntext: |\n  Lorem ipsum\n",
		"editor:append-lines-after-match": "file: ~/exercises/sample.txt\nmatch: Lorem ipsum\ntext: |\n  dolor\n",
		"editor:insert-value-into-yaml":   "file: ~/exercises/deployment.yaml\npath: spec.template.spec.containers\nvalue:\n- name: nginx\n  image: nginx:latest",
		"editor:execute-command":          "command: spring.initializr.maven-project\nargs:\n- language: Java",
		"files:download-file":             "path: .kube/config\ndownload: kubeconfig-x\npreview: true",
		"files:copy-file":                 "path: .kube/config\npreview: true",
		"files:upload-file":               "path: kubeconfig.yaml",
		"files:upload-files":              "",
		"examiner:execute-test":           "name: test-that-pod-exists\nargs:\n- one\ntimeout: 5\nretries: .INF\ndelay: 1",
		"section:heading":                 "title: Questions",
	}
	for name := range actionKinds {
		if name == "section:begin" || name == "section:end" {
			continue
		}
		body, ok := examples[name]
		if !ok {
			t.Errorf("no example of %s", name)
			continue
		}
		got := actionsOf(t, render(t, nil, "```"+name, body, "```"))
		if len(got) != 1 || got[0].Name != name {
			t.Errorf("%s: rendered %+v", name, got)
			continue
		}
		if got[0].Banner == "" {
			t.Errorf("%s: no banner", name)
		}
		for _, line := range strings.Split(body, "\n") {
			key, _, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(key, " ") && !strings.HasPrefix(key, "-") && key != "title" {
				if _, has := got[0].Args[key]; !has {
					t.Errorf("%s: no %s in %v", name, key, got[0].Args)
				}
			}
		}
	}
	// .INF, which JSON cannot hold, reaches the scripts as a name Number() reads.
	got := actionsOf(t, render(t, nil, "```examiner:execute-test", "name: t", "retries: .INF", "```"))
	if got[0].Args["retries"] != "Infinity" {
		t.Errorf("retries: .INF became %#v", got[0].Args["retries"])
	}
}

func TestActionPresentation(t *testing.T) {
	s := render(t, map[string]string{"session_name": "s1"},
		"```editor:open-file", "file: ~/{{ session_name }}.txt", "prefix: Step", "title: Open <it>", "description: |", "  Look at it", "autostart: true", "cascade: true", "hidden: true", "event: {name: opened}", "```",
		"```dashboard:open-url", "url: https://example.com/{{< param session_name >}}", "```",
	)
	got := actionsOf(t, s)
	if len(got) != 2 {
		t.Fatalf("%d actions:\n%s", len(got), s)
	}
	a := got[0]
	if a.Banner != "Step: Open <it>" || a.Body != "Look at it\n" || !a.Autostart || !a.Cascade || !a.Hidden ||
		!jsonEqual(a.Args, map[string]any{"file": "~/s1.txt"}) {
		t.Errorf("first: %+v", a)
	}
	if !strings.Contains(s, `data-event="{&#34;name&#34;:&#34;opened&#34;}"`) || strings.Contains(s, "<it>") {
		t.Errorf("event or escaping:\n%s", s)
	}
	if b := got[1]; b.Banner != "Dashboard: Open URL in browser" || b.Body != "https://example.com/s1" || b.Args["url"] != "https://example.com/s1" {
		t.Errorf("second: %+v", b)
	}
}

func TestSections(t *testing.T) {
	s := render(t, nil,
		"Before.",
		"```section:begin", "name: questions", "title: Questions", "```",
		"Question text.",
		"```section:begin", "name: q1", "prefix: Question", "title: 1", "```",
		"```examiner:execute-test", "name: t1", "autostart: true", "```",
		"```section:end", "name: q1", "```",
		"Between.",
		"```section:end", "name: questions", "```",
		"After.",
		"```section:begin", "hidden: true", "```",
		"Revealed later.",
		"```section:end", "```",
	)
	nested := regexp.MustCompile(`(?s)data-action="section:begin".*?</div></div>\s*<div class="action-section-content" hidden>\s*<p>Question text.</p>\s*<div class="action action-section".*?<div class="action-section-content" hidden>\s*<div class="action action-examiner".*?</div></div>\s*</div>\s*<p>Between.</p>\s*</div>\s*<p>After.</p>`)
	if !nested.MatchString(s) {
		t.Errorf("sections not nested as written:\n%s", s)
	}
	if strings.Contains(s, "section:end") {
		t.Errorf("a section's end shows:\n%s", s)
	}
	got := actionsOf(t, s)
	names := []string{}
	for _, a := range got {
		names = append(names, a.Name+"/"+a.Banner)
	}
	if !slices.Equal(names, []string{"section:begin/Section: Questions", "section:begin/Question: 1", "examiner:execute-test/Examiner: Run test \"t1\"", "section:begin/Section"}) || !got[3].Hidden {
		t.Errorf("actions: %q %+v", names, got)
	}
	// An unmatched end closes nothing it should not; an open section ends
	// with the page.
	s = render(t, nil, "```section:end", "name: none", "```", "```section:begin", "```", "Inside.")
	if !regexp.MustCompile(`(?s)<div class="action-section-content" hidden>\s*<p>Inside.</p>\s*</div>`).MatchString(s) {
		t.Errorf("open section:\n%s", s)
	}
}
