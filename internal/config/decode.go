package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FieldError is a problem with one field of a definition file.
type FieldError struct {
	File   string
	Line   int    // 0 when not known
	Path   string // e.g. spec.workshops[1].expires; empty for a whole document
	Reason string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// opaque is the type of fields whose content Portico accepts without reading
// it (metadata.labels, for example): no warnings, no errors inside.
type opaque struct{}

// anyOtherFields, embedded in a schema struct, accepts keys the struct does
// not name without warning about them (spec.session.env[] items may carry
// Kubernetes' valueFrom and friends).
type anyOtherFields struct{}

var (
	opaqueType         = reflect.TypeFor[opaque]()
	anyOtherFieldsType = reflect.TypeFor[anyOtherFields]()
	durationType       = reflect.TypeFor[time.Duration]()
)

// decodeBudget bounds the nodes visited in one document: aliases can make a
// small document expand enormously.
const decodeBudget = 1_000_000

// decoder fills the schema structs of resources.go from a yaml.Node tree.
// It does by reflection what yaml.v3 would do, but knows the field path of
// every value, so that errors name the field, and it records the paths of
// keys the schema does not know instead of failing on them.
type decoder struct {
	file    string
	lines   map[string]int // field path → line, for checks made after decoding
	unknown []unknownField // keys the schema does not know
	errs    []error
	active  map[*yaml.Node]bool // anchors being expanded, to refuse cycles
	budget  int
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		lines:  map[string]int{},
		active: map[*yaml.Node]bool{},
		budget: decodeBudget,
	}
}

// fail records an error about the field at path, found on line.
func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Path: path, Reason: fmt.Sprintf(format, args...)})
}

// failAt records an error about a field checked after decoding.
func (d *decoder) failAt(path string, format string, args ...any) {
	d.errs = append(d.errs, d.errorAt(path, format, args...))
}

// errorAt is an error about a field checked after decoding; its line is that
// of the field, or of its closest parent present in the file.
func (d *decoder) errorAt(path string, format string, args ...any) *FieldError {
	return &FieldError{File: d.file, Line: d.lineOf(path), Path: path, Reason: fmt.Sprintf(format, args...)}
}

func (d *decoder) lineOf(path string) int {
	for {
		if line, ok := d.lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.lines[""]
		}
		path = path[:i]
	}
}

// spend takes one step from the budget and reports whether decoding may go on.
func (d *decoder) spend(path string, line int) bool {
	d.budget--
	if d.budget == -1 {
		d.fail(path, line, "document too large once its aliases are expanded")
	}
	return d.budget >= 0
}

// resolve calls use with n, or with the node n is an alias of.
func (d *decoder) resolve(n *yaml.Node, path string, use func(*yaml.Node)) {
	if !d.spend(path, n.Line) {
		return
	}
	if n.Kind != yaml.AliasNode {
		use(n)
		return
	}
	target := n.Alias
	if target == nil {
		d.fail(path, n.Line, "alias *%s has no anchor", n.Value)
		return
	}
	if d.active[target] {
		d.fail(path, n.Line, "alias *%s refers to a value that contains it", n.Value)
		return
	}
	d.active[target] = true
	defer delete(d.active, target)
	d.resolve(target, path, use)
}

// decode stores the value of n, found at path, into v.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	d.resolve(n, path, func(n *yaml.Node) { d.decodeValue(n, path, v) })
}

func (d *decoder) decodeValue(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value is an absent one
	}
	switch {
	case v.Type() == opaqueType:
		return
	case v.Type() == durationType:
		d.duration(n, path, v)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decodeValue(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.mapping(n, path, v)
	case reflect.Slice:
		d.sequence(n, path, v)
	case reflect.Map:
		d.anyMapping(n, path, v)
	case reflect.String:
		if d.expect(n, path, yaml.ScalarNode, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Int, reflect.Int64:
		d.integer(n, path, v)
	case reflect.Bool:
		d.boolean(n, path, v)
	default:
		// Only reachable through a schema struct with a field of a kind
		// this decoder does not handle: a programming error, not bad input.
		d.fail(path, n.Line, "internal error: cannot decode into %s", v.Type())
	}
}

// expect reports whether n is of the wanted kind, and records an error if not.
func (d *decoder) expect(n *yaml.Node, path string, kind yaml.Kind, what string) bool {
	if n.Kind == kind {
		return true
	}
	d.fail(path, n.Line, "expected %s, found %s", what, describe(n))
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (d *decoder) integer(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.ScalarNode, "an integer") {
		return
	}
	var i int64
	if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.fail(path, n.Line, "%q is not an integer", n.Value)
		return
	}
	// Every number in these resources counts something.
	if i < 0 {
		d.fail(path, n.Line, "must not be negative (got %d)", i)
		return
	}
	if v.OverflowInt(i) {
		d.fail(path, n.Line, "%s is too large", n.Value)
		return
	}
	v.SetInt(i)
}

func (d *decoder) boolean(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.ScalarNode, "true or false") {
		return
	}
	var b bool
	if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(path, n.Line, "%q is not true or false", n.Value)
		return
	}
	v.SetBool(b)
}

// duration reads a YAML integer as seconds, or a string as parseDuration does.
func (d *decoder) duration(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.ScalarNode, "a duration") {
		return
	}
	var (
		dur time.Duration
		err error
	)
	switch n.ShortTag() {
	case "!!int":
		var secs int64
		switch {
		case n.Decode(&secs) == nil:
			dur, err = seconds(secs, time.Second)
		case !strings.HasPrefix(n.Value, "-"): // a negative one is zero
			err = errTooLong
		}
	case "!!str":
		dur, err = parseDuration(n.Value)
	default:
		err = errNotDuration
	}
	if err != nil {
		d.fail(path, n.Line, "%q %v", n.Value, err)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.SequenceNode, "a list") {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

// anyMapping decodes a mapping whose content Portico passes on as it is.
func (d *decoder) anyMapping(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.MappingNode, "a mapping") {
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(path, n.Line, "%s", yamlReason(err))
	}
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if !d.expect(n, path, yaml.MappingNode, "a mapping") {
		return
	}
	fields, open := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		at := joinPath(path, p.key)
		if _, ok := d.lines[at]; !ok {
			d.lines[at] = p.line
		}
		index, known := fields[p.key]
		switch {
		case known:
			d.decode(p.value, at, v.FieldByIndex(index))
		case !open:
			d.unknown = append(d.unknown, unknownField{path: at, line: p.line, suggestion: closest(p.key, fields)})
		}
	}
}

// unknownField is a key that a schema struct does not name.
type unknownField struct {
	path       string
	line       int
	suggestion string // a key of the struct it may be a misspelling of, or ""
}

// closest returns the key of fields that key is most likely a misspelling
// of: one or two typing slips away (a letter missing, extra, wrong or two
// swapped), and a small part of key; "" when none is.
func closest(key string, fields map[string][]int) string {
	best, bestDist := "", 3
	for f := range fields {
		d := editDistance(strings.ToLower(key), strings.ToLower(f))
		if d < bestDist && d*3 <= len(key) || d == bestDist && d*3 <= len(key) && f < best {
			best, bestDist = f, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps of
// adjacent letters that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	// Three rows of the table: i-2, i-1 and i.
	prev2, prev, cur := make([]int, len(y)+1), make([]int, len(y)+1), make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(y)]
}

// pair is one key and value of a mapping, after merge keys are applied.
type pair struct {
	key   string
	value *yaml.Node
	line  int
}

// pairs lists the keys and values of mapping n. Keys merged in with "<<"
// come after the mapping's own and only where it does not define them, as
// YAML specifies; a key defined twice by the mapping itself is an error.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var (
		out    []pair
		merges []*yaml.Node
	)
	seen := map[string]bool{}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, value := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		switch {
		case k.Kind != yaml.ScalarNode:
			d.fail(path, k.Line, "mapping keys must be strings, found %s", describe(k))
		case k.ShortTag() == "!!merge":
			merges = append(merges, value)
		case seen[k.Value]:
			d.fail(joinPath(path, k.Value), k.Line, "defined twice (first on line %d)", firstLine[k.Value])
		default:
			seen[k.Value] = true
			firstLine[k.Value] = k.Line
			out = append(out, pair{key: k.Value, value: value, line: k.Line})
		}
	}
	for _, m := range merges {
		d.mergeSources(m, path, func(src *yaml.Node) {
			for _, p := range d.pairs(src, path) {
				if !seen[p.key] {
					seen[p.key] = true
					out = append(out, p)
				}
			}
		})
	}
	return out
}

// mergeSources calls use with each mapping named by the value of a "<<" key.
func (d *decoder) mergeSources(n *yaml.Node, path string, use func(*yaml.Node)) {
	d.resolve(n, path, func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			use(n)
		case yaml.SequenceNode:
			for _, item := range n.Content {
				d.resolve(item, path, func(item *yaml.Node) {
					if d.expect(item, path, yaml.MappingNode, "a mapping to merge") {
						use(item)
					}
				})
			}
		default:
			d.fail(path, n.Line, "expected a mapping or a list of mappings to merge, found %s", describe(n))
		}
	})
}

// fieldsOf maps the YAML keys of a schema struct to field indexes; open
// reports whether the struct accepts other keys silently.
func fieldsOf(t reflect.Type) (fields map[string][]int, open bool) {
	fields = map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == anyOtherFieldsType {
			open = true
			continue
		}
		name, option, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if option == "inline" {
			inner, innerOpen := fieldsOf(f.Type)
			for key, index := range inner {
				fields[key] = append([]int{i}, index...)
			}
			open = open || innerOpen
			continue
		}
		fields[name] = []int{i}
	}
	return fields, open
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var listIndex = regexp.MustCompile(`\[[0-9]+\]`)

// genericPath drops list indexes so that a field unknown in every item of a
// list is reported once.
func genericPath(path string) string {
	return listIndex.ReplaceAllString(path, "[]")
}

// yamlReason turns a yaml.v3 error into a one-line reason.
func yamlReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
