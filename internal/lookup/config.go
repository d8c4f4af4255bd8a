package lookup

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the lookup service's configuration file. Its clients, tenants
// and clusters carry the fields of Educates' ClientConfig, TenantConfig and
// ClusterConfig resources (lookup.educates.dev/v1beta1); a cluster lists
// the portals it reaches over their REST APIs, where Educates watches the
// cluster's TrainingPortal resources instead.
type Config struct {
	Clients  []Client  `yaml:"clients"`
	Tenants  []Tenant  `yaml:"tenants"`
	Clusters []Cluster `yaml:"clusters"`
}

// Client is a front end allowed to log in (Educates' ClientConfig).
type Client struct {
	Name     string   `yaml:"name"`
	Password Secret   `yaml:"password"`
	Roles    []string `yaml:"roles"`
	// Tenants are names or glob patterns ("customer-*", "*").
	Tenants []string `yaml:"tenants"`
	User    string   `yaml:"user"`
}

// Tenant selects the clusters and portals a tenant's workshops come from
// (Educates' TenantConfig).
type Tenant struct {
	Name     string    `yaml:"name"`
	Clusters *Selector `yaml:"clusters"`
	Portals  *Selector `yaml:"portals"`
}

// Cluster groups portals under a name and labels tenants select on
// (Educates' ClusterConfig).
type Cluster struct {
	Name    string         `yaml:"name"`
	Labels  []Label        `yaml:"labels"`
	Portals []PortalConfig `yaml:"portals"`
}

// PortalConfig is a portal the service reaches over its REST API, with
// the credentials Educates reads from TrainingPortal.status.educates.
type PortalConfig struct {
	Name string `yaml:"name"`
	// URL is where the service reaches the portal's API; sessions are
	// handed out at the URL the portal itself announces.
	URL         string            `yaml:"url"`
	Labels      []Label           `yaml:"labels"`
	Credentials PortalCredentials `yaml:"credentials"`
}

// PortalCredentials are the portal's robot OAuth client and the account
// that requests sessions (its robot account).
type PortalCredentials struct {
	ClientID     string `yaml:"clientId"`
	ClientSecret Secret `yaml:"clientSecret"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
}

// Label is a label as Educates' resources spell them.
type Label struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Secret is a value written in the file, or a reference to where it is:
// {file: PATH} (its content, without a final newline) or {env: NAME}.
type Secret struct {
	Value string
}

// UnmarshalYAML reads a scalar or a {file} / {env} reference; the value
// is read when the file is loaded, so a missing secret fails at start.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&s.Value)
	}
	var ref struct {
		File string `yaml:"file"`
		Env  string `yaml:"env"`
	}
	if err := n.Decode(&ref); err != nil {
		return err
	}
	switch {
	case ref.File != "" && ref.Env != "":
		return errors.New("a secret is a value, a file or an environment variable, not several")
	case ref.File != "":
		b, err := os.ReadFile(ref.File)
		if err != nil {
			return fmt.Errorf("secret file: %w", err)
		}
		s.Value = strings.TrimRight(string(b), "\r\n")
	case ref.Env != "":
		v, ok := os.LookupEnv(ref.Env)
		if !ok {
			return fmt.Errorf("secret: $%s is not set", ref.Env)
		}
		s.Value = v
	default:
		return errors.New("a secret reference needs file or env")
	}
	return nil
}

// Roles a client may have, as Educates names them.
const (
	RoleAdmin  = "admin"
	RoleTenant = "tenant"
)

// ParseConfig reads and checks a configuration file's content. Errors
// name the field and the reason.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("lookup config: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("lookup config: %w", err)
	}
	return &c, nil
}

// LoadConfig reads the configuration file at path.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data)
}

func (c *Config) check() error {
	if len(c.Clients) == 0 {
		return errors.New("clients: at least one client is needed to log in")
	}
	names := map[string]bool{}
	for i, cl := range c.Clients {
		field := fmt.Sprintf("clients[%d]", i)
		if err := checkName(cl.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if names[cl.Name] {
			return fmt.Errorf("%s.name: %q is already a client", field, cl.Name)
		}
		names[cl.Name] = true
		// Educates' ClientConfig asks for 8 characters at least.
		if len(cl.Password.Value) < 8 {
			return fmt.Errorf("%s.password: at least 8 characters", field)
		}
		if len(cl.Roles) == 0 {
			return fmt.Errorf("%s.roles: at least one of admin, tenant", field)
		}
		for _, r := range cl.Roles {
			if r != RoleAdmin && r != RoleTenant {
				return fmt.Errorf("%s.roles: %q is not admin or tenant", field, r)
			}
		}
		for _, t := range cl.Tenants {
			if _, err := path.Match(t, ""); err != nil {
				return fmt.Errorf("%s.tenants: %q is not a valid pattern", field, t)
			}
		}
	}
	names = map[string]bool{}
	for i, t := range c.Tenants {
		field := fmt.Sprintf("tenants[%d]", i)
		if err := checkName(t.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if names[t.Name] {
			return fmt.Errorf("%s.name: %q is already a tenant", field, t.Name)
		}
		names[t.Name] = true
		for sel, s := range map[string]*Selector{"clusters": t.Clusters, "portals": t.Portals} {
			if err := s.check(); err != nil {
				return fmt.Errorf("%s.%s: %w", field, sel, err)
			}
		}
	}
	names = map[string]bool{}
	for i, cl := range c.Clusters {
		field := fmt.Sprintf("clusters[%d]", i)
		if err := checkName(cl.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if names[cl.Name] {
			return fmt.Errorf("%s.name: %q is already a cluster", field, cl.Name)
		}
		names[cl.Name] = true
		if err := checkLabels(cl.Labels); err != nil {
			return fmt.Errorf("%s.labels: %w", field, err)
		}
		portals := map[string]bool{}
		for j, p := range cl.Portals {
			field := fmt.Sprintf("%s.portals[%d]", field, j)
			if err := checkName(p.Name); err != nil {
				return fmt.Errorf("%s.name: %w", field, err)
			}
			if portals[p.Name] {
				return fmt.Errorf("%s.name: %q is already a portal of the cluster", field, p.Name)
			}
			portals[p.Name] = true
			u, err := url.Parse(p.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s.url: want http:// or https:// and a host", field)
			}
			if err := checkLabels(p.Labels); err != nil {
				return fmt.Errorf("%s.labels: %w", field, err)
			}
			cr := p.Credentials
			if cr.ClientID == "" || cr.ClientSecret.Value == "" {
				return fmt.Errorf("%s.credentials: clientId and clientSecret are needed", field)
			}
			if cr.Username != "" && cr.Password.Value == "" {
				return fmt.Errorf("%s.credentials.password: needed with username", field)
			}
		}
	}
	return nil
}

// checkName keeps names to what can stand in a URL path segment unescaped,
// as Kubernetes resource names can.
func checkName(name string) error {
	if name == "" {
		return errors.New("required")
	}
	if len(name) > 253 {
		return errors.New("at most 253 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%q: lowercase letters, digits, '-' and '.' only", name)
		}
	}
	return nil
}

func checkLabels(labels []Label) error {
	seen := map[string]bool{}
	for _, l := range labels {
		if l.Name == "" {
			return errors.New("a label needs a name")
		}
		if seen[l.Name] {
			return fmt.Errorf("%q twice", l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

func labelMap(labels []Label) map[string]string {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		m[l.Name] = l.Value
	}
	return m
}
