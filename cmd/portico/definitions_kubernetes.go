//go:build !nokubernetes

package main

import (
	"context"
	"log/slog"

	"k8s.io/client-go/dynamic"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/educatesk8s"
)

// clusterDefinitions is a portal's definitions kept as resources of a
// cluster, and its state published there.
type clusterDefinitions struct {
	source    *educatesk8s.Source
	publisher *educatesk8s.Publisher
}

// loadFromCluster waits for the definitions of the TrainingPortal served
// (the flags say which) in the cluster of kubeconfig, installing the
// resource definitions first when allowed, and follows their changes
// until ctx ends.
func loadFromCluster(ctx context.Context, log *slog.Logger, f definitionFlags, kubeconfig string, strict bool) (*config.Definitions, *clusterDefinitions, error) {
	cfg, err := clusterConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := educatesk8s.EnsureCRDs(ctx, client, *f.installCRDs); err != nil {
		return nil, nil, err
	}
	src := educatesk8s.NewSource(client, *f.portalName, log)
	src.Strict = strict
	src.Start(ctx)
	log.Info("reading the definitions from the cluster", "server", cfg.Host, "portal", *f.portalName)
	defs, portal, err := src.Wait(ctx)
	if err != nil {
		return nil, nil, err
	}
	pub := educatesk8s.NewPublisher(educatesk8s.PublisherOptions{Client: client, Portal: portal, Log: log})
	return defs, &clusterDefinitions{source: src, publisher: pub}, nil
}

// events adds the publisher to the receivers of the broker's events.
func (c *clusterDefinitions) events(e broker.Events) broker.Events {
	if c == nil {
		return e
	}
	return bothEvents{e, c.publisher}
}

type bothEvents [2]broker.Events

func (b bothEvents) Emit(e broker.Event) {
	b[0].Emit(e)
	b[1].Emit(e)
}

// run applies the changes of the definitions to b, and publishes the state
// of the portal, until ctx ends.
func (c *clusterDefinitions) run(ctx context.Context, b *broker.Broker, url string, p config.Portal, gen auth.Generated) {
	go c.source.Run(ctx, b.Apply)
	go c.publisher.Run(ctx, educatesk8s.Served{Reader: b, URL: url, Credentials: credentialsOf(p, gen)})
}

// credentialsOf are the credentials of the portal's accounts: those of the
// definitions, and those generated on this start (a later start knows
// only the former, and the status keeps the latter).
func credentialsOf(p config.Portal, gen auth.Generated) educatesk8s.Credentials {
	c := educatesk8s.Credentials{
		AdminUsername: p.Admin.Username, AdminPassword: p.Admin.Password,
		RobotUsername: p.Robot.Username, RobotPassword: p.Robot.Password,
		ClientID: p.RobotClient.ID, ClientSecret: p.RobotClient.Secret,
	}
	if gen.AdminPassword != "" {
		c.AdminPassword = gen.AdminPassword
	}
	if gen.RobotPassword != "" {
		c.RobotPassword = gen.RobotPassword
	}
	if gen.ClientSecret != "" {
		c.ClientID, c.ClientSecret = gen.ClientID, gen.ClientSecret
	}
	return c
}
