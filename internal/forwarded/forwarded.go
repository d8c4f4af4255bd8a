// Package forwarded finds the address a request came from when the portal
// sits behind proxies it trusts (an ingress controller, a load balancer).
//
// Without it every request behind an ingress carries the ingress's address,
// and the limits kept per address (failed access codes, sign-ups, token
// requests) would put a whole room in one bucket.
package forwarded

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the addresses whose X-Forwarded-For the portal believes.
type Proxies []netip.Prefix

// Parse reads a comma-separated list of CIDR prefixes and addresses, such as
// "10.0.0.0/8, 192.168.1.7".
func Parse(s string) (Proxies, error) {
	var ps Proxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return ps, nil
}

func (ps Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client is the address the request came from: the peer when it is not a
// trusted proxy, else the right-most address of X-Forwarded-For that is
// not one either. Addresses left of that one were written by the client
// itself and prove nothing.
func (ps Proxies) Client(r *http.Request) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	client := peer.Addr().Unmap()
	if !ps.trusts(client) {
		return client, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		fields := strings.Split(hops[i], ",")
		for j := len(fields) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(fields[j]))
			if err != nil {
				// A hop we cannot read: trust stops here.
				return client, true
			}
			client = a.Unmap()
			if !ps.trusts(client) {
				return client, true
			}
		}
	}
	return client, true
}

// Handler sets each request's RemoteAddr to its client's address (with port
// 0), so everything after it, rate limits and logs alike, sees the client.
func (ps Proxies) Handler(h http.Handler) http.Handler {
	if len(ps) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := ps.Client(r); ok {
			r2 := *r
			r2.RemoteAddr = net.JoinHostPort(a.String(), "0")
			r = &r2
		}
		h.ServeHTTP(w, r)
	})
}
