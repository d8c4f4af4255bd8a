package auth

import (
	"strings"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/username"
)

// reserved are names that would speak for the portal or for Educates:
// nobody signs up as one of them, or as a look-alike.
var reserved = []string{"admin", "administrator", "root", "superuser", "staff", "robot", "educates", "portico"}

// reservedFor are the reserved names of a portal: the fixed ones, its
// admin and robot accounts, and its own name.
func reservedFor(p config.Portal) []string {
	out := append([]string{p.Admin.Username, p.Robot.Username}, reserved...)
	if p.Name != "" {
		out = append(out, p.Name)
	}
	return out
}

// nameProblem says why a person may not sign up as name, the Display
// form of what they typed, or "". It judges the name alone; whether it is
// taken or looks like a name that is, the store tells (Register).
//
// The rule: a name must be a username (username.Key), written in one
// script (UTS #39 "Highly Restrictive": the usual look-alike mixes a
// Cyrillic "а" into a Latin name), and neither one of the reserved names
// nor look like one as written, in lower or in upper case.
func nameProblem(p config.Portal, name string) string {
	key, err := username.Key(name)
	switch {
	case err != nil:
		return "Use letters and digits (and @ . + - _), with no symbols, ligatures or mixed directions."
	case !username.OneScript(name):
		return "Use the letters of one alphabet: names that mix them (Latin with Cyrillic, say) pass for others."
	}
	skeleton := username.Skeleton(name)
	for _, r := range reservedFor(p) {
		if k, err := username.Key(r); err == nil && k == key ||
			skeleton == username.Skeleton(strings.ToLower(r)) || skeleton == username.Skeleton(strings.ToUpper(r)) {
			return "That username is reserved."
		}
	}
	return ""
}
