//! The Prometheus side of every limit the guard and the registrar enforce.
//!
//! Issue 6 item 7: *every limit is a metric and a log line*. The guard and the registrar
//! are sans-IO and owned by the node's actor, so rather than being read periodically they
//! hold clones of these handles (cheap atomics) and move them at the moment of the
//! decision; [`crate::node::NodeMetrics`] registers them next to the node's other metrics.
//! Unregistered handles (the default, as in unit tests) count all the same.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of the hostile-traffic limits.
#[derive(Debug, Clone, Default)]
pub struct SecurityMetrics {
    /// `dialtone_sip_banned_sources`: addresses under a flood ban now.
    pub banned_sources: Gauge,
    /// `dialtone_sip_bans_total`: flood bans started.
    pub bans: Counter,
    /// `dialtone_sip_banned_drops_total`: requests dropped because their source is banned
    /// (the request that triggers a ban included).
    pub banned_drops: Counter,
    /// `dialtone_sip_scanner_drops_total`: requests dropped silently as known scanners.
    pub scanner_drops: Counter,
    /// `dialtone_sip_guard_evictions_total`: sources forgotten because the guard's table was
    /// full (a spoofed-source flood; each one can slip past its flood window).
    pub guard_evictions: Counter,
    /// `dialtone_sip_auth_failures_total`: failed digest authentications of REGISTERs and of
    /// agents' INVITEs to dial out (unknown user and wrong password alike).
    pub auth_failures: Counter,
    /// `dialtone_sip_rate_limited_total`: REGISTERs and agents' INVITEs refused 403 because
    /// their source had too many authentication failures (the one that triggers the block
    /// included).
    pub rate_limited: Counter,
    /// `dialtone_sip_rate_limited_sources`: addresses blocked by the registrar now.
    pub rate_limited_sources: Gauge,
}

impl SecurityMetrics {
    /// Registers every handle in `registry` (names without `_total`: the encoder adds it).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dialtone_sip_banned_sources",
            "Source addresses under a SIP flood ban now",
            self.banned_sources.clone(),
        );
        registry.register(
            "dialtone_sip_bans",
            "SIP flood bans started",
            self.bans.clone(),
        );
        registry.register(
            "dialtone_sip_banned_drops",
            "SIP requests dropped because their source is banned",
            self.banned_drops.clone(),
        );
        registry.register(
            "dialtone_sip_scanner_drops",
            "SIP requests dropped silently as known scanners (User-Agent)",
            self.scanner_drops.clone(),
        );
        registry.register(
            "dialtone_sip_guard_evictions",
            "Sources forgotten by the flood guard because its table was full",
            self.guard_evictions.clone(),
        );
        registry.register(
            "dialtone_sip_auth_failures",
            "Failed digest authentications (REGISTER, agents' INVITEs)",
            self.auth_failures.clone(),
        );
        registry.register(
            "dialtone_sip_rate_limited",
            "REGISTERs and agents' INVITEs refused because their source had too many authentication failures",
            self.rate_limited.clone(),
        );
        registry.register(
            "dialtone_sip_rate_limited_sources",
            "Source addresses blocked by the registrar now",
            self.rate_limited_sources.clone(),
        );
    }
}

/// Whether the `n`th occurrence of something frequent deserves a log line: the 1st, 2nd,
/// 4th, 8th… A flood of scanner requests or evictions then costs log lines logarithmic in
/// its size, while the counters keep the exact figure.
pub(crate) fn log_worthy(n: u64) -> bool {
    n.is_power_of_two()
}
