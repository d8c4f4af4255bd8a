package web

import (
	"net/http"
	"strings"
	"time"
)

// proxyResponseTimeout bounds the wait for a session host's answer to
// begin: a frozen host must not hold the portal's connections. What follows
// the headers (a websocket, a download) is the host's to end.
const proxyResponseTimeout = 30 * time.Second

func isConfigPath(rest string) bool {
	return strings.HasPrefix(rest, "config/") || strings.HasPrefix(rest, "workshop/config/")
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
