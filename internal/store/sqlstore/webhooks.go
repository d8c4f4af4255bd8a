package sqlstore

import (
	"errors"
	"strconv"
	"time"

	"github.com/portico-dev/portico/internal/store"
)

// The outbox of webhook deliveries. Claims and outcomes are bookkeeping of
// the deliverer, not state the reconciler acts on: they run through Exec,
// not write, so they do not wake the other replicas (like lease renewals).

const webhookColumns = `id, url, guarded, event, body, created, state, attempts, next_at, last_status, last_error, done`

func scanWebhook(row interface{ Scan(...any) error }) (store.Webhook, error) {
	var (
		w                     store.Webhook
		created, next, doneAt int64
	)
	err := row.Scan(&w.ID, &w.URL, &w.Guarded, &w.Event, &w.Body, &created, &w.State, &w.Attempts, &next,
		&w.LastStatus, &w.LastError, &doneAt)
	w.Created, w.NextAt, w.Done = fromMS(created), fromMS(next), fromMS(doneAt)
	return w, err
}

func (t *Tx) scanWebhooks(q string, args ...any) ([]store.Webhook, error) {
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, t.wrap(err)
		}
		out = append(out, w)
	}
	return out, t.wrap(rows.Err())
}

func (t *Tx) InsertWebhook(w store.Webhook) error {
	return t.insert("webhook", w.ID, `INSERT INTO webhooks (id, url, guarded, event, body, created, state,
		attempts, next_at, last_status, last_error, done) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		w.ID, w.URL, w.Guarded, w.Event, w.Body, ms(w.Created), w.State, w.Attempts, ms(w.NextAt),
		w.LastStatus, w.LastError, ms(w.Done))
}

// ClaimWebhooks is one statement: the rows it picks are locked and skipped
// by other replicas' claims (the dialect's Claim, which names its table s)
// until this transaction ends, and claimed for ttl after.
func (t *Tx) ClaimWebhooks(holder string, now time.Time, ttl time.Duration, limit int) ([]store.Webhook, error) {
	if limit <= 0 {
		return nil, errors.New("ClaimWebhooks: limit must be positive")
	}
	return t.scanWebhooks(`UPDATE webhooks SET claimed_by = ?, claim_expires = ? WHERE id IN (
		SELECT id FROM webhooks s WHERE state = 'pending' AND next_at <= ? AND claim_expires <= ?
		ORDER BY next_at LIMIT `+strconv.Itoa(limit)+` `+t.d.Claim+`) RETURNING `+webhookColumns,
		holder, ms(now.Add(ttl)), ms(now), ms(now))
}

func (t *Tx) FinishWebhook(w store.Webhook, holder string) error {
	return checkOne(t.Exec(`UPDATE webhooks SET state = ?, attempts = ?, next_at = ?, last_status = ?,
		last_error = ?, done = ?, claimed_by = '', claim_expires = 0
		WHERE id = ? AND claimed_by = ? AND state = 'pending'`,
		w.State, w.Attempts, ms(w.NextAt), w.LastStatus, w.LastError, ms(w.Done), w.ID, holder))
}

func (t *Tx) Webhooks(limit int) ([]store.Webhook, error) {
	return t.scanWebhooks(`SELECT `+webhookColumns+` FROM webhooks ORDER BY created DESC, id DESC LIMIT ?`, limit)
}

func (t *Tx) NextWebhook() (time.Time, error) {
	var next *int64
	err := t.QueryRow(`SELECT min(CASE WHEN claim_expires > next_at THEN claim_expires ELSE next_at END)
		FROM webhooks WHERE state = 'pending'`).Scan(&next)
	if err != nil || next == nil {
		return time.Time{}, t.wrap(err)
	}
	return fromMS(*next), nil
}

func (t *Tx) DeleteWebhooks(before time.Time) (int, error) {
	return affected(t.Exec(`DELETE FROM webhooks WHERE state <> 'pending' AND done <= ?`, ms(before)))
}

func (t *Tx) InsertSetting(name, value string) (string, error) {
	if _, err := t.Exec(`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, value); err != nil {
		return "", err
	}
	var stored string
	err := t.QueryRow(`SELECT value FROM settings WHERE name = ?`, name).Scan(&stored)
	return stored, t.wrap(err)
}
