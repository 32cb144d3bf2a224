-- Dialtone reporter schema 2 (SQLite): the webhook outbox. The PostgreSQL twin is
-- migrations/postgres/0002_webhooks.sql; both keep the same tables, columns and indexes.
--
-- Instants are INTEGER nanoseconds since the Unix epoch (UTC), as in schema 1.

-- Every webhook event once, by a deterministic id (`{call_id}:call.missed`,
-- `callback.due:{group_id}`, ...): enqueueing is `INSERT ... ON CONFLICT DO NOTHING`, so a
-- re-ingested event, a replayed journal or a restarted checker never enqueues twice.
-- `payload` is the JSON body (without per-webhook links); `targets` is NULL for "every webhook
-- subscribed to `event`", else a JSON array of webhook names (alerts, summaries).
-- `fanned_out_at` is set once the event has been copied into `webhook_outbox` for each target.
CREATE TABLE webhook_events (
    id            TEXT    NOT NULL PRIMARY KEY,
    event         TEXT    NOT NULL,
    occurred_at   INTEGER NOT NULL,
    payload       TEXT    NOT NULL,
    targets       TEXT,
    created_at    INTEGER NOT NULL,
    fanned_out_at INTEGER
);
CREATE INDEX webhook_events_pending ON webhook_events (created_at) WHERE fanned_out_at IS NULL;
CREATE INDEX webhook_events_created ON webhook_events (created_at);

-- One delivery per (webhook, event): `id` is `{webhook}/{event id}`. Pending while neither
-- `delivered_at` nor `failed_at` is set; due when `next_attempt_at` has passed (a delivery in
-- flight holds a lease by pushing `next_attempt_at` past its timeout).
CREATE TABLE webhook_outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    webhook         TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (webhook, next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_created ON webhook_outbox (created_at);

-- Threshold alerts that fire once per crossing (`unprocessedAbove`): whether the value was
-- above the threshold at the last check, by alert name.
CREATE TABLE webhook_alerts (
    name       TEXT    NOT NULL PRIMARY KEY,
    above      INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
