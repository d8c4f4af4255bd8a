//go:build !nokubernetes

package main

import (
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
)

// the first start win over the empty ones of the definitions.
func TestCredentialsOf(t *testing.T) {
	p := config.Portal{
		Admin: config.Credentials{Username: "educates", Password: "given"},
		Robot: config.Credentials{Username: "robot@educates"},
	}
	c := credentialsOf(p, auth.Generated{RobotPassword: "made", ClientID: "id", ClientSecret: "secret"})
	if c.AdminPassword != "given" || c.RobotUsername != "robot@educates" || c.RobotPassword != "made" ||
		c.ClientID != "id" || c.ClientSecret != "secret" {
		t.Errorf("credentials %+v", c)
	}
	if c := credentialsOf(p, auth.Generated{}); c.RobotPassword != "" || c.ClientSecret != "" {
		t.Errorf("a later start publishes %+v", c)
	}
}
