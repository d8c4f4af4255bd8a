package sessionhost

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/runtime"
)

func pageNames(pages []page) []string {
	var names []string
	for _, p := range pages {
		names = append(names, p.Name)
	}
	return names
}

func TestPageOrder(t *testing.T) {
	home := t.TempDir()
	writeFiles(t, home, map[string]string{
		"workshop/content/b.md":                  "---\nweight: 2\n---\nB\n",
		"workshop/content/a.md":                  "---\nweight: 2\ntitle: Page A\n---\nA\n",
		"workshop/content/z-first.md":            "---\nweight: 1.5\n---\n",
		"workshop/content/bundle/index.md":       "---\nweight: 3\ntitle: A bundle\n---\n![img](pic.png)\n",
		"workshop/content/bundle/pic.png":        "png",
		"workshop/content/bundle/notes.md":       "not a page of its own",
		"workshop/content/part/_index.md":        "---\nweight: 4\n---\nsection\n",
		"workshop/content/part/p1.md":            "---\nweight: 5\n---\n",
		"workshop/content/unweighted.md":         "no front matter\n",
		"workshop/content/01-getting_started.md": "---\r\ntitle: \"CRLF\"\r\nweight: 0\r\n---\r\nbody\r\n",
		"workshop/content/.hidden.md":            "---\nweight: 0\n---\n",
		"workshop/content/readme.txt":            "not markdown",
	})
	pages, err := loadPages(home)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"01-getting_started", "z-first", "a", "b", "bundle", "part", "part/p1", "unweighted"}
	if got := pageNames(pages); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("order %v, want %v", got, want)
	}
	titles := map[string]string{}
	for _, p := range pages {
		titles[p.Name] = p.Title
	}
	for name, want := range map[string]string{
		"a": "Page A", "b": "B", "bundle": "A bundle", "01-getting_started": "CRLF", "unweighted": "Unweighted",
	} {
		if titles[name] != want {
			t.Errorf("title of %s = %q, want %q", name, titles[name], want)
		}
	}
	if string(pages[0].body) != "body\r\n" {
		t.Errorf("body after CRLF front matter: %q", pages[0].body)
	}

	// No content directory: no pages, no error.
	if pages, err := loadPages(t.TempDir()); err != nil || len(pages) != 0 {
		t.Errorf("no content: %v %v", pages, err)
	}
	// Broken front matter is an error that names the file.
	writeFiles(t, home, map[string]string{"workshop/content/broken.md": "---\ntitle: [\n---\n"})
	if _, err := loadPages(home); err == nil || !strings.Contains(err.Error(), "broken.md") {
		t.Errorf("broken front matter: %v", err)
	}
}

func TestPagesAndNavigation(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	writeFiles(t, h.home, map[string]string{
		"workshop/content/one.md":          "---\ntitle: One\nweight: 1\n---\nFirst page.\n",
		"workshop/content/two/index.md":    "---\ntitle: Two for {{< param session_name >}}\nweight: 2\n---\n![diagram](diagram.svg)\n",
		"workshop/content/two/diagram.svg": `<svg xmlns="http://www.w3.org/2000/svg"/>`,
		"workshop/content/three.md":        "---\ntitle: Three\nweight: 3\n---\nLast page.\n",
	})
	routes := h.routes()

	first := private(t, routes, "GET", "/", "").Body.String()
	if !strings.Contains(first, "First page.") || strings.Contains(first, `rel="prev"`) {
		t.Errorf("first page: %s", first)
	}
	if !strings.Contains(first, `rel="next" data-page="two" href="`+prefix+`/workshop/content/two/"`) {
		t.Errorf("first page has no next link to two")
	}
	second := private(t, routes, "GET", "/workshop/content/two/", "").Body.String()
	for _, want := range []string{
		`rel="prev" data-page="one" href="` + prefix + `/workshop/content/one/"`,
		`rel="next" data-page="three" href="` + prefix + `/workshop/content/three/"`,
		`<img src="` + prefix + `/workshop/content/two/diagram.svg" alt="diagram">`,
		`<title>Two for portal-w01-s001 · lab-markdown</title>`,
		`2/3`,
	} {
		if !strings.Contains(second, want) {
			t.Errorf("second page: no %s", want)
		}
	}
	last := private(t, routes, "GET", "/workshop/content/three/", "").Body.String()
	if !strings.Contains(last, "Last page.") || strings.Contains(last, `rel="next"`) {
		t.Errorf("last page: %s", last)
	}
	if rec := private(t, routes, "GET", "/workshop/content/four/", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown page: %d", rec.Code)
	}

	// The bundle's files are served; Markdown sources and escapes are not.
	rec := private(t, routes, "GET", "/workshop/content/two/diagram.svg", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/svg+xml" || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("bundle file: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Content-Security-Policy"))
	}
	for _, target := range []string{
		"/workshop/content/one.md", "/workshop/content/two/index.md", "/workshop/content/..%2f..%2f.portico/session.json",
		"/workshop/content/two/..%2f..%2f..%2f.portico%2fsession.json",
	} {
		if rec := private(t, routes, "GET", target, ""); rec.Code == http.StatusOK {
			t.Errorf("%s: served", target)
		}
	}

	// The page as JSON, for the script's navigation.
	rec = private(t, routes, "GET", "/.portico/pages/two", "")
	var p struct {
		Name, Title, URL, HTML, Pager string
		Index, Count                  int
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%s: %v", rec.Body, err)
	}
	if p.Name != "two" || p.Title != "Two for portal-w01-s001" || p.URL != prefix+"/workshop/content/two/" || p.Index != 2 || p.Count != 3 ||
		!strings.Contains(p.HTML, "diagram.svg") || !strings.Contains(p.Pager, `rel="next"`) {
		t.Errorf("page JSON: %+v", p)
	}
}

func TestVariablesInMarkdown(t *testing.T) {
	cfg := testConfig
	cfg.Env = append(cfg.Env, EnvVar{"IGNORED", "x"})
	cfg.Owner = &runtime.Allocation{
		User:   runtime.User{Username: "alice", FirstName: `<script>alert("x")</script>`},
		Params: []runtime.EnvVar{{Name: "TARGET", Value: `a&b "quoted" <tag>`}, {Name: "LINK", Value: "https://example.com/a?b=1&c=2"}},
	}
	h, _ := newTestHost(t, cfg)
	writeFiles(t, h.home, map[string]string{"workshop/content/p.md": strings.Join([]string{
		"Session {{< param session_name >}} and {{ session_name }} and {{<param \"workshop_name\">}} and {{% param training_portal %}}.",
		"",
		"Hello {{ first_name }}: {{ TARGET }}.",
		"",
		"`inline {{ TARGET }}` [link]({{< param LINK >}}) [rel]({{ session_id }}/x)",
		"",
		"```",
		"code {{< param TARGET >}}",
		"```",
		"",
		"Unknown {{< param nothing >}} and {{ .Values.image }} and {{ nothing }} stay.",
		"",
		"## Heading {{ session_id }}",
	}, "\n")})
	out := private(t, h.routes(), "GET", "/", "").Body.String()
	for _, want := range []string{
		"Session portal-w01-s001 and portal-w01-s001 and lab-markdown and portal.",
		"Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;: a&amp;b &#34;quoted&#34; &lt;tag&gt;.",
		"<code>inline a&amp;b &#34;quoted&#34; &lt;tag&gt;</code>",
		`<a href="https://example.com/a?b=1&amp;c=2">link</a>`,
		`<a href="` + prefix + `/workshop/content/p/s001/x">rel</a>`,
		"code a&amp;b &#34;quoted&#34; &lt;tag&gt;",
		"Unknown {{&lt; param nothing &gt;}} and {{ .Values.image }} and {{ nothing }} stay.",
		">Heading s001</h2>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s", want)
		}
	}
	if strings.Contains(out, "<script>alert") || strings.Contains(out, "zzpv") {
		t.Errorf("unescaped value or placeholder left:\n%s", out)
	}
}

func TestRawHTMLIsSanitised(t *testing.T) {
	out, err := renderMarkdown([]byte(strings.Join([]string{
		"Press <kbd>Ctrl</kbd>+<kbd>C</kbd>, H<sub>2</sub>O, line<br>break.",
		"",
		`Inline <img src=x onerror="alert(1)"> and <a href="javascript:alert(1)">x</a> and <script>alert(1)</script>.`,
		"",
		"<div onclick=\"alert(1)\">",
		"block",
		"</div>",
		"",
		"[js](javascript:alert(1))",
	}, "\n")), nil, pageContext{base: "/p/"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"<kbd>Ctrl</kbd>+<kbd>C</kbd>", "H<sub>2</sub>O", "line<br>break", "&lt;img src=x onerror=", "&lt;script&gt;"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %s in\n%s", want, s)
		}
	}
	for _, bad := range []string{"<img", "<script", "<div", "onclick", `href="javascript`} {
		if strings.Contains(s, bad) {
			t.Errorf("%s passed:\n%s", bad, s)
		}
	}
}

func TestBundledExampleRenders(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	if err := unpackWorkshopFiles(t.Context(), Config{
		WorkshopDir:   "../../examples/lab-hello-terminal",
		WorkshopFiles: []map[string]any{{"directory": map[string]any{"path": "."}, "includePaths": []any{"/workshop/**", "/exercises/**"}}},
	}, h.home); err != nil {
		t.Fatal(err)
	}
	pages, err := loadPages(h.home)
	if err != nil || strings.Join(pageNames(pages), " ") != "01-welcome 02-terminal 03-files" {
		t.Fatalf("pages %v %v", pageNames(pages), err)
	}
	routes := h.routes()
	welcome := private(t, routes, "GET", "/", "").Body.String()
	if !strings.Contains(welcome, "<code>portal-w01-s001</code>") || len(actionsOf(t, welcome)) == 0 {
		t.Errorf("welcome page:\n%s", welcome)
	}
	terminal := private(t, routes, "GET", "/workshop/content/02-terminal/", "").Body.String()
	if !slices.ContainsFunc(actionsOf(t, terminal), func(a renderedAction) bool { return a.Args["command"] == "echo $GREETING" }) || !strings.Contains(terminal, "<kbd>Ctrl</kbd>+<kbd>C</kbd>") {
		t.Errorf("terminal page:\n%s", terminal)
	}
	files := private(t, routes, "GET", "/workshop/content/03-files/", "").Body.String()
	if !slices.ContainsFunc(actionsOf(t, files), func(a renderedAction) bool {
		return strings.HasPrefix(a.Args["command"].(string), `echo "Edited in session portal-w01-s001." >> exercises/hello.txt`)
	}) {
		t.Errorf("files page:\n%s", files)
	}
}
