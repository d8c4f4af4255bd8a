package auth

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/username"
)

// Invalid lists what is wrong with a form, by field, in words for the
// person who filled it in.
type Invalid map[string]string

func (e Invalid) Error() string {
	var b strings.Builder
	for field, reason := range e {
		fmt.Fprintf(&b, "%s: %s; ", field, reason)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// Signup is what a person gives to register (spec §3.2: the one-step
// form of django-registration).
type Signup struct {
	Username, Email, Password, Confirm string
}

// usernamePattern is Django's: letters, digits and @.+-_ only.
var usernamePattern = regexp.MustCompile(`^[\pL\pN@.+\-_]+$`)

const maxUsername = 150 // characters, as Django counts them

// Register creates a registered user, after the checks Django makes:
// a valid, free username, an email address, and a password that is long
// enough, not only digits, not common and not like the username. Beyond
// Django, the username must not be reserved by portal p (nameProblem),
// nor normalise like an account's name or look like one as written: the
// account keeps its name in the Display form.
func (s *Service) Register(ctx context.Context, p config.Portal, in Signup) (store.User, error) {
	bad := Invalid{}
	display, _ := username.Display(in.Username)
	switch {
	case in.Username == "":
		bad["username"] = "Enter a username."
	case utf8.RuneCountInString(in.Username) > maxUsername:
		bad["username"] = fmt.Sprintf("Use at most %d characters.", maxUsername)
	case !usernamePattern.MatchString(in.Username):
		bad["username"] = "Use only letters, digits and @ . + - _ characters."
	default:
		if reason := nameProblem(p, display); reason != "" {
			bad["username"] = reason
		}
	}
	if addr, err := mail.ParseAddress(in.Email); err != nil || addr.Address != in.Email {
		bad["email"] = "Enter a valid email address."
	}
	if reason := checkPassword(in.Password, in.Username, in.Email); reason != "" {
		bad["password1"] = reason
	} else if in.Confirm != in.Password {
		bad["password2"] = "The two passwords do not match."
	}
	if len(bad) > 0 {
		return store.User{}, bad
	}
	hash, err := s.HashPassword(in.Password)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{Username: display, Email: in.Email, PasswordHash: hash,
		Role: store.RoleRegistered, Origin: store.OriginSignup, Created: s.clock.Now()}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		// Names that look alike are not a unique key: sign-ups take turns
		// to check them, on every replica.
		if err := tx.LockPortal(); err != nil {
			return err
		}
		if _, err := tx.User(display); err == nil {
			return errTaken
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := tx.UserLike(display); err == nil {
			return Invalid{"username": "That username looks like the name of another account."}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.InsertUser(&u)
	})
	if errors.Is(err, store.ErrConflict) {
		return u, errTaken
	}
	return u, err
}

var errTaken = Invalid{"username": "A user with that username already exists."}

// MinPassword is the shortest password accepted, as Django's default.
const MinPassword = 8

// checkPassword applies Django's default password validators and returns
// why the password is refused, or "".
func checkPassword(password, username, email string) string {
	switch {
	case len([]rune(password)) < MinPassword:
		return fmt.Sprintf("This password is too short. It must contain at least %d characters.", MinPassword)
	case len(password) > 72: // all bcrypt reads
		return "This password is too long: at most 72 bytes."
	case strings.IndexFunc(password, func(r rune) bool { return !unicode.IsDigit(r) }) < 0:
		return "This password is entirely numeric."
	case common()[strings.ToLower(password)]:
		return "This password is too common."
	}
	local, _, _ := strings.Cut(email, "@")
	for _, attr := range []string{username, local} {
		if similar(password, attr) {
			return "This password is too similar to your username or email address."
		}
	}
	return ""
}

// similar reports whether a password gives away an attribute of its
// owner, or the other way round: Django compares with a ratio of 0.7;
// containment of one in the other, ignoring case, catches the same cases
// that matter ("alice" and "alice2024!").
func similar(password, attr string) bool {
	p, a := strings.ToLower(password), strings.ToLower(attr)
	if len(a) < 3 {
		return false
	}
	return strings.Contains(p, a) || strings.Contains(a, p)
}

//go:embed common-passwords.txt
var commonPasswords string

var common = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(commonPasswords, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
})
