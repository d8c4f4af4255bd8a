package config

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"testing"
	"unicode/utf8"
)

func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "portal.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	workshop, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab-hello-terminal", "workshop.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(append(example, "\n---\n"...), workshop...))
	f.Add([]byte(portalDoc("portal: {sessions: {maximum: 3}}\nworkshops: [{name: lab-a, expires: 10m}]")))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("kind: [TrainingPortal\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		defs, err := Load(path)
		if err != nil {
			return
		}
		for _, e := range defs.Portal.Entries {
			if e.Reserved < 0 || e.Reserved > e.Capacity || e.Initial < 0 || e.Initial > e.Capacity ||
				(e.Initial != 0 && e.Initial < e.Reserved) || e.Deadline < e.Expires {
				t.Errorf("entry breaks the §5.2 invariants: %+v", e)
			}
			if defs.Workshops[e.Name] == nil {
				t.Errorf("entry %s names no loaded Workshop", e.Name)
			}
		}
	})
}

func FuzzResolveParameter(f *testing.F) {
	for _, pattern := range []string{"[1-9][0-9]{2}", `^\w+@example\.com$`, "(a|b)*c{2,}", "[^a]", ".", `\p{Greek}`, "x{1000}", "(?i)k"} {
		f.Add(pattern, uint64(1))
	}
	f.Fuzz(func(t *testing.T, pattern string, seed uint64) {
		p := Parameter{Name: "P", Generate: "expression", From: pattern}
		got, err := p.Resolve(rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16), 3: byte(seed >> 24)}))
		re, perr := parsePattern(pattern)
		if perr != nil {
			if err == nil {
				t.Fatalf("Resolve accepted %q, which parsePattern refuses: %v", pattern, perr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Resolve(%q): %v", pattern, err)
		}
		if n := utf8.RuneCountInString(got); n > maxGenerated {
			t.Fatalf("Resolve(%q) made %d characters", pattern, n)
		}
		if hasAssertion(re) {
			return // ^, $ and \b inside a pattern can make it unsatisfiable
		}
		// Leftmost-longest finds a match of the whole string if there is one.
		m := regexp.MustCompile(pattern)
		m.Longest()
		if loc := m.FindStringIndex(got); loc == nil || loc[0] != 0 || loc[1] != len(got) {
			t.Fatalf("Resolve(%q) = %q, which does not match", pattern, got)
		}
	})
}

func hasAssertion(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, sub := range re.Sub {
		if hasAssertion(sub) {
			return true
		}
	}
	return false
}
