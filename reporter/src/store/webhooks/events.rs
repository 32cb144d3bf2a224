//! Webhook events in: enqueued once by id, alert crossings recorded with the event they fire,
//! and each pending event fanned out to one delivery per target webhook.

use jiff::{SignedDuration, Timestamp};

use super::super::codec::{from_ns, to_ns};
use super::super::{Store, StoreError};
use super::{INSERT_WEBHOOK_EVENT, NewDelivery, WebhookEventRow, db, targets_column};

const UPSERT_ALERT: &str = "INSERT INTO webhook_alerts (name, above, changed_at) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET above = excluded.above, \
    changed_at = excluded.changed_at";

const INSERT_DELIVERY: &str = "INSERT INTO webhook_outbox \
    (id, webhook, event_id, event, payload, attempts, created_at, next_attempt_at) \
    VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT (id) DO NOTHING";

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
}
