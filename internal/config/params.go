package config

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

const (
	// maxRepeatExtra is how many repeats beyond their minimum *, + and {n,}
	// produce at most, as Python's xeger, which Educates uses, does.
	maxRepeatExtra = 10
	// maxGenerated bounds the length of a generated value, so that a pattern
	// like (x{1000}){1000} is refused when the definition is loaded rather
	// than costing a megabyte per session.
	maxGenerated = 1024
)

// Resolve returns the value of the parameter for a new session. As in
// Educates, a value that is set wins; otherwise a parameter with
// generate: expression gets a random string matching the regular expression
// From, drawn from random (crypto/rand.Reader in production).
func (p Parameter) Resolve(random io.Reader) (string, error) {
	if p.Generate != generateExpression || p.Value != "" {
		return p.Value, nil
	}
	re, err := parsePattern(p.From)
	if err != nil {
		return "", fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	g := generator{random: random}
	if err := g.generate(re); err != nil {
		return "", fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	return string(g.out), nil
}

// parsePattern parses a generate: expression pattern and checks that values
// can be generated from it.
func parsePattern(pattern string) (*syntax.Regexp, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		var serr *syntax.Error
		if errors.As(err, &serr) {
			return nil, fmt.Errorf("%q is not a valid pattern: %s", pattern, serr.Code)
		}
		return nil, fmt.Errorf("%q is not a valid pattern: %v", pattern, err)
	}
	if maxLength(re) > maxGenerated {
		return nil, fmt.Errorf("%q can generate values longer than %d characters", pattern, maxGenerated)
	}
	if !generable(re) {
		return nil, fmt.Errorf("%q has a part that matches no character", pattern)
	}
	return re, nil
}

// repeats is how many times a repetition may repeat its operand.
func repeats(re *syntax.Regexp) (least, most int) {
	switch re.Op {
	case syntax.OpStar:
		return 0, maxRepeatExtra
	case syntax.OpPlus:
		return 1, 1 + maxRepeatExtra
	case syntax.OpQuest:
		return 0, 1
	}
	if re.Max < 0 {
		return re.Min, re.Min + maxRepeatExtra
	}
	return re.Min, re.Max
}

// maxLength is the length in characters of the longest value generate can
// produce, saturated just above maxGenerated so that it cannot overflow.
func maxLength(re *syntax.Regexp) int {
	const limit = maxGenerated + 1
	switch re.Op {
	case syntax.OpLiteral:
		return min(len(re.Rune), limit)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture:
		return maxLength(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		_, most := repeats(re)
		return min(most*maxLength(re.Sub[0]), limit)
	case syntax.OpConcat:
		n := 0
		for _, sub := range re.Sub {
			n = min(n+maxLength(sub), limit)
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, sub := range re.Sub {
			n = max(n, maxLength(sub))
		}
		return n
	}
	return 0
}

// generable reports whether every part of re has characters to draw from,
// so that generate always produces a match.
func generable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if !utf8.ValidRune(r) { // a surrogate: no UTF-8 string holds it
				return false
			}
		}
	case syntax.OpCharClass:
		return len(drawable(re.Rune)) > 0
	}
	for _, sub := range re.Sub {
		if !generable(sub) {
			return false
		}
	}
	return true
}

var (
	printableASCII = []rune{' ', '~'}
	// validRunes leaves out the surrogates, which UTF-8 cannot encode.
	validRunes = []rune{0, 0xd7ff, 0xe000, unicode.MaxRune}
)

// drawable narrows a character class (sorted pairs of first and last rune)
// to the characters generate draws from.
func drawable(class []rune) []rune {
	if len(class) > 0 && class[len(class)-1] == unicode.MaxRune {
		// An open-ended class ([^a], \S, \D) means "anything else":
		// like xeger, draw printable ASCII from it when it has some.
		if p := intersect(class, printableASCII); len(p) > 0 {
			return p
		}
	}
	return intersect(class, validRunes)
}

// intersect returns the runes in both a and b, each a list of ranges.
func intersect(a, b []rune) []rune {
	var out []rune
	for i := 0; i+1 < len(a); i += 2 {
		for j := 0; j+1 < len(b); j += 2 {
			if lo, hi := max(a[i], b[j]), min(a[i+1], b[j+1]); lo <= hi {
				out = append(out, lo, hi)
			}
		}
	}
	return out
}

// generator builds a random string matching a parsed regular expression.
// Assertions (^, $, \b) produce nothing: patterns are matched whole.
type generator struct {
	random io.Reader
	out    []rune
	buf    [8]byte
}

func (g *generator) generate(re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpLiteral:
		g.out = append(g.out, re.Rune...)
	case syntax.OpCharClass:
		return g.draw(drawable(re.Rune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return g.draw(printableASCII)
	case syntax.OpCapture:
		return g.generate(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		least, most := repeats(re)
		extra, err := g.intn(most - least + 1)
		if err != nil {
			return err
		}
		for range least + extra {
			if err := g.generate(re.Sub[0]); err != nil {
				return err
			}
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if err := g.generate(sub); err != nil {
				return err
			}
		}
	case syntax.OpAlternate:
		i, err := g.intn(len(re.Sub))
		if err != nil {
			return err
		}
		return g.generate(re.Sub[i])
	}
	return nil
}

// draw appends a rune chosen uniformly from ranges.
func (g *generator) draw(ranges []rune) error {
	total := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		total += int(ranges[i+1]-ranges[i]) + 1
	}
	n, err := g.intn(total)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		size := int(ranges[i+1]-ranges[i]) + 1
		if n < size {
			g.out = append(g.out, ranges[i]+rune(n))
			return nil
		}
		n -= size
	}
	return nil
}

// intn returns a uniform random number in [0, n), by rejection sampling so
// that no value is favoured.
func (g *generator) intn(n int) (int, error) {
	if n <= 1 {
		return 0, nil
	}
	limit := math.MaxUint64 - math.MaxUint64%uint64(n)
	for {
		if _, err := io.ReadFull(g.random, g.buf[:]); err != nil {
			return 0, fmt.Errorf("reading randomness: %w", err)
		}
		if v := binary.LittleEndian.Uint64(g.buf[:]); v < limit {
			return int(v % uint64(n)), nil
		}
	}
}
