package lookup

// Kind is what went wrong, which the HTTP edge maps to a status code.
type Kind int

// The kinds of error of the lookup service.
const (
	Invalid      Kind = iota + 1 // the request is malformed
	Unauthorized                 // no valid credentials or token
	Forbidden                    // the client may not do this
	NotFound                     // no such route or object
	Unavailable                  // no portal can serve the request now
)

// Error is an error of the lookup service with a reason fit for the
// client.
type Error struct {
	Kind   Kind
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func errInvalid(reason string) error      { return &Error{Invalid, reason} }
func errUnauthorized(reason string) error { return &Error{Unauthorized, reason} }
func errForbidden(reason string) error    { return &Error{Forbidden, reason} }
func errUnavailable(reason string) error  { return &Error{Unavailable, reason} }
