package broker

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error; the HTTP layer maps each kind to one
// status code in one place.
type Kind int

const (
	Invalid      Kind = iota + 1 // the request is malformed: 400
	Unauthorized                 // no valid credentials: 401
	Forbidden                    // valid credentials without the right: 403
	NotFound                     // no such object: 404
	Conflict                     // the request's object belongs to another: 409
	Unavailable                  // no capacity, or not ready: 503
)

// Error is a domain error with a reason meant for the person or program
// that made the request.
type Error struct {
	Kind   Kind
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Reason: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of a domain error, 0 for any other error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Reasons kept word for word from Educates, whose clients may show them.
// Refusals that read alike are told apart for the operator's metrics
// (RefusalReason).
var (
	errNoSession     = &Error{Unavailable, "No session available"}
	errCapacity      = &Error{Unavailable, "No session available"}
	errPortalMaximum = &Error{Unavailable, "No session available"}
	errUserLimit     = &Error{Unavailable, "No session available"}
	errNotReacquired = &Error{Unavailable, "Cannot be reacquired"}
)

// RefusalReasons are the reasons Observer.Refused gives.
var RefusalReasons = []string{"capacity", "portal_maximum", "user_limit", "unavailable",
	"not_reacquired", "not_found", "invalid", "forbidden", "conflict", "error"}

// refusalReason names why a request for a session failed, in one of a few
// words: the label of a metric, which must not carry the free text of a
// reason.
func refusalReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{errCapacity, "capacity"}, {errPortalMaximum, "portal_maximum"}, {errUserLimit, "user_limit"},
		{errNoSession, "unavailable"}, {errNotReacquired, "not_reacquired"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	switch KindOf(err) {
	case NotFound:
		return "not_found"
	case Invalid:
		return "invalid"
	case Unauthorized, Forbidden:
		return "forbidden"
	case Conflict:
		return "conflict"
	case Unavailable:
		return "unavailable"
	}
	return "error"
}
