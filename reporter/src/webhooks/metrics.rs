//! The dispatcher's Prometheus metrics, labelled by webhook name.
//!
//! The lead registers them once: `metrics.with_registry(|r| webhooks.metrics().register(r))`.
//! Clones share their values, so the dispatcher keeps updating what the registry serves.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(webhook: &str) -> Labels {
    vec![("webhook".to_owned(), webhook.to_owned())]
}

/// Outbox depth and delivery counters.
#[derive(Debug, Clone, Default)]
pub struct WebhookMetrics {
    depth: Family<Labels, Gauge>,
    events_pending: Gauge,
    delivered: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    attempt_errors: Family<Labels, Counter>,
}

impl WebhookMetrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every metric in `registry`:
    ///
    /// - `dialtone_webhook_outbox_depth{webhook}` (gauge): deliveries waiting (due or backing
    ///   off), refreshed every few seconds from the database;
    /// - `dialtone_webhook_events_pending` (gauge): events not yet copied to their webhooks;
    /// - `dialtone_webhook_delivered_total{webhook}`: deliveries answered 2xx;
    /// - `dialtone_webhook_failed_total{webhook}`: deliveries given up (too many attempts,
    ///   too old, or a 4xx that retrying cannot fix);
    /// - `dialtone_webhook_attempt_errors_total{webhook}`: failed attempts that will be
    ///   retried (timeouts, connection errors, 5xx, 429).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dialtone_webhook_outbox_depth",
            "Webhook deliveries waiting in the outbox",
            self.depth.clone(),
        );
        registry.register(
            "dialtone_webhook_events_pending",
            "Webhook events not yet fanned out to their webhooks",
            self.events_pending.clone(),
        );
        registry.register(
            "dialtone_webhook_delivered",
            "Webhook deliveries answered 2xx",
            self.delivered.clone(),
        );
        registry.register(
            "dialtone_webhook_failed",
            "Webhook deliveries given up",
            self.failed.clone(),
        );
        registry.register(
            "dialtone_webhook_attempt_errors",
            "Failed webhook attempts that will be retried",
            self.attempt_errors.clone(),
        );
    }

    /// Pending deliveries of `webhook` as last refreshed.
    pub fn depth(&self, webhook: &str) -> i64 {
        self.depth.get_or_create(&labels(webhook)).get()
    }

    /// Deliveries to `webhook` answered 2xx by this process.
    pub fn delivered(&self, webhook: &str) -> u64 {
        self.delivered.get_or_create(&labels(webhook)).get()
    }

    /// Deliveries to `webhook` given up by this process.
    pub fn failed(&self, webhook: &str) -> u64 {
        self.failed.get_or_create(&labels(webhook)).get()
    }

    /// Failed attempts to `webhook` to be retried, by this process.
    pub fn attempt_errors(&self, webhook: &str) -> u64 {
        self.attempt_errors.get_or_create(&labels(webhook)).get()
    }

    pub(crate) fn set_depths<'a>(&self, depths: impl Iterator<Item = (&'a str, u64)>) {
        self.depth.clear();
        for (webhook, n) in depths {
            self.depth
                .get_or_create(&labels(webhook))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn set_events_pending(&self, n: u64) {
        self.events_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn on_delivered(&self, webhook: &str) {
        self.delivered.get_or_create(&labels(webhook)).inc();
    }

    pub(crate) fn on_failed(&self, webhook: &str, n: u64) {
        self.failed.get_or_create(&labels(webhook)).inc_by(n);
    }

    pub(crate) fn on_attempt_error(&self, webhook: &str) {
        self.attempt_errors.get_or_create(&labels(webhook)).inc();
    }
}
