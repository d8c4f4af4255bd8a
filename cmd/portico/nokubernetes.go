//go:build nokubernetes

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
)

// kubeRuntime refuses: this portal was built without the Kubernetes
// runtime, which is most of the size of the binary (the Kubernetes client
// and its API types), for machines that run sessions locally only.
func kubeRuntime(*slog.Logger, string, string, string, string, string) (closingRuntime, error) {
	return nil, builtWithout("--runtime kubernetes")
}

// clusterDefinitions stands for the definitions of a cluster, which this
// build cannot read: loadFromCluster refuses, so there is never one.
type clusterDefinitions struct{}

func loadFromCluster(context.Context, *slog.Logger, definitionFlags, string, bool) (*config.Definitions, *clusterDefinitions, error) {
	return nil, nil, builtWithout("--definitions kubernetes")
}

func (*clusterDefinitions) events(e broker.Events) broker.Events { return e }

func (*clusterDefinitions) run(context.Context, *broker.Broker, string, config.Portal, auth.Generated) {
}

func builtWithout(flag string) error {
	return errors.New(flag + ": this portal was built without the Kubernetes runtime (go build -tags nokubernetes); build it without that tag")
}
