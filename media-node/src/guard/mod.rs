//! Guards against hostile SIP traffic, applied to every request before it costs anything.
//!
//! A public SIP port is scanned within minutes of going up: SIPVicious & co. probe for
//! extensions and brute-force passwords, and floods (deliberate or a looping client) can
//! starve real calls. The guard answers two questions per request, sans-IO (the edge
//! passes the source address, the User-Agent and the time):
//!
//! 1. **Known scanner?** A User-Agent containing one of [`GuardConfig::scanners`]
//!    (case-insensitive) is dropped silently: no response tells the scanner a SIP server
//!    lives here.
//! 2. **Flooding?** In the spirit of Kamailio's `pike`: more than
//!    [`GuardConfig::flood_requests`] requests within [`GuardConfig::flood_window`]
//!    (sliding) from one IP bans it for [`GuardConfig::ban_for`]; while banned its requests
//!    are dropped without parsing further.
//!
//! PRODUCT.md: *SIP flood bans never apply to a Carrier's `inboundSources` or to the
//! address of a registered agent.* A carrier concentrates every caller's traffic on a few
//! addresses and a busy office registers many softphones behind one NAT address; banning
//! either would drop real calls. The guard keeps those exemptions itself:
//! [`Guard::update_from_snapshot`] on every configuration change and
//! [`Guard::exempt_until`] on every successful registration.
//!
//! Memory is bounded ([`GuardConfig::max_tracked`] sources, oldest forgotten first) and
//! every decision is a counter ([`GuardCounters`]), moves a Prometheus metric
//! ([`SecurityMetrics`], given with [`Guard::with_metrics`]) and, for the limits, writes a
//! log line with target `security`: every ban; scanner drops and evictions on their 1st,
//! 2nd, 4th, 8th… occurrence (a flood must not become a log flood); requests dropped while
//! banned only count (their ban was logged).

mod metrics;
mod table;

#[cfg(test)]
pub(crate) mod log_capture;
#[cfg(test)]
mod tests;

pub use metrics::SecurityMetrics;
pub(crate) use metrics::log_worthy;
pub(crate) use table::SourceTable;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dialtone_model::Snapshot;
use ipnet::IpNet;

/// User-Agent fragments of well-known SIP scanners and brute-forcers.
pub const DEFAULT_SCANNERS: &[&str] = &[
    "friendly-scanner",
    "friendly-request",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "vaxsipuseragent",
    "vaxipuseragent",
    "iwar",
    "sundayddr",
    "pplsip",
    "sipptk",
];

/// Limits of the guard.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Requests allowed from one IP within the window; one more bans it.
    pub flood_requests: u32,
    /// The sliding window.
    pub flood_window: Duration,
    /// How long a ban lasts.
    pub ban_for: Duration,
    /// Most sources tracked at once (the oldest is forgotten beyond).
    pub max_tracked: usize,
    /// User-Agent fragments dropped silently (matched case-insensitively).
    pub scanners: Vec<String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            flood_requests: 16,
            flood_window: Duration::from_secs(2),
            ban_for: Duration::from_secs(300),
            max_tracked: 65_536,
            scanners: DEFAULT_SCANNERS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Pass,
    /// A known scanner: drop it without a response.
    DropScanner,
    /// The source is banned: drop it without a response.
    Banned {
        /// When the ban ends.
        until: Instant,
    },
}

/// Counters for metrics (monotonic except the gauges `tracked` and `exemptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardCounters {
    /// Requests passed (exempt sources included).
    pub passed: u64,
    /// Requests passed from exempt sources without counting toward a flood.
    pub exempt: u64,
    /// Requests dropped as scanners.
    pub scanners_dropped: u64,
    /// Requests dropped because their source is banned.
    pub banned_dropped: u64,
    /// Bans started.
    pub bans: u64,
    /// Sources forgotten because the table was full.
    pub evicted: u64,
    /// Sources tracked now.
    pub tracked: usize,
    /// Sources banned now (bans whose time is over leave at the next check or sweep).
    pub banned_sources: usize,
    /// Registered-agent addresses exempt now (carrier ranges not included).
    pub exemptions: usize,
}

/// The guard (see the module documentation).
#[derive(Debug)]
pub struct Guard {
    config: GuardConfig,
    /// Scanner fragments, lower-cased once.
    scanners: Vec<String>,
    table: SourceTable<Instant>,
    carrier_nets: Vec<IpNet>,
    /// Registered agents' addresses and until when their registration runs.
    registered: HashMap<IpAddr, Instant>,
    counters: GuardCounters,
    metrics: SecurityMetrics,
}

impl Guard {
    /// A guard with these limits and no exemptions yet.
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            scanners: config
                .scanners
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            table: SourceTable::new(config.max_tracked),
            carrier_nets: Vec::new(),
            registered: HashMap::new(),
            counters: GuardCounters::default(),
            metrics: SecurityMetrics::default(),
            config,
        }
    }

    /// Reports every decision to these (registered) metrics as well.
    pub fn with_metrics(mut self, metrics: SecurityMetrics) -> Guard {
        self.metrics = metrics;
        self.publish_gauges();
        self
    }

    /// The limits in use.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Takes every Carrier's `inboundSources` from a new snapshot as exempt ranges
    /// (replacing the previous ones) and lifts bans on addresses inside them.
    pub fn update_from_snapshot(&mut self, snapshot: &Snapshot) {
        let nets = snapshot
            .carriers
            .values()
            .flat_map(|c| c.inbound_sources.iter().copied());
        self.set_carrier_sources(nets);
    }

    /// Sets the exempt carrier ranges directly.
    pub fn set_carrier_sources(&mut self, nets: impl IntoIterator<Item = IpNet>) {
        self.carrier_nets = nets.into_iter().map(|n| n.trunc()).collect();
        self.carrier_nets.sort();
        self.carrier_nets.dedup();
    }

    /// Exempts a registered agent's address until its registration ends (the edge calls
    /// this after every successful REGISTER with the binding's expiry; an earlier `until`
    /// never shortens a later one, since several agents may share a NAT address).
    pub fn exempt_until(&mut self, ip: IpAddr, until: Instant, now: Instant) {
        let ip = canonical(ip);
        if !self.registered.contains_key(&ip) && self.registered.len() >= self.config.max_tracked {
            self.sweep_exemptions(now);
            if self.registered.len() >= self.config.max_tracked {
                tracing::warn!(%ip, "guard: too many registered addresses to exempt another");
                return;
            }
        }
        let slot = self.registered.entry(ip).or_insert(until);
        *slot = (*slot).max(until);
        self.table.remove(&ip);
        self.publish_gauges();
    }

    /// Whether `ip` is never banned: inside a carrier's range or a registered agent's.
    pub fn is_exempt(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        self.carrier_nets.iter().any(|n| n.contains(&ip))
            || self.registered.get(&ip).is_some_and(|until| *until > now)
    }

    /// Whether a User-Agent belongs to a known scanner.
    pub fn is_scanner(&self, user_agent: &str) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        self.scanners.iter().any(|s| ua.contains(s.as_str()))
    }

    /// Judges one request from `ip` with this User-Agent (if it has one) at `now`.
    pub fn check(&mut self, ip: IpAddr, user_agent: Option<&str>, now: Instant) -> Verdict {
        let ip = canonical(ip);
        if user_agent.is_some_and(|ua| self.is_scanner(ua)) {
            self.counters.scanners_dropped += 1;
            self.metrics.scanner_drops.inc();
            let user_agent = user_agent.unwrap_or_default();
            if log_worthy(self.counters.scanners_dropped) {
                tracing::warn!(target: "security", %ip, user_agent,
                    dropped = self.counters.scanners_dropped,
                    "guard: known SIP scanner dropped silently");
            } else {
                tracing::debug!(target: "security", %ip, user_agent, "guard: scanner dropped");
            }
            return Verdict::DropScanner;
        }
        if self.is_exempt(ip, now) {
            self.counters.passed += 1;
            self.counters.exempt += 1;
            return Verdict::Pass;
        }
        let banned_before = self.table.banned_count();
        if let Some(until) = self.table.banned(&ip, now) {
            self.counters.banned_dropped += 1;
            self.metrics.banned_drops.inc();
            return Verdict::Banned { until };
        }
        if self.table.banned_count() != banned_before {
            // This source's ban just ended.
            self.publish_gauges();
        }
        let window_start = now.checked_sub(self.config.flood_window).unwrap_or(now);
        let limit = self.config.flood_requests as usize;
        let count = self.table.hit(ip, now, window_start, limit + 1);
        self.note_evictions();
        if count > limit {
            let until = now + self.config.ban_for;
            self.table.ban(ip, until);
            self.counters.bans += 1;
            self.counters.banned_dropped += 1;
            self.metrics.bans.inc();
            self.metrics.banned_drops.inc();
            self.publish_gauges();
            tracing::warn!(
                target: "security",
                %ip,
                limit = self.config.flood_requests,
                window_ms = self.config.flood_window.as_millis() as u64,
                ban_seconds = self.config.ban_for.as_secs(),
                "guard: SIP flood, source banned"
            );
            return Verdict::Banned { until };
        }
        self.counters.passed += 1;
        Verdict::Pass
    }

    /// Forgets idle sources, ended bans and lapsed exemptions. Optional (memory is bounded
    /// without it); the edge may call it every few seconds to keep the table small.
    pub fn sweep(&mut self, now: Instant) {
        let window_start = now.checked_sub(self.config.flood_window).unwrap_or(now);
        self.table.sweep(now, window_start);
        self.sweep_exemptions(now);
        self.publish_gauges();
    }

    /// Counts the sources the full table forgot since the last look.
    fn note_evictions(&mut self) {
        let new = self.table.evicted - self.counters.evicted;
        if new == 0 {
            return;
        }
        let before = self.counters.evicted;
        self.counters.evicted = self.table.evicted;
        self.metrics.guard_evictions.inc_by(new);
        // A forgotten source may have been banned.
        self.publish_gauges();
        // Logged when the total crosses a power of two: the first eviction says the table
        // is full, the following lines how hard it is being pushed.
        if (before + 1..=self.counters.evicted).any(log_worthy) {
            tracing::warn!(target: "security", evicted = self.counters.evicted,
                max_tracked = self.config.max_tracked,
                "guard: source table full, forgetting the oldest sources (spoofed-source flood?)");
        }
    }

    /// The gauge of banned sources, from the table.
    fn publish_gauges(&self) {
        let banned = i64::try_from(self.table.banned_count()).unwrap_or(i64::MAX);
        self.metrics.banned_sources.set(banned);
    }

    fn sweep_exemptions(&mut self, now: Instant) {
        self.registered.retain(|_, until| *until > now);
    }

    /// The counters, with the gauges filled in.
    pub fn counters(&self) -> GuardCounters {
        GuardCounters {
            tracked: self.table.len(),
            banned_sources: self.table.banned_count(),
            exemptions: self.registered.len(),
            evicted: self.table.evicted,
            ..self.counters
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports) are the
/// IPv4 address: one source, one window, one exemption.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
