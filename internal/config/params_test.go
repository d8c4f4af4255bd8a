package config

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestResolveParameter(t *testing.T) {
	tests := []struct {
		name  string
		param Parameter
		// match is the pattern every result must match whole; empty: want equals the value.
		match string
		want  string
	}{
		{"value", Parameter{Name: "A", Value: "Hello"}, "", "Hello"},
		{"no value", Parameter{Name: "A"}, "", ""},
		{"value wins over generate, as in Educates", Parameter{Name: "A", Value: "v", Generate: "expression", From: "[0-9]"}, "", "v"},
		{"other generator", Parameter{Name: "A", Value: "v", Generate: "other", From: "[0-9]"}, "", "v"},
		{"three digits", Parameter{Generate: "expression", From: "[1-9][0-9]{2}"}, `[1-9][0-9]{2}`, ""},
		{"literal and classes", Parameter{Generate: "expression", From: `user-[a-z]{4}\d\d`}, `user-[a-z]{4}\d\d`, ""},
		{"alternation", Parameter{Generate: "expression", From: "(red|green|blue)-(cat|dog)"}, "(red|green|blue)-(cat|dog)", ""},
		{"star and plus capped", Parameter{Generate: "expression", From: "a*b+c?"}, "a{0,10}b{1,11}c?", ""},
		{"open repeat capped", Parameter{Generate: "expression", From: "x{3,}"}, "x{3,13}", ""},
		{"anchors ignored", Parameter{Generate: "expression", From: `^\w{8}$`}, `\w{8}`, ""},
		{"dot is printable", Parameter{Generate: "expression", From: ".{20}"}, `[ -~]{20}`, ""},
		{"negated class is printable", Parameter{Generate: "expression", From: "[^a-z]{20}"}, `[ -` + "`" + `{-~]{20}`, ""},
		{"case folding", Parameter{Generate: "expression", From: "(?i)abc"}, "(?i)abc", ""},
		{"unicode class", Parameter{Generate: "expression", From: `\p{Greek}{5}`}, `\p{Greek}{5}`, ""},
		{"non-ASCII negation", Parameter{Generate: "expression", From: `[^\x00-\x7f]{5}`}, `[^\x00-\x7f]{5}`, ""},
		{"empty pattern", Parameter{Generate: "expression", From: ""}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var re *regexp.Regexp
			if tt.match != "" {
				re = regexp.MustCompile("^(?:" + tt.match + ")$")
			}
			for range 50 {
				got, err := tt.param.Resolve(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				if re == nil && got != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				if re != nil && (!re.MatchString(got) || !utf8.ValidString(got)) {
					t.Fatalf("got %q, which does not match %s", got, tt.match)
				}
			}
		})
	}
}

func TestResolveParameterVaries(t *testing.T) {
	p := Parameter{Generate: "expression", From: "[A-Za-z0-9]{16}"}
	seen := map[string]bool{}
	for range 20 {
		v, err := p.Resolve(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		seen[v] = true
	}
	if len(seen) < 20 {
		t.Errorf("only %d distinct values in 20", len(seen))
	}
}

func TestResolveParameterErrors(t *testing.T) {
	tests := []struct {
		name   string
		param  Parameter
		random []byte
		want   string
	}{
		{"bad pattern", Parameter{Name: "P", Generate: "expression", From: "(a"}, nil, `parameter P: "(a" is not a valid pattern: missing closing )`},
		{"too long", Parameter{Name: "P", Generate: "expression", From: "a{1000}b{100}"}, nil, "longer than 1024 characters"},
		{"randomness runs out", Parameter{Name: "P", Generate: "expression", From: "[a-z]{5}"}, []byte{1, 2, 3}, "parameter P: reading randomness"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.param.Resolve(bytes.NewReader(tt.random))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestIntnUniform checks that every value of a small range comes up about
// as often as the others.
func TestIntnUniform(t *testing.T) {
	g := generator{random: rand.Reader}
	const n, draws = 7, 70000
	var counts [n]int
	for range draws {
		i, err := g.intn(n)
		if err != nil {
			t.Fatal(err)
		}
		counts[i]++
	}
	for i, c := range counts {
		if c < draws/n*9/10 || c > draws/n*11/10 {
			t.Errorf("value %d drawn %d times of %d", i, c, draws)
		}
	}
}
