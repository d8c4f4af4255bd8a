package deploy_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portico-dev/portico/internal/runtime/kubernetes/kubetest"
)

// pinnedTag is a tag that names one release: a version with at least a
// minor number (17.6-bookworm, 1.27.3, v0.1.0), not a moving one (latest,
// 17, bookworm-slim, nonroot).
var pinnedTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+`)

// pinned tells whether an image reference names one image: by digest, or
// by a release tag.
func pinned(ref string) bool {
	if _, digest, ok := strings.Cut(ref, "@sha256:"); ok {
		return len(digest) == 64
	}
	// The tag follows the last colon after the last slash (a registry's
	// port has a slash after it).
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && pinnedTag.MatchString(tag)
}

func TestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"postgres:17.6-bookworm":                   true,
		"ghcr.io/portico-dev/portico:0.1.0":        true,
		"registry:5000/portico:v1.2.3":             true,
		"debian@sha256:" + strings.Repeat("a", 64): true,
		"postgres:17":                              false,
		"postgres":                                 false,
		"registry:5000/portico":                    false,
		"ghcr.io/portico-dev/portico:latest":       false,
		"debian:bookworm-slim":                     false,
		"gcr.io/distroless/static:nonroot":         false,
	} {
		if pinned(ref) != want {
			t.Errorf("pinned(%q) = %v, want %v", ref, !want, want)
		}
	}
}

// deployFiles returns the files under deploy/ but this package's own.
func deployFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// instructions returns the instructions of a Dockerfile, their
// continuation lines joined, comments dropped.
func instructions(b []byte) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

var (
	imageField   = regexp.MustCompile(`(?m)^[ \t]*-?[ \t]*image:[ \t]*["']?([^\s"'{]+)`)
	sessionImage = regexp.MustCompile(`--session-image=([^\s"'{]+)`)
	download     = regexp.MustCompile(`\b(curl|wget)\b[^|;&]*https?://|^ADD\s.*https?://`)
)

// TestImagesPinned checks that nothing in deploy/ runs or builds on a
// moving image: no :latest anywhere, every image of the manifests and
// every base of the Dockerfiles at a release tag or a digest, and the
// chart's images at its appVersion, itself a release.
func TestImagesPinned(t *testing.T) {
	files := deployFiles(t)
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindStringSubmatch(string(gomod))[1]
	checked := 0
	for path, b := range files {
		if bytes.Contains(b, []byte(":latest")) {
			t.Errorf("%s mentions :latest", path)
		}
		var refs []string
		if strings.HasPrefix(filepath.Base(path), "Dockerfile") {
			stages := []string{"scratch"}
			for _, ins := range instructions(b) {
				f := strings.Fields(ins)
				if !strings.EqualFold(f[0], "FROM") {
					continue
				}
				f = slices.DeleteFunc(f[1:], func(s string) bool { return strings.HasPrefix(s, "--") })
				if !slices.Contains(stages, f[0]) {
					refs = append(refs, f[0])
				}
				if len(f) == 3 && strings.EqualFold(f[1], "AS") {
					stages = append(stages, f[2])
				}
			}
		}
		for _, m := range imageField.FindAllSubmatch(b, -1) {
			refs = append(refs, string(m[1]))
		}
		for _, m := range sessionImage.FindAllSubmatch(b, -1) {
			refs = append(refs, string(m[1]))
		}
		for _, ref := range refs {
			checked++
			// Go's minor releases are moving tags (golang:1.27 is the
			// newest 1.27.x): the image must be the Go go.mod names.
			if tag, ok := strings.CutPrefix(ref, "golang:"); ok && !strings.HasPrefix(tag, goVersion+"-") {
				t.Errorf("%s: build image %s, want Go %s of go.mod (golang:%s-...)", path, ref, goVersion, goVersion)
			}
			if !pinned(ref) {
				t.Errorf("%s: image %s is not pinned to a release tag or a digest", path, ref)
			}
		}
	}
	if checked < 6 {
		t.Errorf("found only %d image references in deploy/: the patterns miss some", checked)
	}

	// The chart's images: a tag of their own, else the chart's appVersion.
	var values struct {
		Image, SessionImage struct{ Repository, Tag string }
		Postgresql          struct {
			Image struct{ Repository, Tag string }
		}
	}
	if err := yaml.Unmarshal(files[filepath.Join(chartDir, "values.yaml")], &values); err != nil {
		t.Fatal(err)
	}
	version := chartAppVersion(t)
	for _, img := range []struct{ Repository, Tag string }{values.Image, values.SessionImage, values.Postgresql.Image} {
		if ref := img.Repository + ":" + cmpOr(img.Tag, version); !pinned(ref) {
			t.Errorf("chart image %s is not pinned to a release", ref)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestDownloadsVerified checks that no Dockerfile or script fetches a
// program without checking it against a pinned hash, and that kubectl,
// which the session image once downloaded unchecked, is built from the
// modules its go.sum pins, at the Kubernetes release the tests run.
func TestDownloadsVerified(t *testing.T) {
	check := func(path string, b []byte) {
		var steps []string
		if strings.HasPrefix(filepath.Base(path), "Dockerfile") {
			steps = instructions(b)
		} else {
			steps = strings.Split(string(b), "\n")
		}
		for _, s := range steps {
			if download.MatchString(strings.TrimSpace(s)) && !strings.Contains(s, "sha256sum -c") &&
				!strings.Contains(s, "sha512sum -c") && !strings.Contains(s, "--checksum=sha256:") {
				t.Errorf("%s downloads without checking a pinned hash: %s", path, s)
			}
		}
	}
	for path, b := range deployFiles(t) {
		check(path, b)
	}
	scripts, err := filepath.Glob("../scripts/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range scripts {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			check(path, b)
		}
	}

	dockerfile, err := os.ReadFile(filepath.Join(kustomizeDir, "Dockerfile.session"))
	if err != nil {
		t.Fatal(err)
	}
	built := false
	for _, ins := range instructions(dockerfile) {
		built = built || strings.Contains(ins, "cd deploy/kubernetes/kubectl") &&
			strings.Contains(ins, "go build -mod=readonly") && strings.Contains(ins, "-o /out/kubectl k8s.io/kubernetes/cmd/kubectl")
	}
	if !built {
		t.Errorf("Dockerfile.session does not build kubectl from deploy/kubernetes/kubectl with -mod=readonly")
	}
	dir := filepath.Join(kustomizeDir, "kubectl")
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	require := "require k8s.io/kubernetes " + kubetest.Version
	if !bytes.Contains(gomod, []byte(require+"\n")) {
		t.Errorf("kubectl/go.mod does not say %q: the sessions' kubectl and the API server the tests run differ", require)
	}
	staging := "v0." + strings.TrimPrefix(kubetest.Version, "v1.")
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "=>" && f[3] != staging {
			t.Errorf("kubectl/go.mod: %s, want %s for Kubernetes %s", line, staging, kubetest.Version)
		}
	}
	// Every module the build needs has its hash in go.sum: the go command
	// with -mod=readonly refuses to load the package otherwise.
	cmd := exec.Command("go", "list", "-mod=readonly", "-deps", "k8s.io/kubernetes/cmd/kubectl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("kubectl's modules are not all pinned by kubectl/go.sum: %v\n%s", err, tail(out))
	}
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// TestSessionImageCarriesSessionHost checks that the session image has the
// program the kubernetes runtime runs in each session pod, portico-session
// on its PATH, and not the portal, whose Kubernetes client every session
// would pay for in memory.
func TestSessionImageCarriesSessionHost(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(kustomizeDir, "Dockerfile.session"))
	if err != nil {
		t.Fatal(err)
	}
	built, copied := false, false
	for _, ins := range instructions(dockerfile) {
		if strings.Contains(ins, "go build") && strings.Contains(ins, "./cmd/portico ") || strings.HasSuffix(ins, "./cmd/portico") {
			t.Errorf("the session image builds the portal: %s", ins)
		}
		built = built || strings.Contains(ins, "go build") && strings.Contains(ins, "-o /out/portico-session ./cmd/portico-session")
		copied = copied || ins == "COPY --from=build /out/ /usr/local/bin/"
	}
	if !built || !copied {
		t.Errorf("Dockerfile.session does not put ./cmd/portico-session in /usr/local/bin (built %v, copied %v)", built, copied)
	}
}
