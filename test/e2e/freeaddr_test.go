package e2e

import "testing"

// Portals of one test are given their addresses before any of them
// listens: the same port twice made a replica fail to start in CI.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		a := freeAddr(t)
		if seen[a] {
			t.Fatalf("freeAddr gave %s twice in one process", a)
		}
		seen[a] = true
	}
}
