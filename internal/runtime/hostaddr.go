package runtime

import (
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The address of a session host (Instance.Address, stored with the session
// so that any replica reaches it) is either host:port, for a host on a
// network the portal shares (a pod's service), or "unix:" and the absolute
// path of a socket, for a host in a network namespace of its own that the
// portal reaches through its session directory (the local runtime).
//
// HTTP clients address hosts by URL, so a socket path is carried in the URL's
// host name, hex-encoded under the reserved .invalid domain: no name of the
// real DNS can mean it, and connections to different sockets are pooled
// apart, as the transport keys its pool by host.

// UnixAddress is the address of a host serving on the Unix socket at path.
func UnixAddress(path string) string { return unixPrefix + path }

// UnixSocket returns the socket path of a UnixAddress.
func UnixSocket(addr string) (path string, ok bool) { return strings.CutPrefix(addr, unixPrefix) }

const (
	unixPrefix = "unix:"
	unixDomain = ".unix.invalid"
)

// HostURL is the base URL of the host at addr, for a client whose transport
// dials with DialHost.
func HostURL(addr string) *url.URL {
	if path, ok := UnixSocket(addr); ok {
		return &url.URL{Scheme: "http", Host: hex.EncodeToString([]byte(path)) + unixDomain}
	}
	return &url.URL{Scheme: "http", Host: addr}
}

// DialHost connects to the host:port of a URL that HostURL made: the Unix
// socket it names, or that TCP address.
func DialHost(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	var d net.Dialer
	if enc, ok := strings.CutSuffix(host, unixDomain); ok {
		path, err := hex.DecodeString(enc)
		if err != nil || len(path) == 0 || path[0] != '/' {
			return nil, errors.New("malformed session host socket address")
		}
		var conn net.Conn
		err = throughShortPath(string(path), func(p string) (err error) {
			conn, err = d.DialContext(ctx, "unix", p)
			return err
		})
		return conn, err
	}
	return d.DialContext(ctx, network, hostport)
}

// HostTransport returns a transport that reaches session hosts by the
// URLs of HostURL: Unix sockets directly, TCP addresses through the
// environment's HTTP proxy if it names one (a portal outside a cluster
// reaches the cluster's services that way). responseTimeout bounds the
// wait for a host's response headers (0 for none).
func HostTransport(responseTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if strings.HasSuffix(r.URL.Hostname(), unixDomain) {
				return nil, nil
			}
			return http.ProxyFromEnvironment(r)
		},
		DialContext:           dialWithTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		// A host's headers are the session's to write: bound them.
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// HostClient returns a client of session hosts on HostTransport without a
// response timeout (callers bound their calls) that follows no redirect: a
// host's redirect is the session's to write.
func HostClient() *http.Client {
	return &http.Client{
		Transport:     HostTransport(0),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dialTimeout bounds a connection to a host, which is on this machine or
// in the cluster's network.
const dialTimeout = 5 * time.Second

func dialWithTimeout(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return DialHost(ctx, network, addr)
}

// ListenUnix listens on a new Unix socket at path, replacing a socket left
// there by an earlier listener (which refuses a new bind).
func ListenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var ln net.Listener
	err := throughShortPath(path, func(p string) (err error) {
		ln, err = net.Listen("unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The name goes with the socket, not with whatever replaced the path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}

// maxSocketPath is what a socket address holds of a path (108 bytes on
// Linux, with its terminating NUL), less a margin.
const maxSocketPath = 100

// throughShortPath calls f with path, or, when path is too long for a
// socket address (a data dir deep in the file system), with a short path
// to the same file through an open descriptor of its directory.
func throughShortPath(path string, f func(string) error) error {
	if len(path) <= maxSocketPath {
		return f(path)
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return f("/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(path))
}
