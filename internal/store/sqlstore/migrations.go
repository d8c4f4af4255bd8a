package sqlstore

import (
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Migration is one embedded schema change, named by its file.
type Migration struct {
	Version string // file name without .sql, e.g. 0001_initial
	SQL     string
}

// Migrations reads the *.sql files of dir in fsys, in name order: the order
// in which each store applies them.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: strings.TrimSuffix(path.Base(name), ".sql"), SQL: string(body)})
	}
	return out, nil
}
