//! What the outbox holds: counts for the metrics and diagnostics, and full listings of
//! events and deliveries for tests.

use std::collections::BTreeMap;

use sqlx::Row as _;

use super::super::codec::from_ns;
use super::super::{Store, StoreError};
use super::{OutboxCounts, OutboxRow, OutboxStats, WebhookEventRow, count, db, outbox_row};

impl Store {
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
