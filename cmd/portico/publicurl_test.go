package main

import (
	"errors"
	"net"
	"testing"
)

// A portal listening on every address hands out a URL people on other
// machines can open. Before, it was http://[::]:8080.
func TestDefaultURL(t *testing.T) {
	route := func(v4, v6 string) func(string) (net.IP, error) {
		return func(network string) (net.IP, error) {
			s := map[string]string{"udp4": v4, "udp6": v6}[network]
			if s == "" {
				return nil, errors.New("network is unreachable")
			}
			return net.ParseIP(s), nil
		}
	}
	named := func(name string, ips ...string) (func() (string, error), func(string) ([]net.IP, error)) {
		return func() (string, error) { return name, nil }, func(host string) ([]net.IP, error) {
			if host != name || len(ips) == 0 {
				return nil, errors.New("no such host")
			}
			var out []net.IP
			for _, ip := range ips {
				out = append(out, net.ParseIP(ip))
			}
			return out, nil
		}
	}
	finder := func(v4, v6, name string, ips ...string) hostFinder {
		h, l := named(name, ips...)
		return hostFinder{outbound: route(v4, v6), hostname: h, lookup: l}
	}
	lan := finder("192.168.1.20", "2001:db8::20", "lab", "192.168.1.20")
	for _, tc := range []struct {
		name, scheme, listen, acme string
		find                       hostFinder
		want                       string
	}{
		{"loopback kept", "http", "127.0.0.1:8080", "", lan, "http://127.0.0.1:8080"},
		{"address kept", "http", "10.1.2.3:8080", "", lan, "http://10.1.2.3:8080"},
		{"any", "http", "[::]:8080", "", lan, "http://192.168.1.20:8080"},
		{"any IPv4", "http", "0.0.0.0:8080", "", lan, "http://192.168.1.20:8080"},
		{"IPv6 route only", "http", "[::]:8080", "", finder("", "2001:db8::20", "lab"), "http://[2001:db8::20]:8080"},
		{"IPv4 listener ignores an IPv6 route", "http", "0.0.0.0:8080", "", finder("", "2001:db8::20", "lab", "10.0.0.9"), "http://lab:8080"},
		{"no route: the host name", "http", "[::]:8080", "", finder("", "", "lab.example.org", "10.0.0.9"), "http://lab.example.org:8080"},
		{"no route, name of loopback", "http", "[::]:8080", "", finder("", "", "vm", "127.0.1.1"), "http://localhost:8080"},
		{"no route, unknown name", "http", "[::]:8080", "", finder("", "", "vm"), "http://localhost:8080"},
		{"https on 443 drops the port", "https", "[::]:443", "", lan, "https://192.168.1.20"},
		{"http on 80 drops the port", "http", "[::]:80", "", lan, "http://192.168.1.20"},
		{"IPv6 without port", "https", "[2001:db8::5]:443", "", lan, "https://[2001:db8::5]"},
		{"ACME names the portal", "https", "[::]:443", "portal.example.org.", lan, "https://portal.example.org"},
		{"ACME on another port", "https", "[::]:8443", "portal.example.org", lan, "https://portal.example.org:8443"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultURL(tc.scheme, addr, tc.acme, tc.find); got != tc.want {
			t.Errorf("%s: defaultURL(%s) = %s, want %s", tc.name, tc.listen, got, tc.want)
		}
	}
}

func TestSSLIPDomain(t *testing.T) {
	for url, want := range map[string]string{
		"http://192.168.1.20:8080":      "192-168-1-20.sslip.io",
		"https://10.0.0.5":              "10-0-0-5.sslip.io",
		"http://127.0.0.1:8080":         "",
		"http://[2001:db8::20]:8080":    "",
		"http://lab.example.org:8080":   "",
		"http://0.0.0.0:8080":           "",
		"http://192.168.1.20:8080/path": "192-168-1-20.sslip.io",
	} {
		if got := sslipDomain(url); got != want {
			t.Errorf("sslipDomain(%s) = %q, want %q", url, got, want)
		}
	}
}
