//! The webhook outbox (schema 2): events enqueued once by id, copied into one delivery per
//! target webhook, claimed by the dispatcher, delivered, retried or given up.
//!
//! - `webhook_events`: every event once ([`Store::enqueue_webhook_event`], and the ingestion's
//!   call events inside its own transaction). Ids are deterministic, inserts are
//!   `ON CONFLICT DO NOTHING`: enqueueing the same event again changes nothing.
//! - `webhook_outbox`: one row per (webhook, event), id `{webhook}/{event id}`
//!   ([`Store::fan_out_webhook_events`]). The dispatcher claims due rows by pushing their
//!   `next_attempt_at` past the request's timeout (a lease: a dispatcher that dies mid-request
//!   leaves the row due again later), then records the outcome.
//! - `webhook_alerts`: the last side of each threshold alert, so that it fires once per
//!   crossing across restarts.
//!
//! This file holds the row types and what the files share (statements the ingestion reuses,
//! row decoding); [`events`] enqueues events, fans them out to deliveries and records alert
//! crossings; [`outbox`] claims deliveries and records their outcomes (delivered, retried,
//! given up, expired, pruned); [`stats`] counts and lists the outbox for metrics, tests and
//! diagnostics.

mod events;
mod outbox;
mod stats;

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::StoreError;
use super::codec::from_ns;

/// A database error, naming what was being done.
pub(super) fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

/// A webhook event: what is enqueued, and what waits to be fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEventRow {
    /// Deterministic id (`{call_id}:call.missed`, `callback.due:{group}`, …); also the body's
    /// `id` and the `X-Dialtone-Delivery` header.
    pub id: String,
    /// The event name (`call.missed`).
    pub event: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// The JSON body.
    pub payload: String,
    /// `None`: every webhook subscribed to `event`; else these webhook names.
    pub targets: Option<Vec<String>>,
}

/// One delivery to create when fanning an event out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The webhook's name.
    pub webhook: String,
    /// The body it receives.
    pub payload: String,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `{webhook}/{event id}`.
    pub id: String,
    /// The webhook's name.
    pub webhook: String,
    /// The event's id.
    pub event_id: String,
    /// The event name.
    pub event: String,
    /// The body.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When it was put in the outbox.
    pub created_at: Timestamp,
}

/// A row of the outbox, for inspection (tests, `dialtone` diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// `{webhook}/{event id}`.
    pub id: String,
    /// The webhook's name.
    pub webhook: String,
    /// The event's id.
    pub event_id: String,
    /// The event name.
    pub event: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was put in the outbox.
    pub created_at: Timestamp,
    /// When the next attempt is due (or the current one's lease ends).
    pub next_attempt_at: Timestamp,
    /// When a 2xx came back.
    pub delivered_at: Option<Timestamp>,
    /// When it was given up.
    pub failed_at: Option<Timestamp>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// How the outbox stands, per webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Neither delivered nor given up.
    pub pending: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}

/// The outbox's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Events not fanned out yet.
    pub events_pending: u64,
    /// Deliveries by webhook name.
    pub webhooks: BTreeMap<String, OutboxCounts>,
}

impl OutboxStats {
    /// Pending deliveries over every webhook.
    pub fn pending(&self) -> u64 {
        self.webhooks.values().map(|c| c.pending).sum()
    }
}

pub(crate) const INSERT_WEBHOOK_EVENT: &str = "INSERT INTO webhook_events \
    (id, event, occurred_at, payload, targets, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (id) DO NOTHING";

/// The `targets` column of an event.
pub(crate) fn targets_column(targets: Option<&Vec<String>>) -> Option<String> {
    targets.map(|t| serde_json::Value::from(t.clone()).to_string())
}

/// A SQL count as an unsigned number.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// A stored attempt count, saturated rather than wrapped.
pub(super) fn attempts(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes an outbox row (columns in [`OutboxRow`] order), whichever the database.
pub(super) fn outbox_row<R: sqlx::Row>(row: &R) -> Result<OutboxRow, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let what = "reading a webhook delivery";
    let id: String = row.try_get(0).map_err(db(what))?;
    let at = |i: usize| -> Result<Timestamp, StoreError> {
        from_ns(row.try_get::<i64, _>(i).map_err(db(what))?, &id)
    };
    let maybe = |i: usize| -> Result<Option<Timestamp>, StoreError> {
        row.try_get::<Option<i64>, _>(i)
            .map_err(db(what))?
            .map(|ns| from_ns(ns, &id))
            .transpose()
    };
    Ok(OutboxRow {
        webhook: row.try_get(1).map_err(db(what))?,
        event_id: row.try_get(2).map_err(db(what))?,
        event: row.try_get(3).map_err(db(what))?,
        attempts: attempts(row.try_get(4).map_err(db(what))?),
        created_at: at(5)?,
        next_attempt_at: at(6)?,
        delivered_at: maybe(7)?,
        failed_at: maybe(8)?,
        last_error: row.try_get(9).map_err(db(what))?,
        id,
    })
}
