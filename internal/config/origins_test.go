package config

import (
	"slices"
	"strings"
	"testing"
)

func TestIndexOrigins(t *testing.T) {
	defs, err := loadString(t, portalDoc(`
portal:
  index: https://event.example/
  indexOrigins:
  - https://Hub.Example
  - https://hub.example:8443/
  - http://localhost:3000
  - https://lms.example:443
workshops:
- name: lab-a
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://hub.example", "https://hub.example:8443", "http://localhost:3000", "https://lms.example"}
	if got := defs.Portal.IndexOrigins; !slices.Equal(got, want) {
		t.Errorf("indexOrigins resolved to %q, want %q", got, want)
	}

	for _, bad := range []string{"hub.example", "https://hub.example/path", "https://hub.example/?q", "javascript:alert(1)",
		"https://user@hub.example", "ftp://hub.example", "https://", "https://hub.example\\.evil.example"} {
		_, err := loadString(t, portalDoc("portal:\n  indexOrigins:\n  - '"+bad+"'\nworkshops:\n- name: lab-a\n"))
		if err == nil || !strings.Contains(err.Error(), "spec.portal.indexOrigins[0]") {
			t.Errorf("indexOrigins %q: %v, want an error naming the field", bad, err)
		}
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://hub.example/back?x=1#y":    "https://hub.example",
		"HTTPS://HUB.EXAMPLE:443/":          "https://hub.example",
		"http://hub.example:80":             "http://hub.example",
		"http://hub.example:8080/a":         "http://hub.example:8080",
		"https://[::1]:8443/":               "https://[::1]:8443",
		"https://evil.example@hub.example/": "https://hub.example",
	} {
		if got, ok := Origin(in); !ok || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "/workshops/catalog/", "//evil.example/", "javascript:alert(1)", "https:evil.example",
		"https://hub.example\\@evil.example/", "data:text/html,x", "https:///evil.example", "https://hub.example\t/"} {
		if got, ok := Origin(in); ok {
			t.Errorf("Origin(%q) = %q, want none", in, got)
		}
	}
}
