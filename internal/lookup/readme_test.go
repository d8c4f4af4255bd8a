package lookup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration the README shows loads as it is, secrets and all.
func TestReadmeConfig(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Educates' lookup service\n")
	if !ok {
		t.Fatal(`README has no section "Educates' lookup service"`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the README's lookup section has no YAML block")
	}
	block, _, _ = strings.Cut(block, "```")
	const secretFile = "/run/secrets/custom-portal"
	if !strings.Contains(block, secretFile) {
		t.Fatalf("the README's configuration no longer reads %s: update this test", secretFile)
	}
	file := filepath.Join(t.TempDir(), "custom-portal")
	if err := os.WriteFile(file, []byte("front-end-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"LOOKUP_ADMIN_PASSWORD", "PORTAL_EU_CLIENT_SECRET", "PORTAL_EU_ROBOT_PASSWORD"} {
		t.Setenv(env, "a-secret-of-"+env)
	}
	cfg, err := ParseConfig([]byte(strings.ReplaceAll(block, secretFile, file)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 2 || cfg.Clients[1].Password.Value != "front-end-password" || len(cfg.Tenants) != 1 ||
		len(cfg.Clusters) != 1 || cfg.Clusters[0].Portals[0].Credentials.Password.Value != "a-secret-of-PORTAL_EU_ROBOT_PASSWORD" {
		t.Errorf("the README's configuration read as %+v", cfg)
	}
	// Its tenant selects its portal.
	s, err := New(cfg, Options{Backend: func(PortalConfig) (Backend, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	portals, err := s.tenantPortals("customer-1")
	if err != nil || len(portals) != 1 || portals[0].name != "workshops-eu" {
		t.Errorf("customer-1's portals: %v %v", portals, err)
	}
}
