package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// command is a subcommand of portico. Its flags go through parseFlags, which
// gives every command the same help, environment variables and refusal of
// stray arguments.
type command struct {
	name    string
	summary string // one line for the usage; empty hides the command
	run     func(args []string, stdout io.Writer) error
}

// usageError is a mistake in the command line (or in the environment
// variables that stand for it): the exit status is 2, as for flag errors.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// envPrefix names the environment variable of each flag: PORTICO_ and the
// flag's name in upper case, dashes as underscores.
const envPrefix = "PORTICO_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// runCLI runs the command line args (without the program name) and returns
// the exit status: 0, 1 when the command failed, 2 when it was misused.
func runCLI(commands []command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr, commands)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		printUsage(stdout, commands)
		return 0
	case "-version", "--version":
		name = "version"
	case "help":
		switch len(rest) {
		case 0:
			printUsage(stdout, commands)
			return 0
		case 1:
			// Each command's help is what its own -h prints.
			name, rest = rest[0], []string{"-h"}
		default:
			fmt.Fprintf(stderr, "portico help: one command at a time, got %q\n", rest)
			return 2
		}
	}
	cmd, ok := lookup(commands, name)
	if !ok {
		fmt.Fprintf(stderr, "portico: unknown command %q\n\n", name)
		printUsage(stderr, commands)
		return 2
	}
	err := cmd.run(rest, stdout)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "portico %s: %v\nRun 'portico help %s' for its flags.\n", cmd.name, err, cmd.name)
		return 2
	default:
		fmt.Fprintln(stderr, "portico:", err)
		return 1
	}
}

func lookup(commands []command, name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printUsage(w io.Writer, commands []command) {
	fmt.Fprint(w, "Usage: portico COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		if c.summary != "" {
			fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprint(w, "\nRun 'portico help COMMAND' for the flags of a command; 'portico --version' for the build.\n")
}

// newFlags returns the flag set of command name, whose help starts with
// doc (the usage line and a paragraph on what the command does).
func newFlags(name, doc string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { printHelp(fs.Output(), fs, doc) }
	return fs
}

// parseFlags parses args into fs, then gives every flag not on the command
// line the value of its environment variable, if set: a flag given wins
// over the environment. -h and --help print the help to stdout and return
// flag.ErrHelp; anything else that is not a flag is refused, as nothing
// would read it. Errors are usageErrors.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	usage := fs.Usage
	// Parse would print its errors and the whole help to the output; the
	// error alone goes to stderr, from runCLI.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	case err != nil:
		return usageError{err}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q (every setting is a flag)", fs.Arg(0))}
	}
	return setFromEnv(fs, lookupEnv)
}

// lookupEnv reads a variable and removes it from the portal's environment:
// the programs the portal runs need none of them, and some hold secrets.
func lookupEnv(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	os.Unsetenv(name)
	return v, ok
}

// setFromEnv sets the flags of fs that the command line left alone from
// their environment variables.
func setFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookup(envName(f.Name))
		if !ok || given[f.Name] {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("$%s: invalid value for --%s: %w", envName(f.Name), f.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// printHelp writes the help of fs, made from the flag set itself so that it
// lists every flag.
func printHelp(w io.Writer, fs *flag.FlagSet, doc string) {
	fmt.Fprintf(w, "%s\nFlags (each also read from the environment variable named, when not given):\n", doc)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintf(w, "%s    $%s\n", line, envName(f.Name))
		fmt.Fprintf(w, "      %s", strings.ReplaceAll(usage, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// versionCommand prints what the binary was built from.
func versionCommand(args []string, stdout io.Writer) error {
	fs := newFlags("version", "Usage: portico version\n\nPrints the version of portico, the revision it was built from and the Go release that built it.\n")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("this binary carries no build information")
	}
	fmt.Fprint(stdout, versionText(info))
	return nil
}

func versionText(info *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "portico %s\n", info.Main.Version)
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "revision: %s\n", rev)
	}
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "commit time: %s\n", t)
	}
	fmt.Fprintf(&b, "go: %s %s/%s\n", info.GoVersion, settings["GOOS"], settings["GOARCH"])
	return b.String()
}
