// Package username holds what makes two account names the same account and
// what makes them look alike: the normalised form in which names are
// compared (PRECIS UsernameCaseMapped, RFC 8265) and a skeleton in which
// names that a person reads as the same compare equal (after UTS #39).
// Both stores key accounts on the first, and sign-up refuses names whose
// skeleton is taken.
package username

import (
	"errors"
	"strings"
	"unicode"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// ErrInvalid is the error of a name that is no username.
var ErrInvalid = errors.New("a username is letters, digits and printable ASCII symbols, " +
	"in words separated by single spaces, written left to right or right to left")

// Key returns the form in which usernames are compared: two names with the
// same key are one account. It lowercases, folds fullwidth forms to their
// usual width and composes (NFC); it refuses control characters, symbols
// beyond ASCII, characters with compatibility forms and mixed directions.
// Spaces separate the name's parts, each enforced on its own (RFC 8265
// §3.1), so "Ada Lovelace" is a username and " Ada" is not.
func Key(name string) (string, error) { return enforce(precis.UsernameCaseMapped, name) }

// Display returns name as an account made now keeps it: Key's form with
// its case preserved.
func Display(name string) (string, error) { return enforce(precis.UsernameCasePreserved, name) }

func enforce(p *precis.Profile, name string) (string, error) {
	parts := strings.Split(name, " ")
	for i, part := range parts {
		s, err := p.String(part)
		if part == "" || err != nil {
			return "", ErrInvalid
		}
		parts[i] = s
	}
	return strings.Join(parts, " "), nil
}

// Skeleton returns the form in which names that look alike as written
// compare equal: compatibility forms decomposed (NFKD), each character
// that looks like a Latin letter or digit replaced by it (Cyrillic "а" by
// "a", Greek "Ο" by "O", "1" and "I" by "l", "0" by "o", "m" by "rn"),
// then lowercased. Look-alikes depend on case (Cyrillic "В" passes for a
// B, "в" does not), so names that differ in case only, which are one
// account anyway (Key), may have two skeletons: "ALICE" is "allce". It is
// defined for any string, and errs on the side of calling names alike:
// "IAN" and "LAN" have one skeleton.
func Skeleton(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(name) {
		if p, ok := prototypes[r]; ok {
			b.WriteString(p)
		} else {
			b.WriteRune(r)
		}
	}
	return norm.NFD.String(strings.ToLower(b.String()))
}

// prototypes are the look-alikes of Latin letters and digits most used to
// pass one name off as another: those of the Cyrillic and Greek alphabets
// and within Latin itself, from the confusables of UTS #39. Keys are
// decomposed (NFKD) characters: accented letters are their base letter
// followed by a combining mark, which stays.
var prototypes = map[rune]string{
	// Latin and digits
	'0': "o", '1': "l", 'I': "l", '|': "l", 'm': "rn", 'ı': "i", 'ɑ': "a", 'ɡ': "g",
	// Cyrillic
	'а': "a", 'е': "e", 'о': "o", 'р': "p", 'с': "c", 'у': "y", 'х': "x", 'ѕ': "s", 'і': "i",
	'ј': "j", 'ԁ': "d", 'һ': "h", 'ӏ': "l", 'ԛ': "q", 'ԝ': "w", 'п': "n", 'г': "r",
	'А': "A", 'В': "B", 'Е': "E", 'К': "K", 'М': "M", 'Н': "H", 'О': "O", 'Р': "P", 'С': "C", 'Т': "T",
	'Х': "X", 'У': "Y", 'Ѕ': "S", 'І': "l", 'Ј': "J", 'Ԛ': "Q", 'Ԝ': "W", 'Ӏ': "l", 'Ү': "Y",
	// Greek
	'α': "a", 'ο': "o", 'ν': "v", 'ι': "i", 'ρ': "p", 'υ': "u", 'χ': "x", 'ϲ': "c", 'ϳ': "j",
	'γ': "y", 'Α': "A", 'Β': "B", 'Ε': "E", 'Ζ': "Z", 'Η': "H", 'Ι': "l", 'Κ': "K", 'Μ': "M", 'Ν': "N",
	'Ο': "O", 'Ρ': "P", 'Τ': "T", 'Υ': "Y", 'Χ': "X", 'Ϲ': "C", 'Ϳ': "J",
}

// OneScript reports whether the letters of name come from one script, or
// from a combination of scripts that UTS #39 (§5.2, "Highly Restrictive")
// allows because people write that way: Latin with Han and Japanese kana,
// with Han and Bopomofo, or with Han and Hangul. Characters common to
// every script (digits, punctuation) and combining marks do not count.
// A name in two alphabets is the usual look-alike: Latin "alice" with a
// Cyrillic "а".
func OneScript(name string) bool {
	used := map[string]bool{}
	for _, r := range name {
		if s := script(r); s != "" {
			used[s] = true
		}
	}
	if len(used) <= 1 {
		return true
	}
	for _, allowed := range mixtures {
		if within(used, allowed) {
			return true
		}
	}
	return false
}

var mixtures = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

func within(used map[string]bool, allowed []string) bool {
	n := 0
	for _, s := range allowed {
		if used[s] {
			n++
		}
	}
	return n == len(used)
}

// script is the name of r's script, "" for the Common and Inherited
// pseudo-scripts.
func script(r rune) string {
	if unicode.Is(unicode.Common, r) || unicode.Is(unicode.Inherited, r) {
		return ""
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}
