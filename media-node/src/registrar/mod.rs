//! The registrar for agents' softphones: REGISTER as a sans-IO state machine.
//!
//! The edge turns a REGISTER into a [`RegisterRequest`] ([`RegisterRequest::from_headers`]),
//! calls [`Registrar::on_register`] with the current snapshot and the wall-clock time, and
//! executes the [`RegisterOutcome`]: the response to send ([`RegisterOutcome::status`],
//! [`RegisterOutcome::reason`], [`RegisterOutcome::headers`]) and, on success, the router
//! calls to make ([`RouterCall`]). Nothing here does I/O.
//!
//! Authentication is HTTP Digest ([`digest`]: MD5 and SHA-256, `qop=auth`, RFC 2617 /
//! RFC 8760) against the agents' SIP credentials in the snapshot. Nonces are stateless and
//! verifiable by every media node sharing [`RegistrarConfig::nonce_secret`].
//!
//! The same digest check ([`Registrar::authenticate`], in `request_auth`) authenticates the
//! INVITEs agents send from their softphones to dial out (407 / `Proxy-Authenticate`), with
//! the same nonces, replay table and failure limits.
//!
//! Hostile clients: an unknown user and a wrong password take the same path (the same
//! work, the same 401 with a fresh challenge), so accounts cannot be enumerated. Every
//! failure counts against the source address; [`RegistrarConfig::max_failures`] within
//! [`RegistrarConfig::failure_window`] answers 403 and refuses that address for
//! [`RegistrarConfig::block_for`] — even with the right password, so that guessing cannot
//! continue. Every decision is a counter ([`RegistrarCounters`]); failures and blocks also
//! move Prometheus metrics ([`SecurityMetrics`], given with [`Registrar::with_metrics`]) and
//! write log lines with target `security` (each failure, each block started).

mod bindings;
mod contact;
pub mod digest;
mod outcome;
mod request_auth;
#[cfg(test)]
mod tests;

pub use bindings::Binding;
pub use contact::{ContactSpec, Contacts, HeaderError, uri_user};
pub use outcome::{
    ContactEntry, ForbiddenCause, RegisterOutcome, RegisterRequest, Registered, RegistrarCounters,
    RouterCall,
};
use request_auth::Denied;
pub use request_auth::{AuthOutcome, AuthRequest, RegisteredFrom};

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_model::Snapshot;
use dialtone_model::snapshot::AgentConfig;

use crate::guard::{SecurityMetrics, SourceTable, canonical};
use bindings::{Bindings, same_uri};
use digest::{Algorithm, NonceKey};

/// Limits and identity of the registrar.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The digest realm (also the domain of canonical AORs).
    pub realm: String,
    /// Secret shared by all media nodes to sign nonces.
    pub nonce_secret: Vec<u8>,
    /// How long a nonce is accepted before it is stale.
    pub nonce_ttl: Duration,
    /// Algorithms offered, preferred first (one WWW-Authenticate each, RFC 8760 §2.4).
    pub algorithms: Vec<Algorithm>,
    /// Shortest registration accepted (shorter: 423 with Min-Expires).
    pub min_expires: u32,
    /// Longest registration granted (longer is clamped).
    pub max_expires: u32,
    /// Granted when the REGISTER says nothing.
    pub default_expires: u32,
    /// Contacts kept per AOR (the oldest is dropped beyond).
    pub max_contacts: usize,
    /// Failed authentications from one address that trigger a block.
    pub max_failures: u32,
    /// The window they are counted in.
    pub failure_window: Duration,
    /// How long a blocked address gets 403.
    pub block_for: Duration,
    /// Addresses tracked for failures at most (and nonces tracked for replay).
    pub max_tracked: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "dialtone".to_owned(),
            nonce_secret: Vec::new(),
            nonce_ttl: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            block_for: Duration::from_secs(300),
            max_tracked: 65_536,
        }
    }
}

/// The registrar (see the module documentation).
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    key: NonceKey,
    failures: SourceTable<SystemTime>,
    /// Highest `nc` seen per nonce (replay protection), bounded FIFO.
    nonce_counts: HashMap<String, u32>,
    nonce_order: VecDeque<String>,
    bindings: Bindings,
    counters: RegistrarCounters,
    metrics: SecurityMetrics,
}

impl Registrar {
    /// A registrar with no bindings.
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            key: NonceKey::new(&config.nonce_secret),
            failures: SourceTable::new(config.max_tracked),
            nonce_counts: HashMap::new(),
            nonce_order: VecDeque::new(),
            bindings: Bindings::default(),
            counters: RegistrarCounters::default(),
            metrics: SecurityMetrics::default(),
            config,
        }
    }

    /// Reports failures and blocks to these (registered) metrics as well.
    pub fn with_metrics(mut self, metrics: SecurityMetrics) -> Registrar {
        self.metrics = metrics;
        self.publish_gauges();
        self
    }

    /// The gauge of blocked sources, from the failure table.
    fn publish_gauges(&self) {
        let blocked = i64::try_from(self.failures.banned_count()).unwrap_or(i64::MAX);
        self.metrics.rate_limited_sources.set(blocked);
    }

    /// The configuration in use.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> RegistrarCounters {
        self.counters
    }

    /// Handles one REGISTER at wall-clock time `now`.
    pub fn on_register(
        &mut self,
        req: &RegisterRequest,
        snapshot: &Snapshot,
        now: SystemTime,
    ) -> RegisterOutcome {
        let verified = self.verify(
            "REGISTER",
            &req.request_uri,
            req.authorization.as_deref(),
            req.source,
            snapshot,
            now,
        );
        let agent = match verified {
            Ok(agent) => agent,
            Err(Denied::Challenge(www_authenticate)) => {
                return RegisterOutcome::Challenge { www_authenticate };
            }
            Err(Denied::Forbidden(cause)) => return RegisterOutcome::Forbidden { cause },
            Err(Denied::BadRequest(detail)) => return RegisterOutcome::BadRequest { detail },
        };

        let allowed = agent.has_softphone()
            && uri_user(&req.to_uri).is_some_and(|user| {
                user == agent.name
                    || agent.sip.as_ref().is_some_and(|s| s.username == user)
                    || agent.extension.as_deref() == Some(user)
            });
        if !allowed {
            self.counters.not_allowed += 1;
            tracing::warn!(target: "security", agent = %agent.name, aor = %req.to_uri, source = %req.source,
                "REGISTER refused: the AOR does not belong to the authenticated agent");
            return RegisterOutcome::Forbidden {
                cause: ForbiddenCause::NotAllowed,
            };
        }
        let username = agent
            .sip
            .as_ref()
            .map_or(agent.name.as_str(), |s| s.username.as_str());
        let aor = format!("sip:{username}@{}", self.config.realm);
        self.update_bindings(req, &agent.name, aor, now)
    }

    /// Applies the Contact header fields of an authenticated REGISTER.
    fn update_bindings(
        &mut self,
        req: &RegisterRequest,
        agent: &str,
        aor: String,
        now: SystemTime,
    ) -> RegisterOutcome {
        let config = &self.config;
        let list = self.bindings.list_mut(aor.clone());
        list.retain(|b| b.expires_at > now);
        let out_of_order = |uri: Option<&str>| {
            list.iter().any(|b| {
                uri.is_none_or(|u| same_uri(&b.uri, u))
                    && b.call_id == req.call_id
                    && req.cseq <= b.cseq
            })
        };
        let mut router = Vec::new();
        match &req.contacts {
            Contacts::None => {}
            Contacts::Star => {
                if req.expires != Some(0) {
                    self.counters.bad_requests += 1;
                    return RegisterOutcome::BadRequest {
                        detail: "Contact: * requires Expires: 0",
                    };
                }
                if out_of_order(None) {
                    self.counters.out_of_order += 1;
                    return RegisterOutcome::OutOfOrder;
                }
                list.clear();
                router.push(RouterCall::Remove {
                    aor: aor.clone(),
                    uri: None,
                });
            }
            Contacts::List(contacts) => {
                // Validate everything before changing anything.
                let mut planned = Vec::with_capacity(contacts.len());
                for c in contacts {
                    let asked = c.expires.or(req.expires).unwrap_or(config.default_expires);
                    if asked != 0 && asked < config.min_expires {
                        self.counters.interval_too_brief += 1;
                        return RegisterOutcome::IntervalTooBrief {
                            min_expires: config.min_expires,
                        };
                    }
                    if out_of_order(Some(&c.uri)) {
                        self.counters.out_of_order += 1;
                        return RegisterOutcome::OutOfOrder;
                    }
                    planned.push((c, asked.min(config.max_expires)));
                }
                for (c, expires) in planned {
                    let existing = list.iter().position(|b| same_uri(&b.uri, &c.uri));
                    if expires == 0 {
                        if let Some(i) = existing {
                            list.remove(i);
                        }
                        router.push(RouterCall::Remove {
                            aor: aor.clone(),
                            uri: Some(c.uri.clone()),
                        });
                        continue;
                    }
                    let grant = Duration::from_secs(u64::from(expires));
                    let binding = Binding {
                        agent: agent.to_owned(),
                        aor: aor.clone(),
                        uri: c.uri.clone(),
                        expires_at: now + grant,
                        source: req.source,
                        instance_id: c.instance_id.clone(),
                        user_agent: req.user_agent.clone(),
                        call_id: req.call_id.clone(),
                        cseq: req.cseq,
                        updated_at: now,
                    };
                    match existing {
                        Some(i) => list[i] = binding,
                        None => list.push(binding),
                    }
                    router.push(RouterCall::Register {
                        aor: aor.clone(),
                        agent: agent.to_owned(),
                        uri: c.uri.clone(),
                        expires: grant,
                        source: req.source,
                        instance_id: c.instance_id.clone(),
                        user_agent: req.user_agent.clone(),
                        refresh: existing.is_some(),
                    });
                }
                // Too many contacts: the least recently updated go.
                while list.len() > config.max_contacts.max(1) {
                    let Some(oldest) = (0..list.len()).min_by_key(|i| list[*i].updated_at) else {
                        break;
                    };
                    let gone = list.remove(oldest);
                    router.push(RouterCall::Remove {
                        aor: aor.clone(),
                        uri: Some(gone.uri),
                    });
                }
            }
        }
        let contacts = list
            .iter()
            .map(|b| ContactEntry {
                uri: b.uri.clone(),
                expires: b.expires_in(now),
            })
            .collect();
        if list.is_empty() {
            self.bindings.by_aor.remove(&aor);
        }
        self.counters.registered += 1;
        tracing::debug!(%agent, %aor, source = %req.source, "REGISTER accepted");
        RegisterOutcome::Registered(Registered {
            agent: agent.to_owned(),
            aor,
            contacts,
            router,
        })
    }

    /// Records `nc` for `nonce`; false when it does not increase (a replay).
    fn note_nc(&mut self, nonce: &str, nc: u32) -> bool {
        if let Some(seen) = self.nonce_counts.get_mut(nonce) {
            if nc <= *seen {
                return false;
            }
            *seen = nc;
            return true;
        }
        while self.nonce_counts.len() >= self.config.max_tracked.max(1) {
            let Some(old) = self.nonce_order.pop_front() else {
                break;
            };
            self.nonce_counts.remove(&old);
        }
        self.nonce_counts.insert(nonce.to_owned(), nc);
        self.nonce_order.push_back(nonce.to_owned());
        true
    }

    /// The unexpired bindings of an AOR.
    pub fn contacts(&self, aor: &str, now: SystemTime) -> Vec<Binding> {
        self.bindings.current(aor, now)
    }

    /// Every unexpired binding (for `Router.SyncContacts`).
    pub fn bindings(&self, now: SystemTime) -> Vec<Binding> {
        self.bindings.all(now)
    }

    /// Registered agents' addresses with the latest expiry of each (for the guard's
    /// exemptions).
    pub fn registered_sources(&self, now: SystemTime) -> Vec<(IpAddr, SystemTime)> {
        let mut out: HashMap<IpAddr, SystemTime> = HashMap::new();
        for b in self.bindings.all(now) {
            let slot = out.entry(canonical(b.source.ip())).or_insert(b.expires_at);
            *slot = (*slot).max(b.expires_at);
        }
        out.into_iter().collect()
    }

    /// Drops lapsed bindings and forgets idle failure counts; returns the bindings dropped.
    /// Call it every few seconds.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Binding> {
        let start = now
            .checked_sub(self.config.failure_window)
            .unwrap_or(UNIX_EPOCH);
        self.failures.sweep(now, start);
        self.publish_gauges();
        self.bindings.expire(now)
    }

    /// After a configuration change: drops the bindings of agents that no longer exist or
    /// no longer have a softphone, and returns the router calls that remove them.
    pub fn retain_agents(&mut self, snapshot: &Snapshot) -> Vec<RouterCall> {
        let mut calls = Vec::new();
        self.bindings.by_aor.retain(|aor, list| {
            let keep = list.first().is_some_and(|b| {
                snapshot
                    .agents
                    .get(&b.agent)
                    .is_some_and(AgentConfig::has_softphone)
            });
            if !keep {
                calls.push(RouterCall::Remove {
                    aor: aor.clone(),
                    uri: None,
                });
            }
            keep
        });
        calls
    }
}

/// The agent whose SIP username this is.
fn find_agent<'a>(snapshot: &'a Snapshot, username: &str) -> Option<&'a AgentConfig> {
    snapshot
        .agents
        .values()
        .find(|a| a.sip.as_ref().is_some_and(|s| s.username == username))
}

/// `nc`: exactly 8 hex digits (RFC 2617 §3.2.2).
fn parse_nc(nc: &str) -> Option<u32> {
    (nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(nc, 16).ok())
        .flatten()
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
