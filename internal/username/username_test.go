package username_test

import (
	"errors"
	"testing"

	"github.com/portico-dev/portico/internal/username"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"ALICE", "alice"},
		{"ａｌｉｃｅ", "alice"}, // fullwidth
		{"frank@corp.example", "frank@corp.example"},
		{"anon@educates:8c9d2a52-07f4-4b2e-9e55-5c2b3a1f0e6d", "anon@educates:8c9d2a52-07f4-4b2e-9e55-5c2b3a1f0e6d"},
		{"Ada Lovelace", "ada lovelace"},
		{"Émile", "émile"},
		{"E\u0301mile", "émile"}, // composed
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},
		{"аlice", "аlice"}, // Cyrillic а stays itself: a look-alike, not the same name
	} {
		got, err := username.Key(tc.name)
		if err != nil || got != tc.key {
			t.Errorf("Key(%q) = %q, %v; want %q", tc.name, got, err, tc.key)
		}
	}
	for _, bad := range []string{"", " alice", "alice ", "ada  lovelace", "tab\there", "new\nline",
		"x²", "ﬁsh", "a\u200bb", "☃", "\u202eecila", "a\x00b"} {
		if got, err := username.Key(bad); !errors.Is(err, username.ErrInvalid) {
			t.Errorf("Key(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}

func TestDisplayKeepsCase(t *testing.T) {
	if got, err := username.Display("ＡＬＩＣＥ"); err != nil || got != "ALICE" {
		t.Errorf("Display(fullwidth ALICE) = %q, %v", got, err)
	}
}

func TestSkeleton(t *testing.T) {
	same := [][2]string{
		{"alice", "аlice"},       // Cyrillic а
		{"alice", "ａｌｉｃｅ"},       // fullwidth
		{"Educates", "Еducates"}, // Cyrillic Е
		{"ADMIN", "ΑDMIN"},       // Greek Alpha
		{"admin", "adrnin"},
		{"bob", "b0b"},
		{"paul", "pau1"},
		{"Ian", "lan"},
		{"root", "rооt"}, // Cyrillic о
		{"ice", "ісе"},   // all Cyrillic
	}
	for _, p := range same {
		if a, b := username.Skeleton(p[0]), username.Skeleton(p[1]); a != b {
			t.Errorf("Skeleton(%q) = %q, Skeleton(%q) = %q; want equal", p[0], a, p[1], b)
		}
	}
	apart := [][2]string{
		{"alice", "alicia"},
		{"ian", "lan"},
		{"émile", "emile"},
		{"bob", "вов"},           // Cyrillic в is no b
		{"educates", "εducates"}, // nor Greek ε an e
	}
	for _, p := range apart {
		if a, b := username.Skeleton(p[0]), username.Skeleton(p[1]); a == b {
			t.Errorf("Skeleton(%q) = Skeleton(%q) = %q; want them apart", p[0], p[1], a)
		}
	}
}

func TestOneScript(t *testing.T) {
	for _, tc := range []struct {
		name string
		one  bool
	}{
		{"alice", true},
		{"alice.2024@corp.example", true},
		{"аlice", false}, // Cyrillic а among Latin
		{"ΑDMIN", false}, // Greek Α among Latin
		{"иван", true},
		{"σίσυφος", true},
		{"tanaka田中たなかタナカ", true}, // Latin, Han and kana: Japanese
		{"kim김", true},           // Latin and Hangul with (no) Han
		{"김たなか", false},          // Hangul with kana
		{"émile", true},
		{"e\u0301mile", true}, // combining mark: inherited
	} {
		if got := username.OneScript(tc.name); got != tc.one {
			t.Errorf("OneScript(%q) = %v, want %v", tc.name, got, tc.one)
		}
	}
}

// FuzzKey checks the properties the stores rely on: a key is its own key
// (so an account found by its key is found by its name), the kept Display
// form has the name's key, and no input makes any of it panic.
func FuzzKey(f *testing.F) {
	for _, seed := range []string{"alice", "ＡＬＩＣＥ", "Ada Lovelace", "аlice", "x²", "ΣΊΣΥΦΟΣ", "e\u0301", " ", "\xff", "שלום", "a\u202eb"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		username.Skeleton(name)
		username.OneScript(name)
		key, err := username.Key(name)
		if err != nil {
			return
		}
		if again, err := username.Key(key); err != nil || again != key {
			t.Fatalf("Key(%q) = %q, whose key is %q, %v", name, key, again, err)
		}
		display, err := username.Display(name)
		if err != nil {
			t.Fatalf("Key(%q) = %q but Display fails: %v", name, key, err)
		}
		if k, err := username.Key(display); err != nil || k != key {
			t.Fatalf("Display(%q) = %q, whose key is %q, %v; want %q", name, display, k, err, key)
		}
	})
}
