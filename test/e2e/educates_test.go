package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures of testdata/educates/<family> are workshops written the
// way Educates' documentation shows, one per family of author features:
// resources/workshop.yaml defines the Workshop lab-educates-<family>, whose
// files (workshop/content, workshop/examiner, exercises, ...) are the
// fixture directory itself, as an Educates workshop repository is laid out.

// startEducatesFixture starts a portal on the fixture of family, with
// anonymous access, so that openFixtureSession needs no account.
func startEducatesFixture(t *testing.T, family string) *portal {
	t.Helper()
	defs := definitions(entry{Capacity: 2, Reserved: 1})
	defs, _, _ = strings.Cut(defs, "\n---\napiVersion: training.educates.dev/v1beta1\nkind: Workshop\n")
	defs = strings.Replace(defs, "    - name: lab-e2e\n", "    - name: lab-educates-"+family+"\n", 1)
	defs = strings.Replace(defs, "    title: End-to-end tests\n", "    title: End-to-end tests\n    registration:\n      type: anonymous\n", 1)
	p := newPortal(t, defs)
	copyTree(t, filepath.Join("testdata", "educates", family), filepath.Join(filepath.Dir(p.config), family))
	p.start()
	p.waitReady()
	return p
}

// openFixtureSession opens a session of the portal's workshop in a tab of
// a new Chromium, as an anonymous visitor, and waits for its dashboard.
func openFixtureSession(t *testing.T, p *portal) (*person, string) {
	t.Helper()
	requireChromium(t)
	waitReserve(t, p, 1)
	b := newChromium(t).person("visitor", p)
	b.open("/workshops/environment/" + envName + "/create/")
	session := b.startedSession()
	b.waitDashboard(session)
	return b, session
}

// copyTree copies the files of src into dst, keeping their modes (the
// scripts of a fixture are executable).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
