package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// Behind an ingress every request comes from the ingress's address. With
// the ingress named in --trusted-proxies, failed access codes count
// against the attendee's own address from X-Forwarded-For, so one person
// guessing cannot lock the room out; without it the header is ignored, so
// nobody dodges the limit by writing one.
func TestTrustedProxiesKeepAccessCodeLimitsPerAttendee(t *testing.T) {
	defs := strings.Replace(definitions(entry{Capacity: 1}), "    title: End-to-end tests\n",
		"    title: End-to-end tests\n    password: open-sesame\n", 1)
	p := startPortal(t, defs)
	c := p.client()

	// guess sends a wrong access code as the client at xff and returns the
	// status: 200 shows the form again, 429 says the guesses ran out.
	guess := func(xff string) int {
		t.Helper()
		resp, _ := c.do("GET", "/workshops/access/?redirect_url=%2F&password=wrong", nil, "X-Forwarded-For", xff)
		return resp.StatusCode
	}
	exhaust := func(xff string) {
		t.Helper()
		for i := 0; i < 50; i++ {
			if guess(xff) == http.StatusTooManyRequests {
				return
			}
		}
		t.Fatalf("50 wrong access codes from %s were never refused", xff)
	}

	exhaust("198.51.100.1")
	if got := guess("198.51.100.2"); got != http.StatusTooManyRequests {
		t.Fatalf("without --trusted-proxies a made-up X-Forwarded-For escaped the limit: status %d", got)
	}

	p.stop()
	p.args = append(p.args, "--trusted-proxies", "127.0.0.1/32")
	p.start()
	p.waitReady()
	exhaust("198.51.100.1")
	if got := guess("198.51.100.2"); got != http.StatusOK {
		t.Fatalf("another attendee behind the trusted proxy was refused: status %d", got)
	}
	// The left-most hop is the client's own word: ignored.
	if got := guess("198.51.100.2, 198.51.100.1"); got != http.StatusTooManyRequests {
		t.Fatalf("a blocked attendee escaped by prepending an address: status %d", got)
	}
}
