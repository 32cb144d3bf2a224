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

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use sqlx::Row as _;

use super::codec::{from_ns, to_ns};
use super::{Store, StoreError};

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
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

const UPSERT_ALERT: &str = "INSERT INTO webhook_alerts (name, above, changed_at) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET above = excluded.above, \
    changed_at = excluded.changed_at";

pub(crate) const INSERT_WEBHOOK_EVENT: &str = "INSERT INTO webhook_events \
    (id, event, occurred_at, payload, targets, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (id) DO NOTHING";

const INSERT_DELIVERY: &str = "INSERT INTO webhook_outbox \
    (id, webhook, event_id, event, payload, attempts, created_at, next_attempt_at) \
    VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT (id) DO NOTHING";

/// The `targets` column of an event.
pub(crate) fn targets_column(targets: Option<&Vec<String>>) -> Option<String> {
    targets.map(|t| serde_json::Value::from(t.clone()).to_string())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn attempts(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Store {
    /// Enqueues a webhook event once: returns false when its id was enqueued before (nothing
    /// changes then).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn enqueue_webhook_event(
        &self,
        event: &WebhookEventRow,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query(INSERT_WEBHOOK_EVENT)
                .bind(&event.id)
                .bind(&event.event)
                .bind(to_ns(event.occurred_at))
                .bind(&event.payload)
                .bind(targets_column(event.targets.as_ref()))
                .bind(to_ns(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
                .map_err(db("enqueueing a webhook event"))
        })
    }

    /// Whether an event with this id was enqueued (and not pruned since).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_event_exists(&self, id: &str) -> Result<bool, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhook_events WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .map(|n| n > 0)
                .map_err(db("reading a webhook event"))
        })
    }

    /// A threshold alert that fires once per crossing: records whether the value is `above`
    /// now and, when it just crossed from below (or is above at the first check ever), enqueues
    /// `event` in the same transaction. Returns true when it enqueued.
    ///
    /// # Errors
    ///
    /// A database error (nothing changes then).
    pub async fn webhook_alert_crossing(
        &self,
        name: &str,
        above: bool,
        event: &WebhookEventRow,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning an alert check"))?;
            let was: Option<bool> =
                sqlx::query_scalar("SELECT above FROM webhook_alerts WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("reading an alert's state"))?;
            if was == Some(above) {
                return Ok(false);
            }
            sqlx::query(UPSERT_ALERT)
                .bind(name)
                .bind(above)
                .bind(to_ns(now))
                .execute(&mut *tx)
                .await
                .map_err(db("writing an alert's state"))?;
            let fired = if above {
                sqlx::query(INSERT_WEBHOOK_EVENT)
                    .bind(&event.id)
                    .bind(&event.event)
                    .bind(to_ns(event.occurred_at))
                    .bind(&event.payload)
                    .bind(targets_column(event.targets.as_ref()))
                    .bind(to_ns(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("enqueueing an alert"))?
                    .rows_affected()
                    > 0
            } else {
                false
            };
            tx.commit().await.map_err(db("committing an alert check"))?;
            Ok(fired)
        })
    }

    /// An alert that fires at most once per `every` for `key` (an agent's miss rate): enqueues
    /// `event` unless the key fired less than `every` before `now`, recording when it fired in
    /// the same transaction. Returns true when it enqueued.
    ///
    /// # Errors
    ///
    /// A database error (nothing changes then).
    pub async fn webhook_alert_throttled(
        &self,
        key: &str,
        every: SignedDuration,
        event: &WebhookEventRow,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now_ns = to_ns(now);
        let every_ns = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning an alert check"))?;
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT changed_at FROM webhook_alerts WHERE name = $1 AND above = $2",
            )
            .bind(key)
            .bind(true)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading an alert's state"))?;
            if last.is_some_and(|at| now_ns.saturating_sub(at) < every_ns) {
                return Ok(false);
            }
            sqlx::query(UPSERT_ALERT)
                .bind(key)
                .bind(true)
                .bind(now_ns)
                .execute(&mut *tx)
                .await
                .map_err(db("writing an alert's state"))?;
            let fired = sqlx::query(INSERT_WEBHOOK_EVENT)
                .bind(&event.id)
                .bind(&event.event)
                .bind(to_ns(event.occurred_at))
                .bind(&event.payload)
                .bind(targets_column(event.targets.as_ref()))
                .bind(now_ns)
                .execute(&mut *tx)
                .await
                .map_err(db("enqueueing an alert"))?
                .rows_affected()
                > 0;
            tx.commit().await.map_err(db("committing an alert check"))?;
            Ok(fired)
        })
    }

    /// Events not fanned out yet, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn pending_webhook_events(
        &self,
        limit: u32,
    ) -> Result<Vec<WebhookEventRow>, StoreError> {
        type Row = (String, String, i64, String, Option<String>);
        let rows: Vec<Row> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, event, occurred_at, payload, targets FROM webhook_events \
                 WHERE fanned_out_at IS NULL ORDER BY created_at, id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("reading webhook events"))
        })?;
        rows.into_iter()
            .map(|(id, event, at, payload, targets)| {
                let what = || format!("webhook event {id}");
                let targets = targets
                    .map(|t| serde_json::from_str::<Vec<String>>(&t))
                    .transpose()
                    .map_err(|e| StoreError::corrupt_row(what(), e))?;
                Ok(WebhookEventRow {
                    occurred_at: from_ns(at, &what())?,
                    id,
                    event,
                    payload,
                    targets,
                })
            })
            .collect()
    }

    /// Puts each event's deliveries in the outbox (idempotently) and marks the events fanned
    /// out, in one transaction. Returns the number of deliveries created.
    ///
    /// # Errors
    ///
    /// A database error (nothing changes then).
    pub async fn fan_out_webhook_events(
        &self,
        events: &[(String, String, Vec<NewDelivery>)],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let now = to_ns(now);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning a fan-out"))?;
            let mut created = 0;
            for (event_id, event, deliveries) in events {
                for d in deliveries {
                    created += sqlx::query(INSERT_DELIVERY)
                        .bind(format!("{}/{event_id}", d.webhook))
                        .bind(&d.webhook)
                        .bind(event_id)
                        .bind(event)
                        .bind(&d.payload)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("creating a webhook delivery"))?
                        .rows_affected();
                }
                sqlx::query("UPDATE webhook_events SET fanned_out_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("marking a webhook event"))?;
            }
            tx.commit().await.map_err(db("committing a fan-out"))?;
            Ok(created)
        })
    }

    /// Claims up to `limit` due deliveries of `webhook` (oldest due first): their
    /// `next_attempt_at` becomes `lease_until`, so that no other claim takes them while the
    /// attempt runs.
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn claim_webhook_deliveries(
        &self,
        webhook: &str,
        limit: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError> {
        type Row = (String, String, String, String, i64, i64);
        // The outer conditions again: a row claimed by a concurrent transaction since the
        // subquery read it is skipped (PostgreSQL re-checks them on the locked row).
        const CLAIM: &str = "UPDATE webhook_outbox SET next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_outbox WHERE webhook = $2 \
                          AND delivered_at IS NULL AND failed_at IS NULL \
                          AND next_attempt_at <= $3 \
                          ORDER BY next_attempt_at, created_at, id LIMIT $4) \
             AND next_attempt_at <= $3 AND delivered_at IS NULL AND failed_at IS NULL \
             RETURNING id, event_id, event, payload, attempts, created_at";
        let rows: Vec<Row> = with_pool!(self, write, |pool| {
            sqlx::query_as(CLAIM)
                .bind(to_ns(lease_until))
                .bind(webhook)
                .bind(to_ns(now))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db("claiming webhook deliveries"))
        })?;
        let mut claimed = rows
            .into_iter()
            .map(|(id, event_id, event, payload, tries, created)| {
                Ok(Delivery {
                    created_at: from_ns(created, &format!("webhook delivery {id}"))?,
                    webhook: webhook.to_owned(),
                    id,
                    event_id,
                    event,
                    payload,
                    attempts: attempts(tries),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    /// Makes claimed deliveries that are still pending due at `now` (their attempts were cut
    /// short by a shutdown), instead of waiting for their lease to run out.
    ///
    /// # Errors
    ///
    /// A database error (nothing changes then).
    pub async fn release_webhook_deliveries(
        &self,
        ids: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning a release"))?;
            for id in ids {
                sqlx::query(
                    "UPDATE webhook_outbox SET next_attempt_at = $1 \
                     WHERE id = $2 AND delivered_at IS NULL AND failed_at IS NULL",
                )
                .bind(to_ns(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("releasing a webhook delivery"))?;
            }
            tx.commit().await.map_err(db("committing a release"))
        })
    }

    /// Records a delivery's successful attempt (its `attempts`-th).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_delivered(
        &self,
        id: &str,
        attempts: u32,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.finish_attempt(
            "UPDATE webhook_outbox SET attempts = $1, delivered_at = $2, last_error = NULL \
             WHERE id = $3",
            id,
            attempts,
            to_ns(now),
            None,
        )
        .await
    }

    /// Records a failed attempt to retry at `next_attempt_at`.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_retry(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        self.finish_attempt(
            "UPDATE webhook_outbox SET attempts = $1, next_attempt_at = $2, last_error = $4 \
             WHERE id = $3",
            id,
            attempts,
            to_ns(next_attempt_at),
            Some(error),
        )
        .await
    }

    /// Records a failed attempt after which the delivery is given up.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_failed(
        &self,
        id: &str,
        attempts: u32,
        now: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        self.finish_attempt(
            "UPDATE webhook_outbox SET attempts = $1, failed_at = $2, last_error = $4 \
             WHERE id = $3",
            id,
            attempts,
            to_ns(now),
            Some(error),
        )
        .await
    }

    async fn finish_attempt(
        &self,
        sql: &'static str,
        id: &str,
        tries: u32,
        at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            let query = sqlx::query(sql).bind(i64::from(tries)).bind(at).bind(id);
            let query = match error {
                Some(e) => query.bind(e),
                None => query,
            };
            query
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(db("recording a webhook attempt"))
        })
    }

    /// Gives up every pending delivery put in the outbox before `created_before` (its target
    /// kept failing for too long, or was removed from the configuration). Returns them.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn expire_webhook_deliveries(
        &self,
        created_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        const EXPIRE: &str = "UPDATE webhook_outbox SET failed_at = $1, \
             last_error = COALESCE(last_error, 'never attempted') || ' (given up: too old)' \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND created_at < $2 \
             RETURNING id, webhook, event_id, event, attempts, created_at, next_attempt_at, \
             delivered_at, failed_at, last_error";
        with_pool!(self, write, |pool| {
            sqlx::query(EXPIRE)
                .bind(to_ns(now))
                .bind(to_ns(created_before))
                .fetch_all(pool)
                .await
                .map_err(db("expiring webhook deliveries"))
                .and_then(|rows| rows.iter().map(outbox_row).collect())
        })
    }

    /// Deletes delivered and given-up deliveries, and fanned-out events, older than `before`.
    /// Returns the number of rows deleted.
    ///
    /// # Errors
    ///
    /// A database error (nothing is deleted then).
    pub async fn prune_webhooks(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = to_ns(before);
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning a prune"))?;
            let outbox = sqlx::query(
                "DELETE FROM webhook_outbox \
                 WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning webhook deliveries"))?
            .rows_affected();
            let events = sqlx::query(
                "DELETE FROM webhook_events WHERE fanned_out_at IS NOT NULL AND created_at < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning webhook events"))?
            .rows_affected();
            tx.commit().await.map_err(db("committing a prune"))?;
            Ok(outbox + events)
        })
    }

    /// Counts of the whole outbox (delivered and given-up rows included: a scan, for tests and
    /// diagnostics; the metrics use [`Store::webhook_outbox_depth`]).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        const COUNTS: &str = "SELECT webhook, \
             SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END) \
             FROM webhook_outbox GROUP BY webhook";
        with_pool!(self, read, |pool| {
            let rows = sqlx::query(COUNTS)
                .fetch_all(pool)
                .await
                .map_err(db("counting webhook deliveries"))?;
            let mut stats = OutboxStats::default();
            for row in &rows {
                let name: String = row.try_get(0).map_err(db("counting webhook deliveries"))?;
                let get = |i: usize| row.try_get::<i64, _>(i).map(count);
                stats.webhooks.insert(
                    name,
                    OutboxCounts {
                        pending: get(1).map_err(db("counting webhook deliveries"))?,
                        delivered: get(2).map_err(db("counting webhook deliveries"))?,
                        failed: get(3).map_err(db("counting webhook deliveries"))?,
                    },
                );
            }
            let events: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_events WHERE fanned_out_at IS NULL",
            )
            .fetch_one(pool)
            .await
            .map_err(db("counting webhook events"))?;
            stats.events_pending = count(events);
            Ok(stats)
        })
    }

    /// Pending deliveries per webhook, and events not fanned out yet: the outbox depth, from
    /// the partial indexes (cheap enough for a metrics refresh every few seconds).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn webhook_outbox_depth(&self) -> Result<(BTreeMap<String, u64>, u64), StoreError> {
        with_pool!(self, read, |pool| {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT webhook, COUNT(*) FROM webhook_outbox \
                 WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY webhook",
            )
            .fetch_all(pool)
            .await
            .map_err(db("counting webhook deliveries"))?;
            let events: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_events WHERE fanned_out_at IS NULL",
            )
            .fetch_one(pool)
            .await
            .map_err(db("counting webhook events"))?;
            Ok((
                rows.into_iter().map(|(w, n)| (w, count(n))).collect(),
                count(events),
            ))
        })
    }

    /// Every enqueued event (not pruned), by id.
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn webhook_events(&self) -> Result<Vec<WebhookEventRow>, StoreError> {
        type Row = (String, String, i64, String, Option<String>);
        let rows: Vec<Row> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, event, occurred_at, payload, targets FROM webhook_events ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .map_err(db("reading webhook events"))
        })?;
        let mut events = Vec::with_capacity(rows.len());
        for (id, event, at, payload, targets) in rows {
            let what = format!("webhook event {id}");
            events.push(WebhookEventRow {
                occurred_at: from_ns(at, &what)?,
                targets: targets
                    .map(|t| serde_json::from_str::<Vec<String>>(&t))
                    .transpose()
                    .map_err(|e| StoreError::corrupt_row(what, e))?,
                id,
                event,
                payload,
            });
        }
        Ok(events)
    }

    /// The outbox's rows, by id.
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn webhook_outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query(
                "SELECT id, webhook, event_id, event, attempts, created_at, next_attempt_at, \
                 delivered_at, failed_at, last_error FROM webhook_outbox ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .map_err(db("reading webhook deliveries"))
            .and_then(|rows| rows.iter().map(outbox_row).collect())
        })
    }
}

fn outbox_row<R: sqlx::Row>(row: &R) -> Result<OutboxRow, StoreError>
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
