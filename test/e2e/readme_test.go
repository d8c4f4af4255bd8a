package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeRESTSteps runs steps 1 to 4 of the README's REST walk-through,
// as written, against the bundled example. Step 4 is to show the Location
// header the activation URL redirects to; it used to cut its output before
// that header.
func TestReadmeRESTSteps(t *testing.T) {
	requireBinary(t)
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s: apt-get install -y %s", tool, tool)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, walk, ok := strings.Cut(string(readme), "## Requesting a session through the REST API")
	if !ok {
		t.Fatal("README has no section \"Requesting a session through the REST API\"")
	}
	_, block, _ := strings.Cut(walk, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	steps, _, ok := strings.Cut(block, "# 5.")
	if !ok || !strings.Contains(steps, "# 4.") {
		t.Fatalf("README's walk-through has no steps 4 and 5:\n%s", block)
	}

	p := startPortal(t, "")
	tmp := t.TempDir()
	// The README's paths, on this test's portal and files.
	script := strings.NewReplacer("portico-data/", p.dataDir+"/", "/tmp/", tmp+"/").Replace(steps)
	script = regexp.MustCompile(`(?m)^PORTAL=.*$`).ReplaceAllString(script, "PORTAL="+p.url)
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("steps 1 to 4: %v\n%s", err, out)
	}
	loc := regexp.MustCompile(`(?mi)^location: (\S+)`).FindSubmatch(out)
	if loc == nil {
		t.Fatalf("step 4 shows no Location header:\n%s", out)
	}
	if want := "/workshops/session/portico-w01-s"; !strings.Contains(string(loc[1]), want) {
		t.Errorf("step 4 redirects to %s, want the session's page (%s…)", loc[1], want)
	}
}
