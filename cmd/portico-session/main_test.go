package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goListDeps lists the packages the package in dir links, with tags.
func goListDeps(t *testing.T, args ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH, and this test asks it what the binary links: install Go and put it on PATH")
	}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// Every session runs this program: whatever it links, each session pays
// for in memory and start time. The portal's own dependencies cost a
// session 25 MB when the host was the portal binary re-executed.
func TestLinksNoneOfThePortal(t *testing.T) {
	deps := goListDeps(t, ".")
	if !slices.Contains(deps, "github.com/portico-dev/portico/internal/sessionhost") {
		t.Fatalf("go list names no internal/sessionhost among %d packages: the check below would pass for nothing", len(deps))
	}
	for _, d := range deps {
		for _, banned := range []string{
			"k8s.io/", "sigs.k8s.io/", // client-go and its API types: most of the portal
			"github.com/jackc/", "modernc.org/", // the database drivers
			"github.com/prometheus/",
			"github.com/portico-dev/portico/internal/store",
			"github.com/portico-dev/portico/internal/broker",
			"github.com/portico-dev/portico/internal/httpapi",
			"github.com/portico-dev/portico/internal/web",
			"github.com/portico-dev/portico/internal/auth",
			"github.com/portico-dev/portico/internal/runtime/kubernetes",
			"github.com/portico-dev/portico/internal/runtime/local",
		} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("the session host links %s", d)
			}
		}
	}
}
