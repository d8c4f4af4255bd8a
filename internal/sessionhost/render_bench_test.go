package sessionhost

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// actionsPage is an instructions page of n clickable actions, cycling
// through every kind Educates documents, with data variables in them as
// workshops have, and a paragraph between each.
func actionsPage(n int) string {
	bodies := []string{
		"```terminal:execute\ncommand: echo {{< param session_name >}} step %d\nsession: 2\n```",
		"```execute\nkubectl get pods -n {{ session_namespace }} # %d\n```",
		"```editor:append-lines-to-file\nfile: ~/exercises/step-%d.yaml\ntext: |\n  kind: ConfigMap\n  data: {}\n```",
		"```files:download-file\npath: exercises/step-%d.yaml\ndownload: step.yaml\n```",
		"```examiner:execute-test\nname: check-%d\nargs: [one, two]\nretries: .INF\ndelay: 1\ntimeout: 5\n```",
		"```dashboard:open-url\nurl: https://example.com/{{< param session_name >}}/%d\n```",
		"```workshop:copy\ntext: step %d\n```",
		"```section:begin\ntitle: Part %d\n```\n\nInside.\n\n```section:end\n```",
	}
	var b strings.Builder
	b.WriteString("---\ntitle: Many actions\n---\n\n")
	for i := range n {
		fmt.Fprintf(&b, "Step %d: the *next* thing to do, with `code`.\n\n", i)
		fmt.Fprintf(&b, bodies[i%len(bodies)], i)
		b.WriteString("\n\n")
	}
	return b.String()
}

// BenchmarkRenderPage200Actions is issue 17's measure: the dashboard of a
// page of 200 clickable actions, read from disk, rendered and served by
// the host as the browser asks for it. BENCHMARKS.md has its figures.
//
//	go test -run '^$' -bench RenderPage200Actions -benchmem ./internal/sessionhost
func BenchmarkRenderPage200Actions(b *testing.B) {
	h, _ := newTestHost(b, testConfig)
	dir := filepath.Join(h.home, ContentDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "01-many.md"), []byte(actionsPage(200)), 0o644); err != nil {
		b.Fatal(err)
	}
	routes := h.routes()
	check := private(b, routes, "GET", "/workshop/content/01-many/", "")
	if check.Code != http.StatusOK || strings.Count(check.Body.String(), `class="action action-`) != 200 {
		b.Fatalf("%d, %d actions", check.Code, strings.Count(check.Body.String(), `class="action action-`))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rec := private(b, routes, "GET", "/workshop/content/01-many/", ""); rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
