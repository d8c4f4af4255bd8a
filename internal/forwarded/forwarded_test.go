package forwarded

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParse(t *testing.T) {
	ps, err := Parse(" 10.0.0.0/8, 192.168.1.7 ,,fd00::/8, 10.1.2.3/8")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "10.0.0.0/8"}
	if len(ps) != len(want) {
		t.Fatalf("got %v, want %v", ps, want)
	}
	for i := range ps {
		if ps[i].String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, ps[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestClient(t *testing.T) {
	ps, err := Parse("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: its header is ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer, one hop", "10.0.0.2:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left-most hop is not believed", "10.0.0.2:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.0.0.2:4000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", "10.0.0.2:4000", []string{"1.2.3.4", "198.51.100.1, 10.1.1.1"}, "198.51.100.1"},
		{"trusted all the way: the left-most", "10.0.0.2:4000", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"no header: the proxy itself", "10.0.0.2:4000", nil, "10.0.0.2"},
		{"garbage hop stops trust", "10.0.0.2:4000", []string{"198.51.100.1, nonsense"}, "10.0.0.2"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 client", "10.0.0.2:4000", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, ok := ps.Client(r)
		if !ok || got.String() != c.want {
			t.Errorf("%s: got %v %v, want %s", c.name, got, ok, c.want)
		}
	}
}

func TestHandler(t *testing.T) {
	ps, _ := Parse("127.0.0.1")
	var seen string
	h := ps.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", "2001:db8::7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "[2001:db8::7]:0" {
		t.Fatalf("RemoteAddr = %q", seen)
	}

	// Without trusted proxies the handler is left as it is.
	var none Proxies
	r.RemoteAddr = "127.0.0.1:5555"
	none.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr })).ServeHTTP(httptest.NewRecorder(), r)
	if seen != "127.0.0.1:5555" {
		t.Fatalf("RemoteAddr = %q", seen)
	}
}
