package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults of a TrainingPortal, as in Educates.
const (
	defaultTitle          = "Workshops"
	defaultAdminUsername  = "educates"
	defaultRobotUsername  = "robot@educates"
	registrationOneStep   = "one-step"
	registrationAnonymous = "anonymous"
	visibilityPrivate     = "private"
	visibilityPublic      = "public"
)

// resourceName is a DNS label, as Kubernetes wants the names of these
// resources and of the namespaces named after them.
var resourceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (d *decoder) checkName(name string) {
	switch {
	case name == "":
		d.failAt("metadata.name", "required")
	case len(name) > 63:
		d.failAt("metadata.name", "%q is longer than 63 characters", name)
	case !resourceName.MatchString(name):
		d.failAt("metadata.name", "%q is not a valid name (lower-case letters, digits and '-', starting and ending with a letter or digit)", name)
	}
}

// portal resolves a TrainingPortal as Educates' process_training_portal does
// (spec §5.2), recording what is invalid in d.
func (d *decoder) portal(r *trainingPortalResource) Portal {
	d.checkName(r.Metadata.Name)
	s := r.Spec.Portal
	p := Portal{
		Name:          r.Metadata.Name,
		File:          d.file,
		Generation:    r.Metadata.Generation,
		Title:         or(s.Title, defaultTitle),
		Password:      s.Password,
		Index:         s.Index,
		IndexOrigins:  d.origins(s.IndexOrigins, "spec.portal.indexOrigins"),
		Labels:        labelMap(s.Labels),
		DefaultLabels: labelMap(s.Workshop.Defaults.Labels),
		Registration: Registration{
			Type:    d.oneOf(s.Registration.Type, "spec.portal.registration.type", registrationOneStep, registrationAnonymous),
			Enabled: s.Registration.Enabled == nil || *s.Registration.Enabled,
		},
		CatalogVisibility: d.oneOf(s.Catalog.Visibility, "spec.portal.catalog.visibility", visibilityPrivate, visibilityPublic),
		Sessions: SessionLimits{
			Maximum:    s.Sessions.Maximum,
			Registered: s.Sessions.Registered,
			Anonymous:  valueOr(s.Sessions.Anonymous, s.Sessions.Registered),
		},
		Admin: Credentials{
			Username: or(s.Credentials.Admin.Username, defaultAdminUsername),
			Password: s.Credentials.Admin.Password,
		},
		Robot: Credentials{
			Username: or(s.Credentials.Robot.Username, defaultRobotUsername),
			Password: s.Credentials.Robot.Password,
		},
		RobotClient:    Client{ID: s.Clients.Robot.ID, Secret: s.Clients.Robot.Secret},
		UpdateWorkshop: s.Updates.Workshop,
		FrameAncestors: s.Theme.Frame.Ancestors,
		ThemeCSS:       d.readBeside(s.Theme.Stylesheet, "spec.portal.theme.stylesheet"),
	}
	d.requireNames(s.Labels, "spec.portal.labels")
	d.requireNames(s.Workshop.Defaults.Env, "spec.portal.workshop.defaults.env")
	d.requireNames(s.Workshop.Defaults.Labels, "spec.portal.workshop.defaults.labels")

	defaults := defaultsOf(s)
	byKey := map[string]int{}
	for i, e := range r.Spec.Workshops {
		path := fmt.Sprintf("spec.workshops[%d]", i)
		if e.Name == "" {
			d.failAt(path+".name", "required")
			continue
		}
		entry := resolveEntry(defaults, e, i+1)
		// Educates clamps these to the capacity silently; a portal that
		// runs with fewer sessions than its definition says surprises
		// its operator in the middle of the event. Defaults still clamp:
		// they serve entries of every size.
		for _, n := range []struct {
			field string
			value *int
		}{{"reserved", e.Reserved}, {"initial", e.Initial}} {
			if n.value != nil && *n.value > entry.Capacity {
				d.failAt(path+"."+n.field, "%d is more than the capacity, %d: %s sessions count in the capacity", *n.value, entry.Capacity, n.field)
			}
		}
		if first, dup := byKey[entry.Key()]; dup {
			d.failAt(path, "%q is already the name of spec.workshops[%d] (give one of them an alias)", entry.Key(), first)
			continue
		}
		byKey[entry.Key()] = i
		d.requireNames(e.Env, path+".env")
		d.requireNames(e.Labels, path+".labels")
		p.Entries = append(p.Entries, entry)
	}
	return p
}

// defaultsOf merges portal.workshop.defaults with the deprecated portal-level
// settings and the portal maximum, in Educates' order of precedence.
func defaultsOf(s portalSettings) entrySettings {
	d := s.Workshop.Defaults
	d.Capacity = firstOf(d.Capacity, s.Capacity, &s.Sessions.Maximum)
	d.Reserved = firstOf(d.Reserved, s.Reserved)
	d.Initial = firstOf(d.Initial, s.Initial)
	d.Expires = firstOf(d.Expires, s.Expires)
	d.Orphaned = firstOf(d.Orphaned, s.Orphaned)
	d.Overdue = firstOf(d.Overdue, s.Overdue)
	d.Refresh = firstOf(d.Refresh, s.Refresh)
	return d
}

// resolveEntry applies the rules of spec §5.2 (and the deadline clamp of
// §5.3) to one portal.workshops[] item. Numbers are known non-negative.
func resolveEntry(defaults entrySettings, e portalEntry, position int) Entry {
	capacity := valueOr(firstOf(e.Capacity, defaults.Capacity), 0)
	reserved := min(valueOr(firstOf(e.Reserved, defaults.Reserved), 1), capacity)
	initial := min(valueOr(firstOf(e.Initial, defaults.Initial), reserved), capacity)
	if initial != 0 {
		initial = max(initial, reserved)
	}
	expires := durationOf(e.Expires, defaults.Expires)
	return Entry{
		Name:     e.Name,
		Alias:    e.Alias,
		Position: position,
		Capacity: capacity,
		Reserved: reserved,
		Initial:  initial,
		Expires:  expires,
		Overtime: durationOf(e.Overtime, defaults.Overtime),
		// Zero means "as long as expires", and a session may always run
		// for its full duration.
		Deadline: max(durationOf(e.Deadline, defaults.Deadline), expires),
		Orphaned: durationOf(e.Orphaned, defaults.Orphaned),
		Overdue:  durationOf(e.Overdue, defaults.Overdue),
		Refresh:  durationOf(e.Refresh, defaults.Refresh),
		Env:      mergeEnv(e.Env, defaults.Env),
		Labels:   labelMap(e.Labels),
	}
}

// mergeEnv is the entry's variables followed by the defaults it does not set.
func mergeEnv(entry, defaults []nameValue) []EnvVar {
	env := make([]EnvVar, 0, len(entry)+len(defaults))
	set := map[string]bool{}
	for _, v := range entry {
		env = append(env, EnvVar(v))
		set[v.Name] = true
	}
	for _, v := range defaults {
		if !set[v.Name] {
			env = append(env, EnvVar(v))
		}
	}
	return env
}

func labelMap(list []nameValue) map[string]string {
	m := make(map[string]string, len(list))
	for _, l := range list {
		m[l.Name] = l.Value
	}
	return m
}

// origins resolves a list of origins, recording those that are not one.
func (d *decoder) origins(list []string, path string) []string {
	var out []string
	for i, v := range list {
		u, err := url.Parse(v)
		o, ok := Origin(v)
		if err != nil || !ok || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			d.failAt(fmt.Sprintf("%s[%d]", path, i), "%q is not an origin: want scheme://host or scheme://host:port, http or https", v)
			continue
		}
		out = append(out, o)
	}
	return out
}

// Origin returns the origin of an absolute http or https URL as browsers
// compare origins: scheme and host in lower case, the port only when it
// is not the scheme's default. ok is false for anything else, a URL a
// browser could read otherwise (a backslash) included.
func Origin(rawURL string) (string, bool) {
	if strings.ContainsAny(rawURL, "\\ \t\r\n") {
		return "", false
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	switch {
	case host == "":
		return "", false
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	case scheme != "http" && scheme != "https":
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

func (d *decoder) requireNames(list []nameValue, path string) {
	for i, v := range list {
		if v.Name == "" {
			d.failAt(fmt.Sprintf("%s[%d].name", path, i), "required")
		}
	}
}

// oneOf returns value, or the first allowed value when value is empty.
func (d *decoder) oneOf(value, path string, allowed ...string) string {
	if value == "" {
		return allowed[0]
	}
	for _, a := range allowed {
		if value == a {
			return value
		}
	}
	d.failAt(path, "%q is not one of %q", value, allowed)
	return value
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func firstOf[T any](values ...*T) *T {
	for _, v := range values {
		if v != nil {
			return v
		}
	}
	return nil
}

func valueOr[T any](v *T, fallback T) T {
	if v == nil {
		return fallback
	}
	return *v
}

func durationOf(entry, fallback *time.Duration) time.Duration {
	return valueOr(firstOf(entry, fallback), 0)
}

// maxTheme bounds a theme stylesheet: it is served with every page.
const maxTheme = 1 << 20

// readBeside reads a file that a definition names relative to its own
// file, recording at path why it cannot.
func (d *decoder) readBeside(name, path string) string {
	if name == "" {
		return ""
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(d.file), name)
	}
	data, err := os.ReadFile(name)
	switch {
	case err != nil:
		d.failAt(path, "cannot read %s: %v", name, errors.Unwrap(err))
		return ""
	case len(data) > maxTheme:
		d.failAt(path, "%s is larger than %d bytes", name, maxTheme)
		return ""
	}
	return string(data)
}
