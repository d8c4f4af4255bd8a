// Package runtime is the port through which the portal starts, stops and
// observes workshop sessions. Implementations live in sub-packages: local
// (processes on this machine) and, later, kubernetes.
package runtime

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when the runtime has no instance of a session.
var ErrNotFound = errors.New("session instance not found")

// ErrBusy is returned by Start and Stop when another portal replica is
// starting or stopping the same session: try again shortly.
var ErrBusy = errors.New("another portal is starting or stopping this session")

// ErrFenced is returned by Start and Stop whose fencing token (WithFence)
// is older than one the runtime has seen on the same session: the caller
// lost the lease it worked under, and a newer leader has the session now.
var ErrFenced = errors.New("a newer leader has this session")

type fenceKey struct{}

// WithFence returns ctx carrying the caller's fencing token: the
// generation of the lease its work runs under, which grows with every
// change of leader. Runtimes that share session state between portal
// replicas (the local runtime's session homes) let work with a newer token
// take a session over from work with an older one that stalled, and refuse
// work whose token is older than the newest they have seen on that
// session. Zero, or none: unfenced (a single portal).
func WithFence(ctx context.Context, token int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, token)
}

// Fencer is a Runtime that honours fencing tokens as WithFence describes.
// A leader that lost its lease while it started a session may undo that
// start only on such a runtime: elsewhere the stop could take the host the
// new leader adopted, so the host is left to it.
type Fencer interface {
	Runtime
	HonoursFences()
}

// FenceOf returns the fencing token ctx carries, 0 for none.
func FenceOf(ctx context.Context) int64 {
	token, _ := ctx.Value(fenceKey{}).(int64)
	return token
}

// Spec is what a runtime needs to start one session.
type Spec struct {
	Session     string // session name, e.g. portal-w01-s001; unique
	ID          string // short session id, e.g. s001
	Environment string
	Workshop    string
	// WorkshopTitle and WorkshopDescription head the dashboard.
	WorkshopTitle       string
	WorkshopDescription string
	Portal              string
	PortalURL           string
	SessionURL          string
	// ConfigPassword authorises /config/<type>?token= on the session host.
	ConfigPassword string
	// Env is the environment of every shell of the session, in order.
	Env []EnvVar
	// WorkshopDir is the directory of the workshop definition file, the
	// base of relative workshop.files paths.
	WorkshopDir string
	// WorkshopFiles is the workshop's spec.workshop.files, as decoded YAML.
	WorkshopFiles []map[string]any
	// Applications, Dashboards and Ingresses are the workshop's
	// spec.session.applications, .dashboards and .ingresses.
	Applications Applications
	Dashboards   []Dashboard
	Ingresses    []Ingress
	// Owner is set when the session already has an owner as it starts;
	// reserved sessions get theirs through Allocate.
	Owner *Allocation
	// Limits bounds the resources of the whole session; the zero value
	// sets no limit.
	Limits Limits
	// Offline sessions have no network beyond their own: no outbound
	// access (runtimes of processes; a cluster's network policies are the
	// cluster's).
	Offline bool
	// Cluster is what a runtime on a cluster needs beside; runtimes of
	// processes ignore it.
	Cluster Cluster
}

// Cluster is the part of a workshop that only means something on
// Kubernetes, as in Educates.
type Cluster struct {
	// Image is the image of the session host's container; empty for the
	// runtime's default.
	Image string
	// Budget names the compute budget of the session namespace (small,
	// medium, ..., custom); empty for none.
	Budget string
	// SessionObjects are created in the cluster when the session starts,
	// RequestObjects when it gets its owner; both as decoded YAML, before
	// substitution of the data variables.
	SessionObjects []map[string]any
	RequestObjects []map[string]any
}

// EnvironmentSpec is what a runtime needs to prepare one workshop
// environment.
type EnvironmentSpec struct {
	Name     string // e.g. portal-w01; unique
	Workshop string
	Portal   string
	// Objects are the workshop's spec.environment.objects, as decoded YAML.
	Objects []map[string]any
}

// Limits bounds the resources of one session, all its processes together
// (the workshop's spec.session.resources). A zero field sets no limit,
// but for Storage.
type Limits struct {
	// Memory is in bytes. A process that would exceed it is killed by the
	// kernel (the largest first); the session host is meant to survive.
	Memory int64
	// CPUMilli is CPU time in thousandths of a CPU: 500 is half a CPU.
	CPUMilli int
	// Processes is how many processes, threads included, the programs of
	// the session may run at once, beside the session host.
	Processes int
	// Storage is in bytes: the size of the filesystem holding the
	// session's home, its host's files included. A write beyond it fails
	// with ENOSPC. Zero is DefaultStorage: no session goes without a
	// limit, since a session that fills a disk fills it for every other
	// user of that disk, the portal's database included. The local
	// runtime enforces it where it may (see local/storage.go); the
	// kubernetes runtime ignores it for now (Educates sizes the
	// persistent volume of the home with it).
	Storage int64
}

// DefaultStorage is the storage of a session whose workshop sets none
// (Limits.Storage zero). The local runtime reserves it on the data
// directory's disk for every running session, used or not, so it is
// modest: enough for a home with a cloned repository and a language's
// package cache; a workshop that needs more says so.
const DefaultStorage int64 = 1 << 30

// Allocation is what becomes known when a person gets a session.
type Allocation struct {
	User   User     `json:"user"`
	Params []EnvVar `json:"params"`
}

// User is the owner of a session as the session sees them.
type User struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// EnvVar is a name/value pair.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Instance is what a runtime knows about one running session.
type Instance struct {
	Session string
	// Address is host:port where the session host answers HTTP, reachable
	// from every portal replica.
	Address string
	Ready   bool
	// Failed is set when the instance stopped by itself or cannot start.
	Failed string
}

// Activity is what the session host reports about its use.
type Activity struct {
	Idle     time.Duration // since the last request of the person
	LastView time.Duration // since the dashboard was last visible
}

// Runtime starts, stops, observes and lists sessions. Every method is safe
// for concurrent use and idempotent where it makes sense: Stop of an absent
// session succeeds.
type Runtime interface {
	// Start creates the session and returns once it is ready to serve, or
	// with an error when it cannot start. ctx bounds the whole start.
	Start(ctx context.Context, spec Spec) (Instance, error)
	// Stop ends the session and everything it started.
	Stop(ctx context.Context, session string) error
	// Status reports one session; ErrNotFound when there is none.
	Status(ctx context.Context, session string) (Instance, error)
	// Allocate gives a running session its owner's details and request
	// parameters, before the person's first shell starts. secret is the
	// session's config password, which the host trusts. Idempotent.
	Allocate(ctx context.Context, inst Instance, secret string, a Allocation) error
	// Activity asks the session host how recently it was used.
	Activity(ctx context.Context, inst Instance) (Activity, error)
	// List reports every session instance this runtime has, including ones
	// started before a portal restart.
	List(ctx context.Context) ([]Instance, error)
}

// EnvironmentRuntime is implemented by runtimes that keep something per
// workshop environment, such as a namespace holding its shared objects.
type EnvironmentRuntime interface {
	// SyncEnvironments makes the runtime's environments those of want:
	// it prepares each one it has not (idempotent, so it is called with
	// every live environment on every reconciler pass, and must be cheap
	// when nothing changed) and removes those it has that want lacks.
	// An environment that fails to prepare does not stop the others: the
	// error names each failure.
	SyncEnvironments(ctx context.Context, want []EnvironmentSpec) error
}

// ExitWatcher is implemented by runtimes that notice a session host ending
// by itself: a crash, an out-of-memory kill of the host, a kill from
// outside.
type ExitWatcher interface {
	// Exited delivers the name of each session whose host exited after
	// its Start succeeded and without a Stop, once per host. The channel
	// is the same on every call and never closed; a runtime buffers
	// what its reader has not taken yet.
	Exited() <-chan string
}

// Applications is what a workshop's spec.session.applications turns on or
// off in its sessions' dashboards; the session host reads it.
type Applications struct {
	Workshop App `json:"workshop,omitzero"` // the instructions; on by default
	Terminal App `json:"terminal,omitzero"` // on by default; Layout names the terminals shown
	Editor   App `json:"editor,omitzero"`   // off by default
	Slides   App `json:"slides,omitzero"`   // on by default when workshop/slides exists
	Files    App `json:"files,omitzero"`    // downloads, off by default; Directory is what is offered
	Uploads  App `json:"uploads,omitzero"`  // off by default; Directory is where uploads land
	Examiner App `json:"examiner,omitzero"` // off by default
}

// App is one application of a session's dashboard.
type App struct {
	// Enabled is nil when the workshop does not say, which leaves the
	// application's default.
	Enabled   *bool  `json:"enabled,omitempty"`
	Layout    string `json:"layout,omitempty"`
	Directory string `json:"directory,omitempty"`
}

// On reports whether the application is on, def when the workshop does
// not say.
func (a App) On(def bool) bool {
	if a.Enabled == nil {
		return def
	}
	return *a.Enabled
}

// Dashboard is an extra tab of a session's dashboard
// (spec.session.dashboards): a URL, or terminal:<id> for a terminal.
type Dashboard struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Ingress is a web application inside a session reached from browsers on
// an origin of its own (spec.session.ingresses).
type Ingress struct {
	Name     string   `json:"name"`
	Protocol string   `json:"protocol,omitempty"` // http (default) or https
	Host     string   `json:"host,omitempty"`     // default localhost: inside the session
	Port     int      `json:"port,omitempty"`     // default that of the protocol
	Path     string   `json:"path,omitempty"`
	Headers  []Header `json:"headers,omitempty"`
	// Authentication is "session" (the default: the session's owner and
	// staff only) or "none" (anyone with the URL).
	Authentication string `json:"authentication,omitempty"`
	// ChangeOrigin false keeps the browser's Host header; nil or true sets
	// the target's.
	ChangeOrigin *bool `json:"changeOrigin,omitempty"`
}

// Header is a request header an ingress adds.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
