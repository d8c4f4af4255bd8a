package sessionhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

// Client calls the endpoints a session host serves to its runtime: the
// allocation and the activity report. Every runtime reaches its hosts
// with it, so the wire format lives beside the handlers that serve it.
// Callers bound the calls with their context.
type Client struct {
	HTTP *http.Client
}

// CallTimeout is how long a runtime waits for a host to answer one call.
const CallTimeout = 2 * time.Second

// Allocate gives the host at addr its owner and request parameters;
// secret is the session's config password, which the host trusts.
func (c Client) Allocate(ctx context.Context, addr, secret string, a runtime.Allocation) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, runtime.HostURL(addr).JoinPath(allocatePath).String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SecretHeader, secret)
	_, err = c.do(req)
	return err
}

// Activity asks the host at addr how recently it was used.
func (c Client) Activity(ctx context.Context, addr string) (runtime.Activity, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, runtime.HostURL(addr).JoinPath("/session/activity").String(), nil)
	if err != nil {
		return runtime.Activity{}, err
	}
	body, err := c.do(req)
	if err != nil {
		return runtime.Activity{}, err
	}
	var a activityReport
	if err := json.Unmarshal(body, &a); err != nil {
		return runtime.Activity{}, err
	}
	return runtime.Activity{Idle: seconds(a.Idle), LastView: seconds(a.LastView)}, nil
}

// Healthy checks that the host at addr serves: its readiness probe.
func (c Client) Healthy(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, runtime.HostURL(addr).JoinPath("/healthz").String(), nil)
	if err != nil {
		return err
	}
	_, err = c.do(req)
	return err
}

func (c Client) do(req *http.Request) ([]byte, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// The answer is the session's to write: nothing of it is kept beyond
	// maxAnswer, and its reason phrase is not repeated.
	const maxAnswer = 64 << 10
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if len(body) > maxAnswer {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", req.Method, req.URL.Path, maxAnswer)
	}
	return body, nil
}

// seconds converts a reported number of seconds, whatever a host sends.
func seconds(s float64) time.Duration {
	switch {
	case s <= 0 || math.IsNaN(s):
		return 0
	case s >= math.MaxInt64/float64(time.Second):
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}
