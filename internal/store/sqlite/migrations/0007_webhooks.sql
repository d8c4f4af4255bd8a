-- The outbox of webhook deliveries: one row per event and destination,
-- written in the transaction of the change that caused the event, so a
-- crash loses none. id is the webhook-id receivers deduplicate on; a
-- replica claims due rows until claim_expires, after which another may
-- retry them. Times are Unix milliseconds, 0 meaning unset.
CREATE TABLE webhooks (
	id            TEXT    PRIMARY KEY,
	url           TEXT    NOT NULL,
	guarded       INTEGER NOT NULL DEFAULT 0,
	event         TEXT    NOT NULL,
	body          TEXT    NOT NULL,
	created       INTEGER NOT NULL,
	state         TEXT    NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_at       INTEGER NOT NULL,
	claimed_by    TEXT    NOT NULL DEFAULT '',
	claim_expires INTEGER NOT NULL DEFAULT 0,
	last_status   INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT    NOT NULL DEFAULT '',
	done          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_due ON webhooks (next_at) WHERE state = 'pending';
CREATE INDEX webhooks_recent ON webhooks (created, id);

-- Values the portal makes up once and every replica shares (the webhook
-- signing secret, sealed).
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
