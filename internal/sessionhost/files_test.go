package sessionhost

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unpack unpacks items into a fresh home and returns it.
func unpack(t *testing.T, workshopDir string, items ...map[string]any) (string, error) {
	t.Helper()
	home := t.TempDir()
	err := unpackWorkshopFiles(t.Context(), Config{WorkshopDir: workshopDir, WorkshopFiles: items}, home)
	return home, err
}

// checkFiles checks the content of files under home; "" means absent.
func checkFiles(t *testing.T, home string, files map[string]string) {
	t.Helper()
	for name, want := range files {
		b, err := os.ReadFile(filepath.Join(home, filepath.FromSlash(name)))
		switch {
		case want == "" && err == nil:
			t.Errorf("%s exists", name)
		case want != "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && string(b) != want:
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"/workshop/**", "workshop", true},
		{"/workshop/**", "workshop/content/a.md", true},
		{"/workshop/**", "workshopx/a", false},
		{"/workshop/**", "exercises/a", false},
		{"workshop/**", "workshop/a", true},
		{"/**/*.md", "a.md", true},
		{"/**/*.md", "x/y/a.md", true},
		{"/**/*.md", "x/y/a.txt", false},
		{"/README.md", "README.md", true},
		{"/README.md", "x/README.md", false},
		{"*.md", "x/a.md", false},
		{"/a/**/c", "a/c", true},
		{"/a/**/c", "a/b/b/c", true},
		{"/a/?", "a/b", true},
		{"/a/[", "a/[", false}, // bad pattern matches nothing
		{"/", "a", false},
	} {
		if got := matchGlob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestFilesDirectory(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"workshop.yaml":                 "kind: Workshop",
		"workshop/content/01.md":        "page",
		"workshop/content/old.bak":      "backup",
		"workshop/setup.d/01-setup.sh":  "#!/bin/sh\n",
		"exercises/hello.txt":           "hello",
		"exercises/nested/deep/file.go": "package deep",
		"other/x":                       "x",
	})
	os.Chmod(filepath.Join(src, "workshop/setup.d/01-setup.sh"), 0o755)
	os.Symlink("hello.txt", filepath.Join(src, "exercises/link"))

	home, err := unpack(t, src, map[string]any{
		"directory":    map[string]any{"path": "."},
		"includePaths": []any{"/workshop/**", "/exercises/**"},
		"excludePaths": []any{"/**/*.bak"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, home, map[string]string{
		"workshop/content/01.md":        "page",
		"exercises/hello.txt":           "hello",
		"exercises/link":                "hello",
		"exercises/nested/deep/file.go": "package deep",
		"workshop/content/old.bak":      "",
		"workshop.yaml":                 "",
		"other/x":                       "",
	})
	fi, err := os.Stat(filepath.Join(home, "workshop/setup.d/01-setup.sh"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("script mode: %v %v", fi, err)
	}

	// A destination path and a new root.
	home, err = unpack(t, src, map[string]any{
		"directory":   map[string]any{"path": "exercises"},
		"newRootPath": "nested",
		"path":        "lab",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, home, map[string]string{"lab/deep/file.go": "package deep", "lab/hello.txt": ""})

	// A missing directory fails with its name.
	if _, err := unpack(t, src, map[string]any{"directory": map[string]any{"path": "nowhere"}}); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestFilesInline(t *testing.T) {
	home, err := unpack(t, "", map[string]any{
		"inline": map[string]any{"paths": map[string]any{"README.md": "# Read me", "sub/dir/a.txt": "a"}},
		"path":   "docs",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, home, map[string]string{"docs/README.md": "# Read me", "docs/sub/dir/a.txt": "a"})

	for _, bad := range []map[string]any{
		{"inline": map[string]any{"paths": map[string]any{"../escape": "x"}}},
		{"inline": map[string]any{"paths": map[string]any{"/etc/escape": "x"}}},
		{"inline": map[string]any{"paths": map[string]any{"a/../../escape": "x"}}},
		{"inline": map[string]any{"paths": map[string]any{"x": "x"}}, "path": "../.."},
		{"inline": map[string]any{"paths": map[string]any{"session.json": "{}"}}, "path": ".portico"},
		{"inline": map[string]any{"paths": map[string]any{"x": "x"}}, "image": map[string]any{"url": "x"}},
		{"image": map[string]any{"url": "x"}},
		{"path": "."},
		{"inline": map[string]any{"paths": map[string]any{"x": "x"}}, "git": map[string]any{"url": "x"}},
	} {
		parent := t.TempDir()
		home := filepath.Join(parent, "home")
		os.Mkdir(home, 0o700)
		err := unpackWorkshopFiles(t.Context(), Config{WorkshopFiles: []map[string]any{bad}}, home)
		if err == nil {
			t.Errorf("%v: no error", bad)
		}
		if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
			t.Errorf("%v: escaped", bad)
		}
	}
}

type archiveEntry struct {
	name, body, link string
	dir, symlink     bool
	mode             int64
}

func tarGz(t *testing.T, gz bool, entries ...archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var tw *tar.Writer
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(&buf)
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.mode != 0 {
			h.Mode = e.mode
		}
		switch {
		case e.dir:
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		case e.symlink:
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func zipOf(t *testing.T, entries ...archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case e.dir:
			h.Name = strings.TrimSuffix(e.name, "/") + "/"
			h.SetMode(0o755 | os.ModeDir)
		case e.symlink:
			h.SetMode(0o777 | os.ModeSymlink)
			e.body = e.link
		case e.mode != 0:
			h.SetMode(os.FileMode(e.mode))
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	zw.Close()
	return buf.Bytes()
}

func TestFilesHTTP(t *testing.T) {
	good := []archiveEntry{
		{name: "repo-main/", dir: true},
		{name: "repo-main/workshop/content/01.md", body: "page"},
		{name: "repo-main/workshop/setup.d/01.sh", body: "#!/bin/sh\n", mode: 0o755},
		{name: "repo-main/exercises/a.txt", body: "a"},
		{name: "repo-main/exercises/link", symlink: true, link: "a.txt"},
		{name: "repo-main/ignored.txt", body: "no"},
	}
	sum := sha256.Sum256(tarGz(t, true, good...))
	archives := map[string][]byte{
		"/files.tar.gz":     tarGz(t, true, good...),
		"/files.tgz":        tarGz(t, true, good...),
		"/files.tar":        tarGz(t, false, good...),
		"/files.zip":        zipOf(t, good...),
		"/notes.txt":        []byte("plain file"),
		"/evil.tar.gz":      tarGz(t, true, archiveEntry{name: "../../evil", body: "x"}),
		"/abs.tar":          tarGz(t, false, archiveEntry{name: "/tmp/evil", body: "x"}),
		"/evil.zip":         zipOf(t, archiveEntry{name: "../evil", body: "x"}),
		"/link.tar.gz":      tarGz(t, true, archiveEntry{name: "out", symlink: true, link: "../../.."}, archiveEntry{name: "out/evil", body: "x"}),
		"/abslink.zip":      zipOf(t, archiveEntry{name: "etc", symlink: true, link: "/etc"}),
		"/state.tar.gz":     tarGz(t, true, archiveEntry{name: ".portico/session.json", body: "{}"}),
		"/throughlink.tar":  tarGz(t, false, archiveEntry{name: "d", symlink: true, link: "."}, archiveEntry{name: "d/../../evil", body: "x"}),
		"/corrupt.tar.gz":   append([]byte{0x1f, 0x8b}, "not gzip"...),
		"/truncated.tar.gz": tarGz(t, true, good...)[:60],
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := archives[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()

	for _, name := range []string{"/files.tar.gz", "/files.tgz", "/files.tar", "/files.zip"} {
		t.Run(name, func(t *testing.T) {
			home, err := unpack(t, "", map[string]any{
				"http":         map[string]any{"url": srv.URL + name},
				"newRootPath":  "repo-main",
				"includePaths": []any{"/workshop/**", "/exercises/**"},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkFiles(t, home, map[string]string{
				"workshop/content/01.md": "page", "exercises/a.txt": "a", "exercises/link": "a", "ignored.txt": "", "repo-main/ignored.txt": "",
			})
			fi, err := os.Stat(filepath.Join(home, "workshop/setup.d/01.sh"))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("script mode: %v %v", fi, err)
			}
		})
	}

	home, err := unpack(t, "", map[string]any{"http": map[string]any{"url": srv.URL + "/notes.txt"}, "path": "docs"})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, home, map[string]string{"docs/notes.txt": "plain file"})

	if _, err := unpack(t, "", map[string]any{"http": map[string]any{"url": srv.URL + "/files.tar.gz", "sha256": hex.EncodeToString(sum[:])}}); err != nil {
		t.Errorf("right sha256: %v", err)
	}

	for name, wantErr := range map[string]string{
		"/evil.tar.gz":      "escapes",
		"/abs.tar":          "escapes",
		"/evil.zip":         "escapes",
		"/link.tar.gz":      "escapes",
		"/abslink.zip":      "escapes",
		"/state.tar.gz":     "reserved",
		"/throughlink.tar":  "escapes",
		"/corrupt.tar.gz":   "gzip",
		"/truncated.tar.gz": "unexpected EOF",
		"/missing.tar.gz":   "404",
	} {
		parent := t.TempDir()
		home := filepath.Join(parent, "a", "home")
		os.MkdirAll(home, 0o700)
		err := unpackWorkshopFiles(t.Context(), Config{WorkshopFiles: []map[string]any{{"http": map[string]any{"url": srv.URL + name}}}}, home)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one with %q", name, err, wantErr)
		}
		for _, p := range []string{filepath.Join(parent, "evil"), filepath.Join(parent, "a", "evil"), "/tmp/evil"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s: wrote %s", name, p)
			}
		}
	}
	if _, err := unpack(t, "", map[string]any{"http": map[string]any{"url": srv.URL + "/files.tar.gz", "sha256": strings.Repeat("0", 64)}}); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("wrong sha256: %v", err)
	}
	if _, err := unpack(t, "", map[string]any{"http": map[string]any{"url": "file:///etc/passwd"}}); err == nil {
		t.Error("file URL: no error")
	}
	// Credentials in a URL stay out of messages.
	_, err = unpack(t, "", map[string]any{"http": map[string]any{"url": "http://user:hunter2@" + strings.TrimPrefix(srv.URL, "http://") + "/missing.tar.gz"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("credentials: %v", err)
	}
}

func TestFilesGit(t *testing.T) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed (apt-get install git)")
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command(gitPath, args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	bare, work := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work")
	git("init", "--quiet", "--bare", "--initial-branch=main", bare)
	git("clone", "--quiet", bare, work)
	writeFiles(t, work, map[string]string{"workshop/content/01.md": "v1", "exercises/a.txt": "a", "README.md": "readme"})
	git("-C", work, "add", ".")
	git("-C", work, "commit", "--quiet", "-m", "v1")
	git("-C", work, "tag", "v1")
	writeFiles(t, work, map[string]string{"workshop/content/01.md": "v2"})
	git("-C", work, "commit", "--quiet", "-am", "v2")
	git("-C", work, "push", "--quiet", "origin", "main", "v1")

	for ref, want := range map[string]string{"": "v2", "origin/main": "v2", "main": "v2", "v1": "v1"} {
		home, err := unpack(t, "", map[string]any{
			"git":          map[string]any{"url": "file://" + bare, "ref": ref},
			"includePaths": []any{"/workshop/**", "/exercises/**"},
		})
		if err != nil {
			t.Fatalf("ref %q: %v", ref, err)
		}
		checkFiles(t, home, map[string]string{"workshop/content/01.md": want, "exercises/a.txt": "a", "README.md": "", ".git/HEAD": ""})
	}
	if _, err := unpack(t, "", map[string]any{"git": map[string]any{"url": "file://" + bare, "ref": "no-such-ref"}}); err == nil || !strings.Contains(err.Error(), "no-such-ref") {
		t.Errorf("bad ref: %v", err)
	}
	if _, err := unpack(t, "", map[string]any{"git": map[string]any{"url": "--upload-pack=touch /tmp/pwned"}}); err == nil {
		t.Error("option as URL: no error")
	}
}
