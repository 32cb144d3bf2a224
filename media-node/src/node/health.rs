//! Readiness, liveness and metrics of a media node.
//!
//! The lead's ops HTTP server serves these; [`Health::routes`] is a ready-made axum router
//! with `/healthz`, `/readyz` (503 while draining) and `/metrics` for when the node runs alone.
//!
//! Carrier health (`dialtone_carrier_up{carrier}`) is set through
//! [`NodeMetrics::set_carrier_up`], which the actor calls whenever a carrier's OPTIONS probes
//! or its address resolution change: 1 when it is up and resolved, 0 when not.
//!
//! The hostile-traffic limits (flood bans, scanner drops, failed and rate-limited
//! REGISTERs) are [`SecurityMetrics`], registered here and handed to the guard and the
//! registrar, which move them as they decide.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::guard::SecurityMetrics;

type Labels = Vec<(String, String)>;

/// Whether the node takes new calls: false before the listeners are bound and while it
/// drains. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Whether the node takes new calls now.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// The node's metrics. Registered once in the registry given to [`Health::new`].
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    /// `dialtone_active_calls`: calls on this node now (drives autoscaling).
    pub active_calls: Gauge,
    /// `dialtone_calls_total`: inbound calls accepted for routing (calls per second is its
    /// rate).
    pub calls: Counter,
    /// `dialtone_sip_responses_total{code}`: SIP responses sent, by status code.
    pub sip_responses: Family<Vec<(String, String)>, Counter>,
    /// `dialtone_security_rejections_total`: INVITEs refused because they did not come from
    /// a carrier.
    pub security_rejections: Counter,
    /// `dialtone_inbound_dropped_total`: datagrams dropped because the node was overloaded.
    pub inbound_dropped: Counter,
    /// `dialtone_carrier_up{carrier}`: 1 when the carrier is reachable, 0 when not.
    pub carrier_up: Family<Labels, Gauge>,
    /// `dialtone_sip_banned_sources`, `dialtone_sip_bans_total`,
    /// `dialtone_sip_scanner_drops_total`, `dialtone_sip_auth_failures_total`,
    /// `dialtone_sip_rate_limited_total`, …: the guard's and the registrar's limits.
    pub security: SecurityMetrics,
}

impl NodeMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = NodeMetrics::default();
        registry.register(
            "dialtone_active_calls",
            "Calls active on this media node",
            m.active_calls.clone(),
        );
        registry.register(
            "dialtone_calls",
            "Inbound calls accepted for routing",
            m.calls.clone(),
        );
        registry.register(
            "dialtone_sip_responses",
            "SIP responses sent, by status code",
            m.sip_responses.clone(),
        );
        registry.register(
            "dialtone_security_rejections",
            "INVITEs refused because the source is no carrier",
            m.security_rejections.clone(),
        );
        registry.register(
            "dialtone_inbound_dropped",
            "SIP messages dropped because the node's queue was full",
            m.inbound_dropped.clone(),
        );
        registry.register(
            "dialtone_carrier_up",
            "Whether the carrier is reachable (1) or not (0)",
            m.carrier_up.clone(),
        );
        m.security.register(registry);
        m
    }

    /// Marks `carrier` up or down.
    pub fn set_carrier_up(&self, carrier: &str, up: bool) {
        self.carrier_up
            .get_or_create(&vec![("carrier".to_owned(), carrier.to_owned())])
            .set(i64::from(up));
    }

    /// Whether `carrier` is marked up; `None` when it is not tracked.
    pub fn carrier_up(&self, carrier: &str) -> Option<bool> {
        let labels = vec![("carrier".to_owned(), carrier.to_owned())];
        // `get` rather than `get_or_create`: asking must not add a series.
        self.carrier_up.get(&labels).map(|g| g.get() == 1)
    }

    pub(super) fn response_sent(&self, code: u16) {
        self.sip_responses
            .get_or_create(&vec![("code".to_owned(), code.to_string())])
            .inc();
    }
}

/// Readiness plus metrics: what the ops HTTP server needs from the node.
#[derive(Debug, Clone)]
pub struct Health {
    readiness: Readiness,
    metrics: NodeMetrics,
    registry: Option<Arc<Registry>>,
}

impl Health {
    /// Registers the node's metrics in `registry` (the process-wide one the lead serves).
    pub fn new(registry: &mut Registry) -> Self {
        Health {
            readiness: Readiness::default(),
            metrics: NodeMetrics::register(registry),
            registry: None,
        }
    }

    /// A registry of its own, for a node that serves [`Health::routes`] itself (tests).
    pub fn standalone() -> Self {
        let mut registry = Registry::default();
        let mut h = Health::new(&mut registry);
        h.registry = Some(Arc::new(registry));
        h
    }

    /// The readiness flag.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The metrics.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// The OpenMetrics text of the own registry ([`Health::standalone`]); empty otherwise.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(r) = &self.registry
            && prometheus_client::encoding::text::encode(&mut out, r).is_err()
        {
            out.clear();
        }
        out
    }

    /// `/healthz` (always 200 while the process runs), `/readyz` (503 while draining) and
    /// `/metrics` (the own registry).
    pub fn routes(&self) -> axum::Router {
        let ready = self.readiness.clone();
        let me = self.clone();
        axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(move || {
                    let ready = ready.is_ready();
                    async move {
                        if ready {
                            (StatusCode::OK, "ready").into_response()
                        } else {
                            (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let body = me.render();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        )
                    }
                }),
            )
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::guard::{Guard, GuardConfig, Verdict};

    /// The guard's handles are the ones `/metrics` shows: a ban moves the exported series.
    #[test]
    fn security_metrics_are_exported() {
        let health = Health::standalone();
        let before = health.render();
        for name in [
            "dialtone_sip_banned_sources 0",
            "dialtone_sip_bans_total 0",
            "dialtone_sip_banned_drops_total 0",
            "dialtone_sip_scanner_drops_total 0",
            "dialtone_sip_guard_evictions_total 0",
            "dialtone_sip_auth_failures_total 0",
            "dialtone_sip_rate_limited_total 0",
            "dialtone_sip_rate_limited_sources 0",
        ] {
            assert!(before.contains(name), "{name} missing from:\n{before}");
        }
        let config = GuardConfig {
            flood_requests: 2,
            ..GuardConfig::default()
        };
        let mut guard = Guard::new(config).with_metrics(health.metrics().security.clone());
        let ip = IpAddr::from([192, 0, 2, 66]);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..4u64)
            .map(|i| guard.check(ip, None, t0 + Duration::from_millis(i)))
            .collect();
        assert!(matches!(verdicts[2], Verdict::Banned { .. }));
        guard.check(ip, Some("friendly-scanner"), t0);
        let after = health.render();
        for name in [
            "dialtone_sip_banned_sources 1",
            "dialtone_sip_bans_total 1",
            "dialtone_sip_banned_drops_total 2",
            "dialtone_sip_scanner_drops_total 1",
        ] {
            assert!(after.contains(name), "{name} missing from:\n{after}");
        }
    }
}
