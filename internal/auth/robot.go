package auth

import (
	"context"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// RobotCredentials are what a front end needs to use the REST API.
type RobotCredentials struct {
	Username, Password, ClientID, ClientSecret string
}

// Robot returns the robot's username and client id. Secrets are stored
// hashed and cannot be shown again: the definitions hold them when they
// set them, and RotateRobot makes new ones.
func (s *Service) Robot(ctx context.Context, p config.Portal) (RobotCredentials, error) {
	out := RobotCredentials{Username: p.Robot.Username}
	err := s.store.View(ctx, func(tx store.Tx) error {
		u, err := tx.User(p.Robot.Username)
		if err != nil {
			return err
		}
		c, err := tx.ClientOf(u.ID)
		out.ClientID = c.ID
		return err
	})
	return out, err
}

// RotateRobot gives the robot a new password and its client a new secret,
// for staff who lost the generated ones. Tokens already issued stay valid
// until they expire or are revoked.
func (s *Service) RotateRobot(ctx context.Context, p config.Portal) (RobotCredentials, error) {
	out := RobotCredentials{Username: p.Robot.Username, Password: secret.Alnum(32), ClientSecret: secret.Alnum(32)}
	pwHash, err := s.HashPassword(out.Password)
	if err != nil {
		return out, err
	}
	secretHash, err := s.HashPassword(out.ClientSecret)
	if err != nil {
		return out, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		u, err := tx.User(p.Robot.Username)
		if err != nil {
			return err
		}
		c, err := tx.ClientOf(u.ID)
		if err != nil {
			return err
		}
		u.PasswordHash, c.SecretHash = pwHash, secretHash
		out.ClientID = c.ID
		if err := tx.UpdateUser(&u); err != nil {
			return err
		}
		return tx.UpsertClient(c)
	})
	return out, err
}
