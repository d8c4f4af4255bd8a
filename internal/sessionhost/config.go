package sessionhost

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/portico-dev/portico/internal/atomicfile"
	"github.com/portico-dev/portico/internal/runtime"
)

// Files under the session home shared by the runtime that starts a session
// host and the host itself. They live in the home so that everything about a
// session is removed with it.
const (
	// StateDir holds the files below; the runtime creates it with mode 0700.
	StateDir = ".portico"
	// ConfigFile is written by the runtime before the host starts. It holds
	// the config password, so it is read from disk, never from arguments,
	// which any local user can see in ps.
	ConfigFile = StateDir + "/session.json"
	// AddressFile receives host:port once the host serves, written
	// atomically so a reader never sees a partial address.
	AddressFile = StateDir + "/address"
	// ownerFile keeps the allocation the host received, so that a restarted
	// host still knows who owns its session.
	ownerFile = StateDir + "/owner.json"
	// filesDoneFile and setupDoneFile mark the steps of a session's setup
	// that ran, so that a restarted host does not run them again.
	filesDoneFile = StateDir + "/files-done"
	setupDoneFile = StateDir + "/setup-done"
	// servicesPasswordFile keeps the generated services password.
	servicesPasswordFile = StateDir + "/services-password"
)

// Config is the content of ConfigFile: what the host knows about its session.
type Config struct {
	Session        string   `json:"session"`
	ID             string   `json:"id"`
	Environment    string   `json:"environment"`
	Workshop       string   `json:"workshop"`
	Portal         string   `json:"portal"`
	PortalURL      string   `json:"portal_url"`
	SessionURL     string   `json:"session_url"`
	ConfigPassword string   `json:"config_password"`
	Env            []EnvVar `json:"env"`
	// WorkshopDir is the directory of the workshop definition file, the
	// base of relative directory.path items of WorkshopFiles.
	WorkshopDir string `json:"workshop_dir"`
	// WorkshopTitle and WorkshopDescription are the workshop's spec.title
	// and spec.description: the dashboard header and the workshop_title
	// and workshop_description variables. The title defaults to Workshop.
	WorkshopTitle       string `json:"workshop_title,omitempty"`
	WorkshopDescription string `json:"workshop_description,omitempty"`
	// WorkshopFiles is the workshop's spec.workshop.files as decoded YAML,
	// in the vendir-style shape of Educates: unpacked into the home before
	// the host reports ready.
	WorkshopFiles []map[string]any `json:"workshop_files,omitempty"`
	// Applications, Dashboards and Ingresses are the workshop's
	// spec.session.applications, .dashboards and .ingresses.
	Applications runtime.Applications `json:"applications,omitzero"`
	Dashboards   []runtime.Dashboard  `json:"dashboards,omitempty"`
	Ingresses    []runtime.Ingress    `json:"ingresses,omitempty"`
	// Owner is set for a session that has its owner as it starts; a reserved
	// session gets it later through POST /.portico/allocate.
	Owner *runtime.Allocation `json:"owner,omitempty"`
	// ServicesPassword is the services_password variable; generated and
	// kept in the home when empty.
	ServicesPassword string `json:"services_password,omitempty"`
	// WorkshopUser, when set, is who the workshop's programs run as, apart
	// from the host; nil runs them as the host.
	WorkshopUser *WorkshopUser `json:"workshop_user,omitempty"`
	// Network is set when the runtime brings the session's outbound
	// network up as the host starts: the host waits for it before it
	// fetches the workshop's files and runs its setup scripts.
	Network bool `json:"network,omitempty"`
}

// EnvVar is one variable of the session shell environment.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// WriteConfig writes cfg to the ConfigFile of home, readable by its owner
// only. The StateDir must exist.
func WriteConfig(home string, cfg Config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(home, ConfigFile), append(b, '\n'), 0o600)
}

// ReadConfig reads the ConfigFile of home.
func ReadConfig(home string) (Config, error) {
	path := filepath.Join(home, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Session == "" {
		return Config{}, fmt.Errorf("%s: session: must not be empty", path)
	}
	return cfg, nil
}

// ConfigOf is the configuration of the host of the session spec describes,
// as every runtime gives it.
func ConfigOf(spec runtime.Spec) Config {
	env := make([]EnvVar, len(spec.Env))
	for i, v := range spec.Env {
		env[i] = EnvVar{Name: v.Name, Value: v.Value}
	}
	return Config{
		Session:             spec.Session,
		ID:                  spec.ID,
		Environment:         spec.Environment,
		Workshop:            spec.Workshop,
		Portal:              spec.Portal,
		PortalURL:           spec.PortalURL,
		SessionURL:          spec.SessionURL,
		ConfigPassword:      spec.ConfigPassword,
		Env:                 env,
		WorkshopDir:         spec.WorkshopDir,
		WorkshopFiles:       spec.WorkshopFiles,
		Applications:        spec.Applications,
		Dashboards:          spec.Dashboards,
		Ingresses:           spec.Ingresses,
		WorkshopTitle:       spec.WorkshopTitle,
		WorkshopDescription: spec.WorkshopDescription,
		Owner:               spec.Owner,
	}
}
