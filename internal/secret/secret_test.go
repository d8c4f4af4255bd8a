package secret

import (
	"regexp"
	"strings"
	"testing"
)

func TestAlnumUsesWholeAlphabetUniformly(t *testing.T) {
	s := Alnum(62 * 400)
	if !regexp.MustCompile(`^[A-Za-z0-9]+$`).MatchString(s) {
		t.Fatalf("unexpected characters in %q", s[:40])
	}
	for _, c := range alnum {
		// Expected 400 each; 200 is far outside any plausible deviation.
		if n := strings.Count(s, string(c)); n < 200 {
			t.Errorf("%c drawn %d times out of an expected 400", c, n)
		}
	}
}

func TestTokensDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := Token()
		if len(tok) != 43 || seen[tok] {
			t.Fatalf("bad or repeated token %q", tok)
		}
		seen[tok] = true
	}
}

func TestUUIDShape(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for range 100 {
		if u := UUID(); !re.MatchString(u) {
			t.Fatalf("not a v4 UUID: %s", u)
		}
	}
}
