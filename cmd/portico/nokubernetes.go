//go:build nokubernetes

package main

import (
	"errors"
	"log/slog"
)

// kubeRuntime refuses: this portal was built without the Kubernetes
// runtime, which is most of the size of the binary (the Kubernetes client
// and its API types), for machines that run sessions locally only.
func kubeRuntime(*slog.Logger, string, string, string, string, string) (closingRuntime, error) {
	return nil, errors.New("--runtime kubernetes: this portal was built without the Kubernetes runtime (go build -tags nokubernetes); build it without that tag")
}
