package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/metrics"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/webhook"
)

// envWebhookSecret gives the webhook signing secret (whsec_…) instead of
// the one the portal makes up; never a flag, which every user of the
// machine can read.
const envWebhookSecret = "PORTICO_WEBHOOK_SECRET"

type webhookFlags struct {
	url          *string
	maxAge       *time.Duration
	retry        *time.Duration
	allowPrivate *bool
}

func addWebhookFlags(fs *flag.FlagSet) webhookFlags {
	return webhookFlags{
		url: fs.String("analytics-webhook", "", "URL to POST every analytics and session event to, signed per Standard Webhooks (the secret: $"+
			envWebhookSecret+", else one the portal makes up and shows to staff under Admin → Webhooks)"),
		maxAge: fs.Duration("webhook-max-age", webhook.DefaultMaxAge, "how long an event is retried before its delivery is given up"),
		retry:  fs.Duration("webhook-retry", webhook.DefaultBackoff, "pause before the first retry of a failed delivery; each next one waits about twice as long, up to an hour"),
		allowPrivate: fs.Bool("webhook-allow-private", false, "let the analytics_url of sessions (given by API clients) reach loopback, private "+
			"and link-local addresses: for a front end on the portal's own network (default: public addresses only)"),
	}
}

// webhooks makes the sender of the portal's events; its Run delivers them.
func webhooks(ctx context.Context, log *slog.Logger, f webhookFlags, db store.Store, box *secret.Box,
	p config.Portal, url, replica string, stats *metrics.Metrics) (*webhook.Sender, webhook.Secret, error) {
	given, _ := fromEnv(envWebhookSecret)
	sec, err := webhook.LoadSecret(ctx, db, box, given)
	if err != nil {
		if given != "" {
			return nil, sec, fmt.Errorf("%s: %w", envWebhookSecret, err)
		}
		return nil, sec, err
	}
	if *f.maxAge <= 0 || *f.retry <= 0 {
		return nil, sec, fmt.Errorf("--webhook-max-age and --webhook-retry must be positive")
	}
	return webhook.New(webhook.Options{Store: db, Secret: sec, URL: *f.url, Replica: replica, Log: log,
		Portal: webhook.Portal{Name: p.Name, UID: broker.PortalUID(p.Name), Generation: p.Generation, URL: url},
		MaxAge: *f.maxAge, Backoff: *f.retry, AllowPrivate: *f.allowPrivate,
		Observe: func(a webhook.Attempt) { stats.WebhookDelivery(a.Outcome, a.Latency) }}), sec, nil
}
