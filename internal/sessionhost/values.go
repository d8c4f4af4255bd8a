package sessionhost

import (
	"net/url"
	"os"
	"os/user"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/runtime"
)

// sessionInfo is what the values of a session are computed from: the
// configuration, facts of the home known at start, and the allocation once
// the session has an owner.
type sessionInfo struct {
	cfg              Config
	home             string
	username         string // the Unix user running the session
	sshPublicKey     string
	servicesPassword string
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// sessionValues returns the shell environment and the instruction variables
// of the session, with Educates' names so that existing workshop content
// renders unchanged. owner is nil until the session is allocated.
func sessionValues(si sessionInfo, owner *runtime.Allocation) (env, vars map[string]string) {
	cfg := si.cfg
	protocol, hostname, domain, portSuffix := ingressOf(cfg.SessionURL, cfg.Session)
	title := cfg.WorkshopTitle
	if title == "" {
		title = cfg.Workshop
	}
	vars = map[string]string{
		"session_name":         cfg.Session,
		"session_id":           cfg.ID,
		"session_namespace":    cfg.Session,
		"session_url":          cfg.SessionURL,
		"session_hostname":     hostname,
		"environment_name":     cfg.Environment,
		"workshop_namespace":   cfg.Environment,
		"workshop_name":        cfg.Workshop,
		"workshop_title":       title,
		"workshop_description": cfg.WorkshopDescription,
		"training_portal":      cfg.Portal,
		"portal_url":           cfg.PortalURL,
		"config_password":      cfg.ConfigPassword,
		"services_password":    si.servicesPassword,
		"ssh_public_key":       si.sshPublicKey,
		"ingress_protocol":     protocol,
		"ingress_domain":       domain,
		"ingress_port_suffix":  portSuffix,
		"home_directory":       si.home,
	}
	env = map[string]string{
		"HOME":                si.home,
		"USER":                si.username,
		"PATH":                os.Getenv("PATH"),
		"LANG":                "C.UTF-8",
		"SESSION_NAME":        cfg.Session,
		"SESSION_ID":          cfg.ID,
		"SESSION_NAMESPACE":   cfg.Session,
		"SESSION_URL":         cfg.SessionURL,
		"SESSION_HOSTNAME":    hostname,
		"ENVIRONMENT_NAME":    cfg.Environment,
		"WORKSHOP_NAMESPACE":  cfg.Environment,
		"WORKSHOP_NAME":       cfg.Workshop,
		"TRAINING_PORTAL":     cfg.Portal,
		"PORTAL_URL":          cfg.PortalURL,
		"CONFIG_PASSWORD":     cfg.ConfigPassword,
		"SERVICES_PASSWORD":   si.servicesPassword,
		"INGRESS_PROTOCOL":    protocol,
		"INGRESS_DOMAIN":      domain,
		"INGRESS_PORT_SUFFIX": portSuffix,
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	// The workshop's own variables come next and win, as in a shell profile.
	for _, v := range cfg.Env {
		if validEnvName(v.Name) && validEnvValue(v.Value) {
			env[v.Name] = v.Value
		}
	}
	if owner == nil {
		return env, vars
	}
	// What is known at allocation comes last: request parameters are the
	// session's own values, as in Educates where they become its environment.
	for _, p := range owner.Params {
		if p.Name == "" {
			continue
		}
		vars[p.Name] = p.Value
		if validEnvName(p.Name) && validEnvValue(p.Value) {
			env[p.Name] = p.Value
		}
	}
	u := owner.User
	for name, value := range map[string]string{
		"username":   u.Username,
		"email":      u.Email,
		"first_name": u.FirstName,
		"last_name":  u.LastName,
	} {
		vars[name] = value
		if validEnvValue(value) {
			env["OWNER_"+strings.ToUpper(name)] = value
		}
	}
	return env, vars
}

// validEnvName accepts the names a POSIX shell can expand: a letter or
// underscore, then letters, digits and underscores.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range []byte(name) {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validEnvValue refuses what an environment cannot hold.
func validEnvValue(value string) bool { return !strings.ContainsRune(value, 0) }

// environ turns an environment map into the sorted KEY=VALUE list of exec,
// with extra entries appended.
func environ(env map[string]string, extra ...string) []string {
	list := make([]string, 0, len(env)+len(extra))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	slices.Sort(list)
	return append(list, extra...)
}

// inheritedEnv returns the variables of the host's own environment that
// every process it starts must carry: the PORTICO_* variables, one of which
// marks the processes of the session for the runtime that ends it, even
// those that left the host's process group (every terminal does).
func inheritedEnv() []string {
	var list []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORTICO_") {
			list = append(list, kv)
		}
	}
	return list
}

// ingressOf splits a session URL such as http://portal-w01-s001.example.com:8080
// into the parts Educates exposes as ingress_* variables. A URL that does
// not start with the session name yields an empty domain.
func ingressOf(sessionURL, session string) (protocol, hostname, domain, portSuffix string) {
	u, err := url.Parse(sessionURL)
	if err != nil || u.Host == "" {
		return "", "", "", ""
	}
	hostname = u.Hostname()
	if p := u.Port(); p != "" {
		portSuffix = ":" + p
	}
	domain, _ = strings.CutPrefix(hostname, session+".")
	if domain == hostname {
		domain = ""
	}
	return u.Scheme, hostname, domain, portSuffix
}
