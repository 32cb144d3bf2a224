//! The dispatcher: fans events out to their webhooks, delivers due deliveries (one task per
//! webhook, a few requests at a time, each with its own timeout), retries with backoff, gives
//! up, runs the periodic checks, prunes, and keeps the metrics.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dialtone_model::Snapshot;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::checker::{self, CheckOutcome};
use super::metrics::WebhookMetrics;
use super::payload;
use super::sign::{ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use super::{Options, accepts};
use crate::store::{Delivery, NewDelivery, Store, StoreError};

/// Events fanned out per transaction.
const FAN_OUT_BATCH: u32 = 500;

/// How often the outbox depth is refreshed and too-old deliveries are given up.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How often delivered and given-up rows older than [`Options::keep`] are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A claimed delivery's lease beyond the request timeout: a dispatcher that dies mid-request
/// leaves the delivery due again this long after its timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Delivers the outbox to the configured webhooks. Build it, take its [`WebhookMetrics`] to
/// register, then [`Dispatcher::run`] it.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: watch::Receiver<Arc<Snapshot>>,
    options: Options,
    metrics: WebhookMetrics,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("store", &self.inner.store)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// What became of one attempt.
enum Attempt {
    Delivered,
    /// Worth retrying: timeout, connection error, 5xx, 408, 429.
    Retry(String),
    /// Retrying cannot help: another 4xx or 3xx.
    Permanent(String),
    /// The webhook is no longer configured: leave the delivery to expire.
    Gone,
}

/// The error of a request with its causes, without the URL (which may carry a token).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl Dispatcher {
    /// A dispatcher over `store`, reading the webhooks, alerts and policy from `config` as it
    /// changes, with [`Options::default`].
    pub fn new(store: Store, config: watch::Receiver<Arc<Snapshot>>) -> Self {
        Dispatcher::with_options(store, config, Options::default())
    }

    /// A dispatcher with explicit options.
    pub fn with_options(
        store: Store,
        config: watch::Receiver<Arc<Snapshot>>,
        options: Options,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                config,
                options,
                metrics: WebhookMetrics::new(),
            }),
        }
    }

    /// The dispatcher's metrics (clones share values): register them with
    /// [`WebhookMetrics::register`].
    pub fn metrics(&self) -> WebhookMetrics {
        self.inner.metrics.clone()
    }

    fn now(&self) -> Timestamp {
        (self.inner.options.clock)()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.config.borrow().clone()
    }

    /// Copies every event not yet fanned out into one delivery per target webhook: those
    /// named by the event (alerts, summaries), else every webhook whose `events` list is empty
    /// or names the event. Returns the number of deliveries created.
    ///
    /// # Errors
    ///
    /// A database error (the events stay pending for the next round).
    pub async fn fan_out(&self) -> Result<u64, StoreError> {
        let store = &self.inner.store;
        let mut created = 0;
        loop {
            let snapshot = self.snapshot();
            let webhooks = &snapshot.call_center.spec.webhooks;
            let events = store.pending_webhook_events(FAN_OUT_BATCH).await?;
            if events.is_empty() {
                return Ok(created);
            }
            let full = events.len() >= FAN_OUT_BATCH as usize;
            let batch: Vec<(String, String, Vec<NewDelivery>)> = events
                .into_iter()
                .map(|e| {
                    let targets: Vec<&str> = match &e.targets {
                        Some(names) => names
                            .iter()
                            .filter(|n| {
                                let known = webhooks.iter().any(|w| &w.name == *n);
                                if !known {
                                    tracing::warn!(event = %e.id, webhook = %n, "event names an unknown webhook");
                                }
                                known
                            })
                            .map(String::as_str)
                            .collect(),
                        None => webhooks
                            .iter()
                            .filter(|w| accepts(w, &e.event))
                            .map(|w| w.name.as_str())
                            .collect(),
                    };
                    let deliveries = targets
                        .into_iter()
                        .map(|w| NewDelivery {
                            webhook: w.to_owned(),
                            payload: e.payload.clone(),
                        })
                        .collect();
                    (e.id, e.event, deliveries)
                })
                .collect();
            created += store.fan_out_webhook_events(&batch, self.now()).await?;
            if !full {
                return Ok(created);
            }
        }
    }

    /// Runs the periodic checks once, as of the dispatcher's clock (see [`checker::check`]).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn check(&self) -> Result<CheckOutcome, StoreError> {
        checker::check(
            &self.inner.store,
            &self.snapshot(),
            &self.inner.options,
            self.now(),
        )
        .await
    }

    /// Gives up deliveries older than [`Options::max_age`], refreshes the depth gauges.
    async fn sweep(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let now = self.now();
        let before = now
            .checked_sub(signed(self.inner.options.max_age))
            .unwrap_or(Timestamp::MIN);
        for row in store.expire_webhook_deliveries(before, now).await? {
            tracing::warn!(
                webhook = %row.webhook, event = %row.event_id, attempts = row.attempts,
                last_error = ?row.last_error, "webhook delivery given up: too old"
            );
            self.inner.metrics.on_failed(&row.webhook, 1);
        }
        let (depths, events_pending) = store.webhook_outbox_depth().await?;
        self.inner
            .metrics
            .set_depths(depths.iter().map(|(w, n)| (w.as_str(), *n)));
        self.inner.metrics.set_events_pending(events_pending);
        Ok(())
    }

    /// The backoff after the `attempt`-th failed attempt: `initial_backoff × 2^(attempt−1)`,
    /// at most `max_backoff`, then a random share between half and all of it (jitter, so that
    /// deliveries failing together do not retry together).
    fn backoff(&self, attempt: u32) -> Duration {
        let o = &self.inner.options;
        let exp = attempt.saturating_sub(1).min(30);
        let base = o
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(o.max_backoff);
        let factor = 0.5 + fastrand::f64() * 0.5;
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }

    /// One attempt at one delivery, recorded in the store.
    async fn deliver(&self, client: &reqwest::Client, d: Delivery) {
        let o = &self.inner.options;
        let attempt = d.attempts.saturating_add(1);
        let outcome = self.attempt(client, &d, attempt).await;
        let now = self.now();
        let store = &self.inner.store;
        let metrics = &self.inner.metrics;
        let recorded = match outcome {
            Attempt::Gone => return,
            Attempt::Delivered => {
                metrics.on_delivered(&d.webhook);
                tracing::debug!(webhook = %d.webhook, event = %d.event_id, attempt, "webhook delivered");
                store.webhook_delivered(&d.id, attempt, now).await
            }
            Attempt::Retry(error) => {
                let too_old = now.duration_since(d.created_at) >= signed(o.max_age);
                if attempt >= o.max_attempts || too_old {
                    metrics.on_failed(&d.webhook, 1);
                    tracing::warn!(
                        webhook = %d.webhook, event = %d.event_id, attempt, %error,
                        "webhook delivery given up"
                    );
                    store.webhook_failed(&d.id, attempt, now, &error).await
                } else {
                    metrics.on_attempt_error(&d.webhook);
                    let wait = self.backoff(attempt);
                    tracing::info!(
                        webhook = %d.webhook, event = %d.event_id, attempt, %error,
                        retry_in_ms = wait.as_millis(), "webhook attempt failed; will retry"
                    );
                    let next = now.checked_add(signed(wait)).unwrap_or(now);
                    store.webhook_retry(&d.id, attempt, next, &error).await
                }
            }
            Attempt::Permanent(error) => {
                metrics.on_failed(&d.webhook, 1);
                tracing::warn!(
                    webhook = %d.webhook, event = %d.event_id, attempt, %error,
                    "webhook delivery refused; given up"
                );
                store.webhook_failed(&d.id, attempt, now, &error).await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the delivery is attempted again: at least once.
            tracing::warn!(webhook = %d.webhook, event = %d.event_id, error = %e, "webhook attempt not recorded");
        }
    }

    async fn attempt(&self, client: &reqwest::Client, d: &Delivery, attempt: u32) -> Attempt {
        let o = &self.inner.options;
        let snapshot = self.snapshot();
        let cc = &snapshot.call_center;
        let Some(webhook) = cc.spec.webhooks.iter().find(|w| w.name == d.webhook) else {
            return Attempt::Gone;
        };
        let body = payload::for_delivery(&d.payload, o.media_base_url.as_deref());
        let mut request = client
            .post(&webhook.url)
            .timeout(o.request_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &d.event)
            .header(DELIVERY_HEADER, &d.event_id)
            .header(ATTEMPT_HEADER, attempt.to_string());
        if let Some(key) = cc.webhook_keys.get(&d.webhook) {
            request = request.header(SIGNATURE_HEADER, sign(key, body.as_bytes()));
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Attempt::Retry(format!("HTTP {status}"))
                } else {
                    Attempt::Permanent(format!("HTTP {status}"))
                }
            }
            Err(e) => Attempt::Retry(describe(e, o.request_timeout)),
        }
    }

    /// One webhook's deliveries: claims due ones, up to [`Options::concurrency`] in flight,
    /// until `stop`. On `stop`, attempts cut short are released (due again at once) rather than
    /// left to their lease, so a restarted dispatcher makes them without waiting.
    async fn worker(self, name: String, client: reqwest::Client, mut stop: watch::Receiver<bool>) {
        let o = &self.inner.options;
        let limit = o.concurrency.max(1);
        let lease = o.request_timeout + LEASE_MARGIN;
        let mut in_flight: JoinSet<String> = JoinSet::new();
        let mut claimed: HashSet<String> = HashSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let free = limit.saturating_sub(in_flight.len());
            if free > 0 {
                let now = self.now();
                let until = now.checked_add(signed(lease)).unwrap_or(now);
                let free = u32::try_from(free).unwrap_or(u32::MAX);
                match self
                    .inner
                    .store
                    .claim_webhook_deliveries(&name, free, now, until)
                    .await
                {
                    Ok(deliveries) => {
                        for d in deliveries {
                            let this = self.clone();
                            let client = client.clone();
                            claimed.insert(d.id.clone());
                            in_flight.spawn(async move {
                                let id = d.id.clone();
                                this.deliver(&client, d).await;
                                id
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(webhook = %name, error = %e, "cannot claim webhook deliveries");
                    }
                }
            }
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(id) = done {
                        claimed.remove(&id);
                    }
                }
                () = tokio::time::sleep(o.poll_interval) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        in_flight.abort_all();
        while let Some(done) = in_flight.join_next().await {
            if let Ok(id) = done {
                claimed.remove(&id);
            }
        }
        if !claimed.is_empty() {
            let ids: Vec<String> = claimed.into_iter().collect();
            if let Err(e) = self
                .inner
                .store
                .release_webhook_deliveries(&ids, self.now())
                .await
            {
                // They are attempted again once their lease runs out.
                tracing::warn!(webhook = %name, error = %e, "cannot release webhook deliveries");
            }
        }
    }

    /// The periodic checks, every [`Options::check_interval`], until `stop`.
    async fn check_loop(self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.check().await {
                Ok(outcome) if outcome != CheckOutcome::default() => {
                    tracing::debug!(?outcome, "webhook checks enqueued events");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook checks failed; retrying later"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.options.check_interval) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped): fans events out every
    /// [`Options::poll_interval`], keeps one delivery task per configured webhook (started and
    /// stopped as the configuration changes), runs the checks every
    /// [`Options::check_interval`], gives up deliveries older than [`Options::max_age`] and
    /// prunes finished rows older than [`Options::keep`].
    ///
    /// Nothing here blocks ingestion or call handling: it only reads and writes the outbox
    /// tables. Errors are logged and retried at the next round.
    pub async fn run(self, client: reqwest::Client, mut shutdown: watch::Receiver<bool>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let checks = tokio::spawn(self.clone().check_loop(stop_rx.clone()));
        let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut next_sweep = Instant::now();
        let mut next_prune = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = self.fan_out().await {
                tracing::warn!(error = %e, "webhook events not fanned out; retrying");
            }
            let snapshot = self.snapshot();
            let names: Vec<&str> = snapshot
                .call_center
                .spec
                .webhooks
                .iter()
                .map(|w| w.name.as_str())
                .collect();
            workers.retain(|name, handle| {
                let keep = names.contains(&name.as_str()) && !handle.is_finished();
                if !keep {
                    handle.abort();
                }
                keep
            });
            for name in names {
                if !workers.contains_key(name) {
                    let task =
                        self.clone()
                            .worker(name.to_owned(), client.clone(), stop_rx.clone());
                    workers.insert(name.to_owned(), tokio::spawn(task));
                }
            }
            if Instant::now() >= next_sweep {
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "webhook outbox sweep failed");
                }
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            if Instant::now() >= next_prune {
                let before = self
                    .now()
                    .checked_sub(signed(self.inner.options.keep))
                    .unwrap_or(Timestamp::MIN);
                match self.inner.store.prune_webhooks(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "old webhook rows pruned"),
                    Err(e) => tracing::warn!(error = %e, "webhook rows not pruned"),
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.options.poll_interval) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        for (_, handle) in workers {
            let _ = handle.await;
        }
        let _ = checks.await;
    }
}
