// Package config loads TrainingPortal and Workshop definitions (the Educates
// resource shapes) and resolves them into the model the portal runs on: every
// default applied, every duration parsed, every value clamped as Educates does.
package config

import (
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

// Definitions is everything read from one --config path.
type Definitions struct {
	Portal    Portal
	Workshops map[string]*Workshop // by Workshop metadata.name
	// Warnings name fields that were accepted but are not used by Portico.
	Warnings []string
	// Unused are the fields Portico does not know, one FieldError each
	// (with a "did you mean" when a known field is a slip away): what a
	// strict portal refuses.
	Unused []error
}

// Portal is a resolved TrainingPortal.
type Portal struct {
	Name       string
	File       string // definition file it came from
	Generation int64
	Title      string
	Password   string // event access code; empty when not set
	Index      string // external index URL for non-staff redirects
	Labels     map[string]string
	// DefaultLabels is portal.workshop.defaults.labels: merged under each
	// workshop's own labels and its entry's labels.
	DefaultLabels map[string]string
	// IndexOrigins are the origins, besides Index's, that a start link's
	// index_url may name (spec.portal.indexOrigins), as Origin spells them.
	IndexOrigins []string

	Registration      Registration
	CatalogVisibility string // "private" (default) or "public"
	Sessions          SessionLimits

	Admin       Credentials // empty Password: generate one on first start
	Robot       Credentials
	RobotClient Client // empty ID/Secret: generate on first start

	UpdateWorkshop bool // portal.updates.workshop
	FrameAncestors []string
	// ThemeCSS is the content of spec.portal.theme.stylesheet, read when
	// the definitions load so that a reload picks up a changed file.
	ThemeCSS string

	// Entries are the portal's workshops, in definition order, with the
	// portal defaults of spec §5.2 applied.
	Entries []Entry
}

// Registration is portal.registration.
type Registration struct {
	Type    string // "one-step" (default) or "anonymous"
	Enabled bool   // default true
}

// SessionLimits is portal.sessions. Zero means unlimited.
type SessionLimits struct {
	Maximum    int
	Registered int
	Anonymous  int // defaults to Registered when not given
}

// Credentials is a username and password pair.
type Credentials struct {
	Username string
	Password string
}

// Client is an OAuth client id and secret.
type Client struct {
	ID     string
	Secret string
}

// Entry is one resolved portal.workshops[] item.
type Entry struct {
	Name     string // Workshop resource name
	Alias    string // optional
	Position int    // 1-based index in portal.workshops

	Capacity int
	Reserved int // clamped to [0, Capacity]
	Initial  int // clamped to [0, Capacity]; if non-zero at least Reserved

	Expires  time.Duration // session duration; 0: never expires
	Overtime time.Duration // extension step; 0: default
	Deadline time.Duration // maximum total session length; never below Expires
	Orphaned time.Duration // inactivity timeout; 0: off
	Overdue  time.Duration // startup timeout for the browser page; 0: off
	Refresh  time.Duration // periodic environment replacement; 0: off

	Env    []EnvVar          // entry env plus portal default env not overridden
	Labels map[string]string // entry labels
}

// Key is the catalog name of the entry: its alias, or else the workshop name.
func (e Entry) Key() string {
	if e.Alias != "" {
		return e.Alias
	}
	return e.Name
}

// EnvVar is a name/value pair of a session's environment.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Workshop is a resolved Workshop definition.
type Workshop struct {
	Name        string // metadata.name
	File        string // definition file it came from
	Dir         string // directory of that file: the base of relative paths
	Generation  int64
	Title       string
	Description string
	URL         string
	Difficulty  string
	Duration    string // informational, as written
	Vendor      string
	Authors     []string
	Tags        []string
	Labels      map[string]string
	Logo        string

	Parameters []Parameter // spec.request.parameters
	SessionEnv []EnvVar    // spec.session.env
	// Resources is spec.session.resources: the limits of each session.
	Resources Resources
	// Files is spec.workshop.files, kept as decoded YAML for the session host.
	Files []map[string]any
	// Applications, Dashboards and Ingresses are spec.session.applications,
	// .dashboards and .ingresses, for the session host.
	Applications runtime.Applications `json:",omitzero"`
	Dashboards   []runtime.Dashboard  `json:",omitempty"`
	Ingresses    []runtime.Ingress    `json:",omitempty"`

	// What only the kubernetes runtime uses (the local runtime ignores it):
	// Image is spec.workshop.image, the image of the session host's pod;
	// empty for the portal's default.
	Image string `json:",omitempty"`
	// Budget is spec.session.namespaces.budget, one of Budgets; empty
	// for none.
	Budget string `json:",omitempty"`
	// SessionObjects, RequestObjects and EnvironmentObjects are
	// spec.session.objects, spec.request.objects and
	// spec.environment.objects: Kubernetes resources as decoded YAML,
	// created at session start, at allocation and at environment start,
	// with Educates' $(name) data variables substituted.
	SessionObjects     []map[string]any `json:",omitempty"`
	RequestObjects     []map[string]any `json:",omitempty"`
	EnvironmentObjects []map[string]any `json:",omitempty"`

	// Offline is set by spec.session.network.outbound: false (Portico's own
	// field): sessions have no network beyond their own.
	Offline bool

	// Fingerprint changes whenever the spec changes; it drives environment
	// replacement when portal.updates.workshop is on.
	Fingerprint string
}

// Resources are the limits of each session of a workshop, for all its
// processes together. A zero field sets no limit.
type Resources struct {
	Memory    int64 // spec.session.resources.memory, in bytes
	CPUMilli  int   // spec.session.resources.cpu, in thousandths of a CPU
	Processes int   // spec.session.resources.processes (Portico's own field)
	// Storage is spec.session.resources.storage, in bytes: the size of
	// the session's home. Zero when the workshop sets none, which the
	// runtime reads as its default (runtime.DefaultStorage).
	Storage int64
}

// Budgets are the values spec.session.namespaces.budget takes, as in
// Educates: each names the compute resources of a session namespace
// (see the kubernetes runtime); "custom" sets none, for a workshop that
// brings its own quota in spec.session.objects.
var Budgets = []string{"small", "medium", "large", "x-large", "xx-large", "xxx-large", "custom"}

// Parameter is one spec.request.parameters item.
type Parameter struct {
	Name     string
	Value    string
	Generate string // "" or "expression"
	From     string // pattern for Generate == "expression"
}
