//! Deliveries out: the dispatcher's claims (a lease on due rows), their outcomes (delivered,
//! retried later, given up), expiry of deliveries too old to matter and pruning of finished
//! rows.

use jiff::Timestamp;

use super::super::codec::{from_ns, to_ns};
use super::super::{Store, StoreError};
use super::{Delivery, OutboxRow, attempts, db, outbox_row};

impl Store {
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
}
