// Package sessionorigin names the origin each session is served from:
// <session>.<domain>, on the portal's scheme and port, as Educates serves
// them. A session on an origin of its own cannot read or send anything
// with the portal's cookies, whatever its pages do.
package sessionorigin

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Origins maps session names to their origins and back.
type Origins struct {
	scheme, domain, port string
}

// Local is the domain of sessions when the portal is on this machine:
// browsers resolve every name under it to loopback, with nothing to
// configure (RFC 6761).
const Local = "localhost"

// New returns the origins of the sessions of the portal at portalURL under
// domain. Without a domain, a portal on a loopback address or on localhost
// serves its sessions under localhost, and a portal on a host name under
// that name (a wildcard DNS record and certificate for *.<name> are then
// needed); a portal on another address has no default.
func New(portalURL, domain string) (Origins, error) {
	u, err := url.Parse(portalURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Origins{}, fmt.Errorf("portal URL %q is not an http or https URL", portalURL)
	}
	o := Origins{scheme: u.Scheme, port: u.Port(), domain: strings.ToLower(strings.TrimSuffix(domain, "."))}
	if o.domain == "" {
		host := strings.ToLower(u.Hostname())
		ip := net.ParseIP(host)
		switch {
		case host == Local || strings.HasSuffix(host, "."+Local) || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()):
			o.domain = Local
		case ip != nil:
			return Origins{}, fmt.Errorf("sessions are served from <session>.<domain>, and the portal's address %s names no domain: give one with --session-domain (its wildcard *.<domain> must reach the portal)", host)
		default:
			o.domain = host
		}
	}
	if err := validDomain(o.domain); err != nil {
		return Origins{}, err
	}
	return o, nil
}

func validDomain(d string) error {
	if net.ParseIP(d) != nil {
		return fmt.Errorf("session domain %q is an address: sessions need a domain name, as in <session>.<domain>", d)
	}
	for _, label := range strings.Split(d, ".") {
		if !isLabel(label) {
			return fmt.Errorf("session domain %q is not a domain name", d)
		}
	}
	return nil
}

// isLabel reports whether s is a DNS label of letters, digits and inner
// hyphens.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Domain is the domain the sessions are served under.
func (o Origins) Domain() string { return o.domain }

// URL is the origin of session, without a trailing slash ("" for the
// zero Origins).
func (o Origins) URL(session string) string {
	if o.domain == "" {
		return ""
	}
	host := session + "." + o.domain
	if o.port != "" {
		host = net.JoinHostPort(host, o.port)
	}
	return o.scheme + "://" + host
}

// Session returns the session whose origin serves host (a request's Host,
// with or without its port); ok is false for any other host, the portal's
// own among them.
func (o Origins) Session(host string) (name string, ok bool) {
	if h, p, err := net.SplitHostPort(host); err == nil {
		if p != o.port && !(o.port == "" && p == defaultPort(o.scheme)) {
			return "", false
		}
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name, ok = strings.CutSuffix(host, "."+o.domain)
	if !ok || !isLabel(name) {
		return "", false
	}
	return name, true
}

// Same reports whether origin (an Origin header) is exactly the origin of
// session: scheme, host and port.
func (o Origins) Same(origin, session string) bool {
	return origin == o.URL(session)
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
