package main

import (
	"log/slog"
	"net/http"
	"time"
)

// Timeouts of the portal's server. A request's headers must arrive within
// headerTimeout, and the whole request, body included, within readTimeout:
// a client that sends either a byte at a time (slow loris) cannot hold a
// connection and its goroutine for ever. The server lifts the deadline
// once the body has been read, and when a handler takes the connection
// over, so nothing bounds what follows: long-polls and a terminal's
// websocket through the session proxy run for minutes.
const (
	headerTimeout = 10 * time.Second
	readTimeout   = 40 * time.Second
	idleTimeout   = 2 * time.Minute
)

// newServer returns the portal's HTTP server for h, giving requests read
// to arrive.
func newServer(h http.Handler, log *slog.Logger, read time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(headerTimeout, read),
		ReadTimeout:       read,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
