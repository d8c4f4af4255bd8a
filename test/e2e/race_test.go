//go:build race

package e2e

// Under `go test -race` the binary under test is built with the race
// detector too, and a race it reports fails the test.
func init() { raceEnabled = true }
