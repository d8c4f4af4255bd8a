package sessionhost

import (
	"path"
	"regexp"
	"strings"
	"testing"
)

var startTag = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9]*)`)

// unsafeMarkup returns the first element or attribute of html that could
// run script: a script-like element, an event handler, a javascript: URL.
func unsafeMarkup(html string) string {
	for _, loc := range startTag.FindAllStringSubmatchIndex(html, -1) {
		name := strings.ToLower(html[loc[2]:loc[3]])
		switch name {
		case "script", "style", "iframe", "object", "embed", "svg", "math", "form", "base", "link", "meta", "frame":
			return "<" + name
		}
		// Attributes, with their quoted values skipped.
		rest := html[loc[1]:]
		for {
			rest = strings.TrimLeft(rest, " \t\n\r/")
			if rest == "" || rest[0] == '>' {
				break
			}
			end := strings.IndexAny(rest, " \t\n\r=>/")
			if end < 0 {
				break
			}
			attr := strings.ToLower(rest[:end])
			if end == 0 {
				rest = rest[1:]
				continue
			}
			rest = rest[end:]
			value := ""
			if strings.HasPrefix(rest, "=") {
				rest = rest[1:]
				if q := rest[:min(1, len(rest))]; q == `"` || q == "'" {
					close := strings.Index(rest[1:], q)
					if close < 0 {
						return "unterminated attribute " + attr
					}
					value, rest = rest[1:1+close], rest[2+close:]
				} else {
					end := strings.IndexAny(rest, " \t\n\r>")
					if end < 0 {
						end = len(rest)
					}
					value, rest = rest[:end], rest[end:]
				}
			}
			if strings.HasPrefix(attr, "on") || attr == "style" || attr == "srcdoc" ||
				(attr == "href" || attr == "src") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(value)), "javascript:") {
				return name + " " + attr + "=" + value
			}
		}
	}
	return ""
}

func FuzzRenderMarkdown(f *testing.F) {
	for _, seed := range []string{
		"# Title\n\n{{< param session_name >}} {{ x }}\n",
		"```execute\necho {{ x }}\n```\n",
		"```terminal:execute\ncommand: ls\nsession: 2\n```\n",
		"<kbd>Ctrl</kbd> <script>alert(1)</script> <img src=x onerror=alert(1)>\n",
		"[a](javascript:alert(1)) ![b](../x.png) [c]({{ x }})\n",
		"---\ntitle: t\n---\n",
	} {
		f.Add(seed, `"><script>alert(1)</script>`)
	}
	f.Fuzz(func(t *testing.T, src, value string) {
		vars := map[string]string{"session_name": value, "x": value}
		out, err := renderMarkdown([]byte(src), vars, pageContext{base: "/sessions/s/workshop/content/p/", pageOf: map[string]string{}, dir: "."})
		if err != nil {
			return
		}
		if m := unsafeMarkup(string(out)); m != "" {
			t.Fatalf("unsafe markup %q from %q with %q:\n%s", m, src, value, out)
		}
		splitFrontMatter([]byte(src))
		titleOf(src)
	})
}

func FuzzCleanRelative(f *testing.F) {
	for _, seed := range []string{"a/b", "../x", "/etc", "a/../../b", "./.", "a//b/", `a\..\b`, "..."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := cleanRelative(name)
		if err != nil {
			return
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || path.Clean(clean) != clean {
			t.Fatalf("cleanRelative(%q) = %q", name, clean)
		}
	})
}

func FuzzMatchGlob(f *testing.F) {
	f.Add("/workshop/**", "workshop/content/a.md")
	f.Add("/**/*.md", "a/b/c.md")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Count(pattern, "**") > 4 || len(name) > 200 {
			return
		}
		matchGlob(pattern, name)
	})
}
