package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// hostFinder finds the name or address by which other machines reach this
// one; its functions are the system's, replaced in tests.
type hostFinder struct {
	// outbound returns the local address of the route to the internet
	// for network "udp4" or "udp6".
	outbound func(network string) (net.IP, error)
	hostname func() (string, error)
	lookup   func(host string) ([]net.IP, error)
}

var system = hostFinder{
	outbound: func(network string) (net.IP, error) {
		// Connecting a UDP socket sends nothing; it only picks the route,
		// and so the address of the interface of the default route. The
		// destinations are documentation addresses (RFC 5737, 3849).
		dst := "192.0.2.1:9"
		if network == "udp6" {
			dst = "[2001:db8::1]:9"
		}
		c, err := net.Dial(network, dst)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP, nil
	},
	hostname: os.Hostname,
	lookup:   net.LookupIP,
}

// defaultURL is the portal's URL when --url does not give it: the address
// it listens on, unless that is a wildcard (:8080, 0.0.0.0:8080,
// [::]:8080), which nobody can open; then the address of this machine on
// its default route, which other machines on the network reach without
// DNS, else the host name when it names a non-loopback address of this
// machine, else localhost. With ACME, the name certified.
func defaultURL(scheme string, addr *net.TCPAddr, acmeDomain string, find hostFinder) string {
	port := fmt.Sprint(addr.Port)
	host := addr.IP.String()
	switch {
	case acmeDomain != "":
		host = strings.TrimSuffix(acmeDomain, ".")
	case addr.IP.IsUnspecified():
		host = find.publicHost(addr.IP.To4() != nil)
	}
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		if strings.Contains(host, ":") {
			return scheme + "://[" + host + "]"
		}
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// publicHost returns the host of a server listening on every address (on
// every IPv4 address only when v4only).
func (f hostFinder) publicHost(v4only bool) string {
	networks := []string{"udp4", "udp6"}
	if v4only {
		networks = networks[:1]
	}
	for _, n := range networks {
		if ip, err := f.outbound(n); err == nil && ip.IsGlobalUnicast() {
			return ip.String()
		}
	}
	if name, err := f.hostname(); err == nil && name != "" {
		if ips, err := f.lookup(name); err == nil && len(ips) > 0 && !ips[0].IsLoopback() {
			return name
		}
	}
	return "localhost"
}

// sslipDomain returns the domain under which sslip.io's public DNS answers
// every name with the IPv4 address of the portal's URL (<session>.10-0-0-5.sslip.io
// is 10.0.0.5), when that URL names the portal by such an address; else "".
// Session origins need a wildcard DNS name, and a portal on a LAN has none.
func sslipDomain(portalURL string) string {
	u, err := url.Parse(portalURL)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(u.Hostname()).To4()
	if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		return ""
	}
	return strings.ReplaceAll(ip.String(), ".", "-") + ".sslip.io"
}

// parseHTTPURL parses the portal's URL.
func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--url %q is not an http or https URL", s)
	}
	return u, nil
}
