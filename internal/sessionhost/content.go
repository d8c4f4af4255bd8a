package sessionhost

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// ContentDir holds the workshop's instructions: Markdown pages, each a
// single file (<page>.md) or a bundle (<page>/index.md, with the files it
// shows next to it), ordered by their front matter weight, then name.
// Directories without an index.md are sections whose pages are listed too
// (with _index.md as the section's own page).
const ContentDir = "workshop/content"

// maxPageBytes bounds one Markdown page.
const maxPageBytes = 4 << 20

// page is one page of the instructions.
type page struct {
	// Name is its path under workshop/content/ in URLs: "01-welcome",
	// "setup" for setup/index.md, "part-1/intro" in a section.
	Name   string
	Title  string
	Weight float64
	// weighted is false without a weight: such pages come after the
	// weighted ones, as in Hugo.
	weighted bool
	// file is the Markdown file, relative to the content directory.
	file string
	body []byte // without its front matter
}

// frontMatter is what the host reads of a page's front matter.
type frontMatter struct {
	Title  string   `yaml:"title"`
	Weight *float64 `yaml:"weight"`
}

// loadPages reads the pages of the content directory of home, in order.
func loadPages(home string) ([]page, error) {
	dir := filepath.Join(home, ContentDir)
	var pages []page
	if err := collectPages(dir, "", 0, &pages); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	slices.SortFunc(pages, func(a, b page) int {
		switch {
		case a.weighted != b.weighted:
			if a.weighted {
				return -1
			}
			return 1
		case a.Weight < b.Weight:
			return -1
		case a.Weight > b.Weight:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pages, nil
}

func collectPages(root, rel string, depth int, pages *[]page) error {
	if depth > 8 {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := path.Join(rel, name)
		if e.IsDir() {
			switch {
			case exists(filepath.Join(root, filepath.FromSlash(p), "index.md")):
				if err := addPage(root, p, p+"/index.md", pages); err != nil {
					return err
				}
			default:
				if exists(filepath.Join(root, filepath.FromSlash(p), "_index.md")) {
					if err := addPage(root, p, p+"/_index.md", pages); err != nil {
						return err
					}
				}
				if err := collectPages(root, p, depth+1, pages); err != nil {
					return err
				}
			}
			continue
		}
		if !strings.HasSuffix(name, ".md") || !e.Type().IsRegular() {
			continue
		}
		if rel != "" && (name == "index.md" || name == "_index.md") {
			continue // the page of the directory, added above
		}
		if err := addPage(root, strings.TrimSuffix(p, ".md"), p, pages); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func addPage(root, name, file string, pages *[]page) error {
	b, err := readLimited(filepath.Join(root, filepath.FromSlash(file)), maxPageBytes)
	if err != nil {
		return err
	}
	fm, body, err := splitFrontMatter(b)
	if err != nil {
		return fmt.Errorf("%s/%s: front matter: %w", ContentDir, file, err)
	}
	pg := page{Name: name, Title: fm.Title, file: file, body: body}
	if fm.Weight != nil {
		pg.Weight, pg.weighted = *fm.Weight, true
	}
	if pg.Title == "" {
		pg.Title = titleOf(path.Base(name))
	}
	*pages = append(*pages, pg)
	return nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}

// splitFrontMatter separates YAML front matter (between --- lines at the
// very start) from the Markdown body. A page without one has none.
func splitFrontMatter(b []byte) (frontMatter, []byte, error) {
	var fm frontMatter
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	rest, ok := cutLine(b, "---")
	if !ok {
		return fm, b, nil
	}
	for i := 0; i < len(rest); {
		end := bytes.IndexByte(rest[i:], '\n')
		line := rest[i:]
		next := len(rest)
		if end >= 0 {
			line, next = rest[i:i+end], i+end+1
		}
		if t := strings.TrimRight(string(line), " \t\r"); t == "---" || t == "..." {
			if err := yaml.Unmarshal(rest[:i], &fm); err != nil {
				return fm, nil, err
			}
			return fm, rest[next:], nil
		}
		i = next
	}
	return fm, nil, errors.New("no closing ---")
}

// cutLine cuts a first line equal to want (ignoring trailing blanks).
func cutLine(b []byte, want string) ([]byte, bool) {
	line, rest, found := bytes.Cut(b, []byte("\n"))
	if !found || strings.TrimRight(string(line), " \t\r") != want {
		return nil, false
	}
	return rest, true
}

// titleOf makes a title of a page name without one: "01-getting_started"
// becomes "Getting started".
func titleOf(name string) string {
	s := strings.TrimLeftFunc(name, func(r rune) bool { return unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' })
	if s == "" {
		s = name
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' }), " ")
	r := []rune(s)
	if len(r) > 0 {
		r[0] = unicode.ToUpper(r[0])
	}
	return string(r)
}
