package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portico-dev/portico/client"
)

// The admin commands speak to a running portal through its REST API, as
// the Educates CLI does: the portal's robot client id and secret, and the
// username and password of a staff account (or the robot's, for what a
// robot may do).

const adminUsage = `Usage:
  portico sessions ls [--search TEXT]     the live sessions, newest first
  portico sessions show NAME              one session
  portico sessions extend NAME            extend a session near its end
  portico sessions terminate NAME         end a session now
  portico environments ls                 the environments that are not stopped
  portico environments refresh NAME       replace an environment by a fresh one
  portico users ls [--search TEXT]        the newest users
  portico token                           print an access token (for curl -H "Authorization: Bearer ...")

Flags of every command; the first five also from $PORTICO_PORTAL, $PORTICO_CLIENT_ID,
$PORTICO_CLIENT_SECRET, $PORTICO_USERNAME and $PORTICO_PASSWORD, else from the client config file:
  --portal URL             the portal's URL
  --client-id ID           the portal's robot OAuth client
  --client-secret SECRET
  --username NAME          a staff account (default: the client_credentials grant, as the robot)
  --password PASSWORD
  --client-config FILE     YAML with portal, client_id, client_secret, username and password
                           (default: $PORTICO_CLIENT_CONFIG, else portico/client.yaml in the
                           user's config directory: ~/.config on Linux)
  -o table|json            output format (default table)
`

// clientConfig is what the admin commands need to reach a portal.
type clientConfig struct {
	Portal       string `yaml:"portal"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
}

// adminCommand is what an admin command does with a client, its
// arguments and its output.
type adminCommand struct {
	args int // positional arguments it takes
	run  func(ctx context.Context, c *client.Client, a adminArgs, out *output) error
}

// adminArgs are the arguments of an admin command.
type adminArgs struct {
	names  []string // positional
	search string   // --search
}

var adminCommands = map[string]adminCommand{
	"sessions ls":          {0, sessionsList},
	"sessions show":        {1, sessionShow},
	"sessions extend":      {1, sessionExtend},
	"sessions terminate":   {1, sessionTerminate},
	"environments ls":      {0, environmentsList},
	"environments refresh": {1, environmentRefresh},
	"users ls":             {0, usersList},
	"token":                {0, printToken},
}

// adminRunner is the command of the portico CLI that runs noun's admin
// commands.
func adminRunner(noun string) func(args []string, stdout io.Writer) error {
	return func(args []string, stdout io.Writer) error { return admin(stdout, noun, args) }
}

// admin runs `portico <noun> [verb] ...` and writes its answer to stdout.
// Mistakes in the command line are usageErrors.
func admin(stdout io.Writer, noun string, args []string) error {
	name := noun
	if noun != "token" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fmt.Fprint(stdout, adminUsage)
				return nil
			}
			return usageError{fmt.Errorf("%s needs a command\n\n%s", noun, adminUsage)}
		}
		name, args = noun+" "+args[0], args[1:]
	}
	cmd, ok := adminCommands[name]
	if !ok {
		return usageError{fmt.Errorf("unknown command %q\n\n%s", name, adminUsage)}
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var flags clientConfig
	fs.StringVar(&flags.Portal, "portal", "", "")
	fs.StringVar(&flags.ClientID, "client-id", "", "")
	fs.StringVar(&flags.ClientSecret, "client-secret", "", "")
	fs.StringVar(&flags.Username, "username", "", "")
	fs.StringVar(&flags.Password, "password", "", "")
	configFile := fs.String("client-config", "", "")
	format := fs.String("o", "table", "")
	search := fs.String("search", "", "")
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	if err != nil {
		return usageError{fmt.Errorf("%s: %v", name, err)}
	}
	if *format != "table" && *format != "json" {
		return usageError{fmt.Errorf("%s: -o %q: want table or json", name, *format)}
	}
	if len(positional) != cmd.args {
		return usageError{fmt.Errorf("%s takes %d argument(s), not %d\n\n%s", name, cmd.args, len(positional), adminUsage)}
	}
	if *search != "" && name != "sessions ls" && name != "users ls" {
		return usageError{fmt.Errorf("%s: --search is for sessions ls and users ls", name)}
	}
	cfg, err := resolveClientConfig(flags, *configFile)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{URL: cfg.Portal, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Username: cfg.Username, Password: cfg.Password})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return cmd.run(ctx, c, adminArgs{positional, *search}, &output{w: stdout, json: *format == "json"})
}

// parseInterspersed parses flags before, between and after positional
// arguments (`sessions show NAME -o json`), which package flag stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// resolveClientConfig takes each setting from the flag, else the
// environment, else the config file.
func resolveClientConfig(flags clientConfig, file string) (clientConfig, error) {
	if file == "" {
		file = os.Getenv("PORTICO_CLIENT_CONFIG")
	}
	explicit := file != ""
	if !explicit {
		if dir, err := os.UserConfigDir(); err == nil {
			file = filepath.Join(dir, "portico", "client.yaml")
		}
	}
	var fromFile clientConfig
	if file != "" {
		var err error
		if fromFile, err = readClientConfig(file); err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return clientConfig{}, err
		}
	}
	pick := func(flag, env, fromFile string) string {
		if flag != "" {
			return flag
		}
		if v := os.Getenv(env); v != "" {
			return v
		}
		return fromFile
	}
	cfg := clientConfig{
		Portal:       pick(flags.Portal, "PORTICO_PORTAL", fromFile.Portal),
		ClientID:     pick(flags.ClientID, "PORTICO_CLIENT_ID", fromFile.ClientID),
		ClientSecret: pick(flags.ClientSecret, "PORTICO_CLIENT_SECRET", fromFile.ClientSecret),
		Username:     pick(flags.Username, "PORTICO_USERNAME", fromFile.Username),
		Password:     pick(flags.Password, "PORTICO_PASSWORD", fromFile.Password),
	}
	var missing []string
	for _, m := range []struct{ v, name string }{{cfg.Portal, "--portal"}, {cfg.ClientID, "--client-id"}, {cfg.ClientSecret, "--client-secret"}} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("no %s: give them as flags, in the environment ($PORTICO_PORTAL, ...) or in %s",
			strings.Join(missing, ", "), file)
	}
	return cfg, nil
}

// readClientConfig reads a client config file; an unknown key is refused
// rather than ignored.
func readClientConfig(file string) (clientConfig, error) {
	var cfg clientConfig
	raw, err := os.ReadFile(file)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%s: %v", file, err)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 && (cfg.ClientSecret != "" || cfg.Password != "") {
		fmt.Fprintf(os.Stderr, "portico: warning: %s holds secrets and others may read it: chmod 600 it\n", file)
	}
	return cfg, nil
}

// output writes an answer as a table or as JSON.
type output struct {
	w    io.Writer
	json bool
}

// write writes v as indented JSON, or the rows as an aligned table.
func (o *output) write(v any, header []string, rows [][]string) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// left is the time a session has left, as a person reads it.
func left(expires time.Time, countdown int) string {
	if expires.IsZero() {
		return "-"
	}
	return (time.Duration(countdown) * time.Second).String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sessionsList(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	list, err := c.Sessions(ctx, a.search)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(list))
	for _, s := range list {
		rows = append(rows, []string{s.Name, s.State, orDash(s.User), s.Environment, s.Workshop, left(s.Expires, s.Countdown)})
	}
	return out.write(list, []string{"NAME", "STATE", "USER", "ENVIRONMENT", "WORKSHOP", "LEFT"}, rows)
}

func sessionShow(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	s, err := c.Session(ctx, a.names[0])
	if err != nil {
		return err
	}
	return out.write(s, []string{"FIELD", "VALUE"}, [][]string{
		{"name", s.Name}, {"state", s.State}, {"user", orDash(s.User)}, {"environment", s.Environment},
		{"workshop", s.Workshop}, {"created", when(s.Created)}, {"started", when(s.Started)},
		{"expires", when(s.Expires)}, {"left", left(s.Expires, s.Countdown)}, {"extendable", fmt.Sprint(s.Extendable)},
		{"url", s.URL},
	})
}

func sessionExtend(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	sc, err := c.ExtendSession(ctx, a.names[0])
	if err != nil {
		return err
	}
	return out.write(sc, []string{"SESSION", "EXTENDED", "EXPIRES", "LEFT"},
		[][]string{{a.names[0], fmt.Sprint(sc.Extended), when(sc.Expires), left(sc.Expires, sc.Countdown)}})
}

func sessionTerminate(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	t, err := c.TerminateSession(ctx, a.names[0])
	if err != nil {
		return err
	}
	return out.write(t, []string{"SESSION", "TERMINATED", "STARTED"}, [][]string{{a.names[0], "true", when(t.Started)}})
}

func environmentRows(envs []client.Environment) [][]string {
	rows := make([][]string, 0, len(envs))
	for _, e := range envs {
		rows = append(rows, []string{e.Name, e.State, e.Workshop.Resource, fmt.Sprint(e.Capacity), fmt.Sprint(e.Reserved),
			fmt.Sprint(e.Allocated), fmt.Sprint(e.Available)})
	}
	return rows
}

var environmentHeader = []string{"NAME", "STATE", "WORKSHOP", "CAPACITY", "RESERVED", "ALLOCATED", "AVAILABLE"}

func environmentsList(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	envs, err := c.AllEnvironments(ctx)
	if err != nil {
		return err
	}
	return out.write(envs, environmentHeader, environmentRows(envs))
}

func environmentRefresh(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	envs, err := c.RefreshEnvironment(ctx, a.names[0])
	if err != nil {
		return err
	}
	return out.write(envs, environmentHeader, environmentRows(envs))
}

func usersList(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	users, err := c.Users(ctx, a.search)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(users))
	for _, u := range users {
		rows = append(rows, []string{u.Username, u.Role, u.Origin, fmt.Sprint(u.Sessions), when(u.Created)})
	}
	return out.write(users, []string{"USERNAME", "ROLE", "ORIGIN", "SESSIONS", "CREATED"}, rows)
}

// printToken prints the access token alone in a table, so that
// $(portico token) is the token.
func printToken(ctx context.Context, c *client.Client, a adminArgs, out *output) error {
	t, err := c.Token(ctx)
	if err != nil {
		return err
	}
	if out.json {
		return out.write(t, nil, nil)
	}
	_, err = fmt.Fprintln(out.w, t.AccessToken)
	return err
}
