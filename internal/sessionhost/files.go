package sessionhost

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Workshop files come from the workshop's spec.workshop.files, in the
// vendir-style shape of Educates:
//
//	- path: .                      # destination, relative to the home
//	  includePaths: [/workshop/**] # globs over the source's paths
//	  excludePaths: [/**/*.bak]
//	  newRootPath: repo-main       # a subdirectory of the source as its root
//	  directory: {path: .}         # relative to the workshop definition
//	  inline: {paths: {README.md: "..."}}
//	  git: {url: ..., ref: origin/main}
//	  http: {url: .../files.tar.gz, sha256: ...}
//
// Everything is written through an os.Root on the home, so no name in an
// archive, a repository or a definition can reach outside it, even through
// a symbolic link.

// Limits of what one session unpacks, against archive bombs.
const (
	maxUnpackBytes   = 2 << 30
	maxUnpackEntries = 100_000
	maxDownloadBytes = 1 << 30
	downloadTimeout  = 5 * time.Minute
)

// filesItem is one item of spec.workshop.files.
type filesItem struct {
	Path         string   `json:"path"`
	IncludePaths []string `json:"includePaths"`
	ExcludePaths []string `json:"excludePaths"`
	NewRootPath  string   `json:"newRootPath"`
	Directory    *struct {
		Path string `json:"path"`
	} `json:"directory"`
	Inline *struct {
		Paths map[string]string `json:"paths"`
	} `json:"inline"`
	Git *struct {
		URL string `json:"url"`
		Ref string `json:"ref"`
	} `json:"git"`
	HTTP *struct {
		URL    string `json:"url"`
		SHA256 string `json:"sha256"`
	} `json:"http"`
}

var (
	itemFields  = []string{"path", "includePaths", "excludePaths", "newRootPath"}
	itemSources = []string{"directory", "inline", "git", "http"}
	// remoteSources are the sources of itemSources that fetch from the
	// network.
	remoteSources = []string{"git", "http"}
	errTraversal  = errors.New("path escapes the destination")
)

func parseFilesItem(raw map[string]any) (filesItem, string, error) {
	var source string
	for key := range raw {
		switch {
		case slices.Contains(itemSources, key):
			if source != "" {
				return filesItem{}, "", fmt.Errorf("both %s and %s: an item has one source", source, key)
			}
			source = key
		case !slices.Contains(itemFields, key):
			return filesItem{}, "", fmt.Errorf("%s: not supported (sources: %s)", key, strings.Join(itemSources, ", "))
		}
	}
	if source == "" {
		return filesItem{}, "", fmt.Errorf("no source (one of %s)", strings.Join(itemSources, ", "))
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return filesItem{}, "", err
	}
	var it filesItem
	if err := json.Unmarshal(b, &it); err != nil {
		return filesItem{}, "", fmt.Errorf("malformed item: %w", err)
	}
	return it, source, nil
}

// unpackWorkshopFiles writes the workshop files of cfg into home.
func unpackWorkshopFiles(ctx context.Context, cfg Config, home string) error {
	if len(cfg.WorkshopFiles) == 0 {
		return nil
	}
	root, err := os.OpenRoot(home)
	if err != nil {
		return err
	}
	defer root.Close()
	u := &unpacker{root: root}
	for i, raw := range cfg.WorkshopFiles {
		if err := u.item(ctx, cfg.WorkshopDir, raw); err != nil {
			return fmt.Errorf("workshop files, item %d: %w", i+1, err)
		}
	}
	return nil
}

type unpacker struct {
	root    *os.Root
	bytes   int64
	entries int
}

func (u *unpacker) item(ctx context.Context, workshopDir string, raw map[string]any) error {
	it, source, err := parseFilesItem(raw)
	if err != nil {
		return err
	}
	dest, err := cleanRelative(it.Path)
	if err != nil {
		return fmt.Errorf("path %q: %w", it.Path, err)
	}
	newRoot := ""
	if it.NewRootPath != "" {
		if newRoot, err = cleanRelative(it.NewRootPath); err != nil {
			return fmt.Errorf("newRootPath %q: %w", it.NewRootPath, err)
		}
	}
	s := &sink{u: u, it: it, dest: dest, newRoot: newRoot}
	switch source {
	case "directory":
		if it.Directory == nil || it.Directory.Path == "" {
			return errors.New("directory.path: must not be empty")
		}
		dir := it.Directory.Path
		if !filepath.IsAbs(dir) {
			if workshopDir == "" {
				return fmt.Errorf("directory.path %q: relative, and the session has no workshop directory", dir)
			}
			dir = filepath.Join(workshopDir, dir)
		}
		if err := walkDirectory(dir, s, false); err != nil {
			return fmt.Errorf("directory %s: %w", dir, err)
		}
	case "inline":
		if it.Inline == nil {
			return errors.New("inline.paths: missing")
		}
		names := make([]string, 0, len(it.Inline.Paths))
		for name := range it.Inline.Paths {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			content := it.Inline.Paths[name]
			err := s.put(entry{name: name, mode: 0o644, open: func() (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(content)), nil
			}})
			if err != nil {
				return fmt.Errorf("inline: %w", err)
			}
		}
	case "git":
		if it.Git == nil || it.Git.URL == "" {
			return errors.New("git.url: must not be empty")
		}
		if err := gitSource(ctx, it.Git.URL, it.Git.Ref, s); err != nil {
			return fmt.Errorf("git %s: %w", redactURL(it.Git.URL), err)
		}
	case "http":
		if it.HTTP == nil || it.HTTP.URL == "" {
			return errors.New("http.url: must not be empty")
		}
		if err := httpSource(ctx, it.HTTP.URL, it.HTTP.SHA256, s); err != nil {
			return fmt.Errorf("http %s: %w", redactURL(it.HTTP.URL), err)
		}
	}
	return nil
}

// entry is one file, directory or link of a source.
type entry struct {
	name   string // slash-separated, relative to the source root
	dir    bool
	link   string // target of a symbolic link
	hard   string // name of the entry a hard link repeats
	mode   fs.FileMode
	open   func() (io.ReadCloser, error)
	reader io.Reader // instead of open, for streamed archives
}

// sink filters the entries of one item and writes them into the home.
type sink struct {
	u       *unpacker
	it      filesItem
	dest    string // relative to the home; "." for the home itself
	newRoot string // "" or a cleaned relative path
}

// target maps the name of an entry to its path in the home; ok is false
// for an entry outside newRootPath or not selected by the globs.
func (s *sink) target(name string) (target string, ok bool, err error) {
	clean, err := cleanRelative(name)
	if err != nil {
		return "", false, err
	}
	if s.newRoot != "" {
		rest, found := strings.CutPrefix(clean, s.newRoot)
		if !found || rest != "" && rest[0] != '/' {
			return "", false, nil
		}
		clean = strings.TrimPrefix(rest, "/")
	}
	if clean == "" || clean == "." || !s.selected(clean) {
		return "", false, nil
	}
	target = path.Join(s.dest, clean)
	if target == StateDir || strings.HasPrefix(target, StateDir+"/") {
		return "", false, fmt.Errorf("%q: %s is reserved for the session host", name, StateDir)
	}
	return target, true, nil
}

func (s *sink) put(e entry) error {
	target, ok, err := s.target(e.name)
	if err != nil || !ok {
		return err
	}
	if s.u.entries++; s.u.entries > maxUnpackEntries {
		return fmt.Errorf("more than %d entries", maxUnpackEntries)
	}
	root := s.u.root
	if e.dir {
		return root.MkdirAll(target, 0o755)
	}
	if err := root.MkdirAll(path.Dir(target), 0o755); err != nil {
		return err
	}
	// Replace what is there, without following a link that is there.
	if fi, err := root.Lstat(target); err == nil && (fi.Mode()&fs.ModeSymlink != 0 || e.link != "" || e.hard != "") {
		if err := root.Remove(target); err != nil {
			return err
		}
	}
	switch {
	case e.link != "":
		// The link must stay inside the home, whoever follows it later.
		if path.IsAbs(e.link) || !local(path.Join(path.Dir(target), e.link)) {
			return fmt.Errorf("%q: symbolic link to %q: %w", e.name, e.link, errTraversal)
		}
		return root.Symlink(e.link, target)
	case e.hard != "":
		old, ok, err := s.target(e.hard)
		if err != nil {
			return fmt.Errorf("%q: hard link to %q: %w", e.name, e.hard, err)
		}
		if !ok {
			return nil // a link to a file left out
		}
		return root.Link(old, target)
	}
	r := e.reader
	if r == nil {
		rc, err := e.open()
		if err != nil {
			return err
		}
		defer rc.Close()
		r = rc
	}
	mode := fs.FileMode(0o644)
	if e.mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	budget := maxUnpackBytes - s.u.bytes
	n, err := io.Copy(f, io.LimitReader(r, budget+1))
	s.u.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%q: %w", e.name, err)
	}
	if n > budget {
		return fmt.Errorf("more than %d bytes", int64(maxUnpackBytes))
	}
	return root.Chmod(target, mode)
}

// selected applies includePaths and excludePaths to a cleaned name.
func (s *sink) selected(name string) bool {
	if len(s.it.IncludePaths) > 0 && !slices.ContainsFunc(s.it.IncludePaths, func(p string) bool { return matchGlob(p, name) }) {
		return false
	}
	return !slices.ContainsFunc(s.it.ExcludePaths, func(p string) bool { return matchGlob(p, name) })
}

// cleanRelative cleans a slash-separated relative path, refusing absolute
// paths and paths that climb out with "..". "" and "." are ".".
func cleanRelative(name string) (string, error) {
	if strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%q: invalid name", name)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("%q: absolute: %w", name, errTraversal)
	}
	clean := path.Clean("./" + name)
	if !local(clean) {
		return "", fmt.Errorf("%q: %w", name, errTraversal)
	}
	return clean, nil
}

// local reports whether a cleaned relative path stays where it starts.
func local(clean string) bool {
	return clean != ".." && !strings.HasPrefix(clean, "../") && !path.IsAbs(clean)
}

// matchGlob matches a slash-separated name against a vendir-style glob:
// a leading / anchors at the source root (all patterns are anchored there),
// ** matches any number of path elements, and *, ? and [...] match within
// one element as in path.Match.
func matchGlob(pattern, name string) bool {
	pattern = strings.Trim(pattern, "/")
	if pattern == "" {
		return false
	}
	return matchElems(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchElems(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			for len(pattern) > 0 && pattern[0] == "**" {
				pattern = pattern[1:]
			}
			if len(pattern) == 0 {
				return true
			}
			for i := range len(name) + 1 {
				if matchElems(pattern, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pattern[0], name[0]); err != nil || !ok {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}

// walkDirectory sends the tree under dir to s. skipGit leaves out the .git
// directory of a clone.
func walkDirectory(dir string, s *sink, skipGit bool) error {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skipGit && d.IsDir() && rel == ".git" {
			return filepath.SkipDir
		}
		switch t := d.Type(); {
		case t.IsDir():
			return s.put(entry{name: rel, dir: true})
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return s.put(entry{name: rel, link: filepath.ToSlash(target)})
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return s.put(entry{name: rel, mode: info.Mode(), open: func() (io.ReadCloser, error) { return os.Open(p) }})
		}
		return nil // devices, sockets, pipes
	})
}

// gitSource clones url with the git binary, checks ref out and sends the
// work tree to s.
func gitSource(ctx context.Context, repo, ref string, s *sink) error {
	if strings.HasPrefix(repo, "-") || strings.HasPrefix(ref, "-") {
		return errors.New("invalid url or ref")
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("the git binary is needed (apt-get install git): %w", err)
	}
	tmp, err := os.MkdirTemp("", "portico-git-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	work := filepath.Join(tmp, "work")
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, gitPath, args...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true")
		cmd.Dir = tmp
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("git %s: %w: %s", args[0], err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := git("clone", "--quiet", "--", repo, work); err != nil {
		return err
	}
	if ref != "" {
		if err := git("-C", work, "checkout", "--quiet", ref, "--"); err != nil {
			return err
		}
	}
	return walkDirectory(work, s, true)
}

// httpSource downloads url and unpacks it: a tar archive (possibly
// gzipped) or a zip archive; anything else is one file named after the
// last element of the URL path.
func httpSource(ctx context.Context, rawURL, sum string, s *sink) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("not an http or https URL")
	}
	ctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: %s", resp.Status)
	}
	tmp, err := os.CreateTemp("", "portico-download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, hash), io.LimitReader(resp.Body, maxDownloadBytes+1))
	if err != nil {
		return err
	}
	if n > maxDownloadBytes {
		return fmt.Errorf("larger than %d bytes", maxDownloadBytes)
	}
	if sum != "" && !strings.EqualFold(hex.EncodeToString(hash.Sum(nil)), sum) {
		return errors.New("sha256 does not match")
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	head := make([]byte, 512)
	m, _ := io.ReadFull(tmp, head)
	head = head[:m]
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	lower := strings.ToLower(u.Path)
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return unzip(tmp, n, s)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bufio.NewReader(tmp))
		if err != nil {
			return err
		}
		defer zr.Close()
		return untar(zr, s)
	case len(head) >= 262 && string(head[257:262]) == "ustar", strings.HasSuffix(lower, ".tar"):
		return untar(tmp, s)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return errors.New("neither an archive nor a file name in the URL")
	}
	return s.put(entry{name: name, mode: 0o644, reader: tmp})
}

func untar(r io.Reader, s *sink) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		e := entry{name: h.Name, mode: fs.FileMode(h.Mode)}
		switch h.Typeflag {
		case tar.TypeDir:
			e.dir = true
		case tar.TypeReg, tar.TypeRegA:
			e.reader = tr
		case tar.TypeSymlink:
			e.link = h.Linkname
		case tar.TypeLink:
			e.hard = h.Linkname
		default:
			continue // pax headers are handled by the reader; devices are not files
		}
		if err := s.put(e); err != nil {
			return err
		}
	}
}

func unzip(f *os.File, size int64, s *sink) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	for _, zf := range zr.File {
		mode := zf.Mode()
		e := entry{name: zf.Name, mode: mode}
		switch {
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			e.dir = true
		case mode&fs.ModeSymlink != 0:
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("zip: %w", err)
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return fmt.Errorf("zip: %w", err)
			}
			e.link = string(target)
		case mode.IsRegular():
			e.open = func() (io.ReadCloser, error) { return zf.Open() }
		default:
			continue
		}
		if err := s.put(e); err != nil {
			return err
		}
	}
	return nil
}

// redactURL drops a password from a URL for messages; what does not parse
// as a URL, such as git's user@host:path, is returned as it is.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
