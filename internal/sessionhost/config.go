package sessionhost

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/portico-dev/portico/internal/atomicfile"
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
	WorkshopDir    string   `json:"workshop_dir"`
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
