package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The API groups of Educates resources, current and former.
var educatesGroups = []string{"training.educates.dev", "training.eduk8s.io"}

// Load reads the definitions at path: a YAML file, which may hold several
// documents, or a directory, whose *.yaml and *.yml files are read
// recursively in path order. Exactly one TrainingPortal is required, and
// every Workshop it lists must be defined. The error, if any, lists every
// problem found, each naming its file, line and field.
func Load(path string) (*Definitions, error) {
	files, err := definitionFiles(path)
	if err != nil {
		return nil, err
	}
	l := &loader{workshops: map[string]*Workshop{}}
	for _, file := range files {
		l.loadFile(file)
	}
	return l.definitions(path, directoryHint(path))
}

// Document is one definition held in memory: a resource read from a
// cluster rather than from a file.
type Document struct {
	// Name stands for the file in errors and warnings
	// (TrainingPortal/portal, say).
	Name string
	// Data is YAML or JSON, one or several documents.
	Data []byte
}

// Parse reads definitions from documents as Load reads them from files,
// with the same rules and errors; source names them all in errors about
// the whole set (no TrainingPortal, a Workshop missing).
func Parse(source string, docs ...Document) (*Definitions, error) {
	l := &loader{workshops: map[string]*Workshop{}}
	for _, d := range docs {
		l.loadData(d.Name, d.Data)
	}
	return l.definitions(source, "")
}

// definitionFiles lists the files Load reads for path.
func definitionFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case e.IsDir() && p != path && strings.HasPrefix(e.Name(), "."):
			return filepath.SkipDir // .git, .github: not definitions
		case e.IsDir():
			return nil
		}
		if ext := strings.ToLower(filepath.Ext(p)); ext == ".yaml" || ext == ".yml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no .yaml or .yml files", path)
	}
	slices.Sort(files)
	return files, nil
}

// loader accumulates what the files of one Load hold.
type loader struct {
	portal        *Portal
	portalDecoder *decoder // its field lines serve the checks made at the end
	workshops     map[string]*Workshop
	warnings      []string
	unused        []error
	misspelled    []error // the unused fields that are a slip away from a known one
	errs          []error
	unreadable    bool // some file could not be parsed, so what it held is unknown
}

func (l *loader) warn(format string, args ...any) {
	l.warnings = append(l.warnings, fmt.Sprintf(format, args...))
}

func (l *loader) loadFile(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		l.errs = append(l.errs, err)
		l.unreadable = true
		return
	}
	l.loadData(file, data)
}

func (l *loader) loadData(file string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if !errors.Is(err, io.EOF) {
				l.errs = append(l.errs, fmt.Errorf("%s: invalid YAML: %s", file, yamlReason(err)))
				l.unreadable = true
			}
			return
		}
		l.loadDocument(file, n, &doc)
	}
}

func (l *loader) loadDocument(file string, n int, doc *yaml.Node) {
	if len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return // an empty document, as between two "---"
	}
	if root.Kind != yaml.MappingNode {
		l.warn("%s:%d: document %d is not a resource (expected a mapping); skipped", file, root.Line, n)
		return
	}
	apiVersion, kind := scalarAt(root, "apiVersion"), scalarAt(root, "kind")
	if kind != "TrainingPortal" && kind != "Workshop" {
		if kind == "" {
			kind = "(none)"
		}
		l.warn("%s:%d: document %d: kind %s is neither TrainingPortal nor Workshop; skipped", file, root.Line, n, kind)
		return
	}
	if group, _, _ := strings.Cut(apiVersion, "/"); !slices.Contains(educatesGroups, group) {
		l.warn("%s:%d: document %d: %s of apiVersion %q is not an Educates resource (group %s); skipped",
			file, root.Line, n, kind, apiVersion, educatesGroups[0])
		return
	}
	d := newDecoder(file)
	if kind == "TrainingPortal" {
		l.addPortal(d, root)
	} else {
		l.addWorkshop(d, root)
	}
}

func (l *loader) addPortal(d *decoder, root *yaml.Node) {
	var r trainingPortalResource
	d.decode(root, "", reflect.ValueOf(&r).Elem())
	p := d.portal(&r)
	l.collect(d, "TrainingPortal", p.Name)
	if l.portal != nil {
		l.errs = append(l.errs, d.errorAt("", "a second TrainingPortal, %s; only one is allowed (the first is %s in %s)",
			p.Name, l.portal.Name, l.portal.File))
		return
	}
	l.portal, l.portalDecoder = &p, d
}

func (l *loader) addWorkshop(d *decoder, root *yaml.Node) {
	var r workshopResource
	d.decode(root, "", reflect.ValueOf(&r).Elem())
	w := d.workshop(&r, valueAt(root, "spec"))
	l.collect(d, "Workshop", w.Name)
	if first, dup := l.workshops[w.Name]; dup {
		l.errs = append(l.errs, d.errorAt("metadata.name", "Workshop %s is already defined in %s", w.Name, first.File))
		return
	}
	l.workshops[w.Name] = w
}

// collect takes the errors and unused fields d found in a document.
func (l *loader) collect(d *decoder, kind, name string) {
	l.errs = append(l.errs, d.errs...)
	if len(d.unknown) > 0 {
		var fields []string
		for _, f := range d.unknown {
			reason := "not a field Portico uses"
			field := genericPath(f.path)
			if f.suggestion != "" {
				reason += fmt.Sprintf("; did you mean %s?", f.suggestion)
				field += fmt.Sprintf(" (did you mean %s?)", f.suggestion)
			}
			e := &FieldError{File: d.file, Line: f.line, Path: f.path, Reason: reason}
			l.unused = append(l.unused, e)
			if f.suggestion != "" {
				l.misspelled = append(l.misspelled, e)
			}
			if !slices.Contains(fields, field) {
				fields = append(fields, field)
			}
		}
		l.warn("%s: %s %s: fields not used by Portico: %s", d.file, kind, name, strings.Join(fields, ", "))
	}
}

// definitions checks what the loader holds as a whole; hint is added to
// the error about a missing Workshop.
func (l *loader) definitions(path, hint string) (*Definitions, error) {
	switch {
	case l.unreadable:
		// What is missing may be in the file that could not be read.
	case l.portal == nil:
		msg := fmt.Sprintf("%s: no TrainingPortal found", path)
		if len(l.warnings) > 0 {
			msg += " (" + strings.Join(l.warnings, "; ") + ")"
		}
		l.errs = append(l.errs, errors.New(msg))
	default:
		for _, e := range l.portal.Entries {
			if _, ok := l.workshops[e.Name]; !ok {
				l.errs = append(l.errs, l.portalDecoder.errorAt(fmt.Sprintf("spec.workshops[%d].name", e.Position-1),
					"no Workshop named %q in %s%s", e.Name, path, hint))
			}
		}
	}
	if len(l.errs) > 0 {
		// A misspelled field is often the cause of the errors (capacty
		// leaves the capacity 0, below the reserve): name it with them.
		return nil, errors.Join(append(l.errs, l.misspelled...)...)
	}
	return &Definitions{Portal: *l.portal, Workshops: l.workshops, Warnings: l.warnings, Unused: l.unused}, nil
}

// directoryHint is what to add to "no Workshop named" when path is a file
// with other definition files beside it: the Workshops are often there
// (examples/portal.yaml and examples/lab-hello-terminal/).
func directoryHint(path string) string {
	dir := filepath.Dir(path)
	if info, err := os.Stat(path); err != nil || info.IsDir() {
		return ""
	}
	if files, err := definitionFiles(dir); err != nil || len(files) < 2 {
		return ""
	}
	return fmt.Sprintf(" (only this file was read: to read the definitions beside it too, pass its directory, %s)", dir)
}

// valueAt returns the value of key in mapping n, or nil.
func valueAt(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == key {
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// scalarAt returns the string value of key in mapping n, or "".
func scalarAt(n *yaml.Node, key string) string {
	if v := valueAt(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}
