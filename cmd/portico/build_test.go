package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goListDeps lists the packages of the portal binary built with tags.
func goListDeps(t *testing.T, tags string) []string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH, and this test asks it what the binary links: install Go and put it on PATH")
	}
	out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -tags %q -deps: %v", tags, err)
	}
	return strings.Fields(string(out))
}

// A portal built with -tags nokubernetes, for machines that run sessions
// locally, links nothing of Kubernetes: client-go is most of the binary.
func TestNoKubernetesTagDropsKubernetes(t *testing.T) {
	kube := func(d string) bool { return strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") }
	if !slices.ContainsFunc(goListDeps(t, ""), kube) {
		t.Fatal("the default build links nothing of Kubernetes: the check below would pass for nothing")
	}
	for _, d := range goListDeps(t, "nokubernetes") {
		if kube(d) || d == "github.com/portico-dev/portico/internal/runtime/kubernetes" {
			t.Errorf("-tags nokubernetes links %s", d)
		}
	}
}
