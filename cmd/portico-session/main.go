// Command portico-session is the program inside each session (package
// internal/sessionhost), built on its own so that a session pays for
// nothing the portal links: no Kubernetes client, no database drivers, no
// metrics. The portal runs it from beside its own executable, or from
// `portico serve --session-binary PATH`; the session image of the
// Kubernetes runtime carries it as /usr/local/bin/portico-session.
//
//	portico-session [--home DIR] [--listen ADDR] [--seed DIR] [--allocation-file FILE] [--notify-fd N]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/portico-dev/portico/internal/sessionhost"
)

func main() {
	if err := sessionhost.Main(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "portico-session:", err)
		os.Exit(2)
	}
}
