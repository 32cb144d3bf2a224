//! Digest authentication of one request, shared by REGISTER and by the INVITEs agents send to
//! dial out (RFC 3261 §22.3: a proxy challenges with 407 and `Proxy-Authenticate`, the client
//! answers with `Proxy-Authorization`; the digest is the same, only the method differs).
//!
//! Both paths share the nonce key, the replay table and the per-source failure count, so that
//! a password guessed through INVITEs is rate limited exactly like one guessed through
//! REGISTERs, and an unknown user and a wrong password take the same path and get the same
//! answer (no account enumeration).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use dialtone_model::Snapshot;
use dialtone_model::snapshot::AgentConfig;

use super::digest::{self, Credentials, DigestInput, NonceState, Qop};
use super::{ForbiddenCause, Registrar, find_agent, parse_nc, unix_secs};
use crate::guard::canonical;

/// A request other than REGISTER to authenticate (an agent's INVITE).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The method (part of the digest).
    pub method: &'a str,
    /// The Request-URI as on the wire (compared with the digest `uri`).
    pub request_uri: &'a str,
    /// The `Proxy-Authorization` (or `Authorization`) header's value.
    pub authorization: Option<&'a str>,
    /// Where it came from (failures count against its address).
    pub source: SocketAddr,
}

/// What to do with an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are an agent's with a softphone.
    Authenticated {
        /// The agent's name.
        agent: String,
    },
    /// 407 with these `Proxy-Authenticate` values (one per algorithm).
    Challenge {
        /// Header values.
        proxy_authenticate: Vec<String>,
    },
    /// 403.
    Forbidden {
        /// Why (not sent).
        cause: ForbiddenCause,
    },
    /// 400: the credentials are malformed.
    BadRequest {
        /// What is wrong (for logs).
        detail: &'static str,
    },
}

impl AuthOutcome {
    /// The status code to answer with (200 stands for "go on").
    pub fn status(&self) -> u16 {
        match self {
            AuthOutcome::Authenticated { .. } => 200,
            AuthOutcome::Challenge { .. } => 407,
            AuthOutcome::Forbidden { .. } => 403,
            AuthOutcome::BadRequest { .. } => 400,
        }
    }

    /// Header fields the refusal carries.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            AuthOutcome::Challenge { proxy_authenticate } => proxy_authenticate
                .iter()
                .map(|v| ("Proxy-Authenticate", v.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Why a request is not authenticated: what the edge answers.
pub(super) enum Denied {
    /// A fresh challenge (one header value per algorithm).
    Challenge(Vec<String>),
    Forbidden(ForbiddenCause),
    BadRequest(&'static str),
}

/// How a source relates to the registrations this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisteredFrom {
    /// A live binding was registered from exactly this address and port.
    Socket,
    /// A live binding was registered from this IP address (another port: NAT, TCP).
    Address,
    /// No live binding comes from this address.
    Nowhere,
}

impl Registrar {
    /// Whether `source` is where an agent's softphone registered from (live bindings only).
    pub fn registered_from(&self, source: SocketAddr, now: SystemTime) -> RegisteredFrom {
        let ip = canonical(source.ip());
        let mut found = RegisteredFrom::Nowhere;
        for b in self.bindings.by_aor.values().flatten() {
            if b.expires_at <= now || canonical(b.source.ip()) != ip {
                continue;
            }
            if b.source.port() == source.port() {
                return RegisteredFrom::Socket;
            }
            found = RegisteredFrom::Address;
        }
        found
    }

    /// Authenticates an agent's request (not a REGISTER) at wall-clock time `now`.
    pub fn authenticate(
        &mut self,
        req: &AuthRequest<'_>,
        snapshot: &Snapshot,
        now: SystemTime,
    ) -> AuthOutcome {
        let verified = self.verify(
            req.method,
            req.request_uri,
            req.authorization,
            req.source,
            snapshot,
            now,
        );
        match verified {
            Ok(agent) if agent.has_softphone() => AuthOutcome::Authenticated {
                agent: agent.name.clone(),
            },
            Ok(agent) => {
                self.counters.not_allowed += 1;
                tracing::warn!(target: "security", agent = %agent.name, source = %req.source, method = req.method,
                    "request refused: the authenticated agent has no softphone");
                AuthOutcome::Forbidden {
                    cause: ForbiddenCause::NotAllowed,
                }
            }
            Err(Denied::Challenge(proxy_authenticate)) => {
                AuthOutcome::Challenge { proxy_authenticate }
            }
            Err(Denied::Forbidden(cause)) => AuthOutcome::Forbidden { cause },
            Err(Denied::BadRequest(detail)) => AuthOutcome::BadRequest { detail },
        }
    }

    /// Checks a request's digest credentials: the agent they belong to, or what to answer.
    pub(super) fn verify<'s>(
        &mut self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        source: SocketAddr,
        snapshot: &'s Snapshot,
        now: SystemTime,
    ) -> Result<&'s AgentConfig, Denied> {
        let ip = canonical(source.ip());
        let blocked_before = self.failures.banned_count();
        if let Some(until) = self.failures.banned(&ip, now) {
            // Not logged one by one: the block was, and the 403 itself is by the edge.
            self.counters.blocked_requests += 1;
            self.metrics.rate_limited.inc();
            return Err(Denied::Forbidden(ForbiddenCause::RateLimited { until }));
        }
        if self.failures.banned_count() != blocked_before {
            // This source's block just ended.
            self.publish_gauges();
        }
        let Some(header) = authorization else {
            return Err(self.challenge(now, false));
        };
        let Some(creds) = Credentials::parse(header) else {
            return Err(self.failure(ip, now, method, "unreadable Authorization"));
        };
        if creds.realm != self.config.realm
            || !self.config.algorithms.contains(&creds.algorithm().base())
        {
            // An answer to another server's challenge, or to an algorithm we do not offer.
            return Err(self.challenge(now, false));
        }
        if !creds.uri.trim().eq_ignore_ascii_case(request_uri.trim()) {
            self.counters.bad_requests += 1;
            return Err(Denied::BadRequest(
                "digest uri differs from the Request-URI",
            ));
        }
        let qop = match (&creds.qop, &creds.nc, &creds.cnonce) {
            (None, _, _) => None,
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => {
                let Some(count) = parse_nc(nc) else {
                    return Err(self.failure(ip, now, method, "malformed nc"));
                };
                Some((Qop { nc, cnonce, qop: q }, count))
            }
            _ => return Err(self.failure(ip, now, method, "unsupported qop")),
        };

        // The same work whether or not the user exists.
        let agent = find_agent(snapshot, &creds.username);
        let password = agent
            .and_then(|a| a.sip.as_ref())
            .map_or("\u{0}no such user\u{0}", |s| s.password.as_str());
        let expected = digest::response(&DigestInput {
            algorithm: creds.algorithm(),
            username: &creds.username,
            realm: &self.config.realm,
            password,
            method,
            uri: &creds.uri,
            nonce: &creds.nonce,
            qop: qop.map(|(q, _)| q),
        });
        let matches = digest::constant_time_eq(&expected, &creds.response.to_ascii_lowercase());
        let Some(agent) = agent.filter(|_| matches) else {
            return Err(self.failure(ip, now, method, "wrong credentials"));
        };

        let nonce_state = self.key.check(
            &self.config.realm,
            &creds.nonce,
            unix_secs(now),
            self.config.nonce_ttl.as_secs(),
        );
        let replayed = qop.is_some_and(|(_, nc)| !self.note_nc(&creds.nonce, nc));
        if nonce_state != NonceState::Fresh || replayed {
            // RFC 2617: stale=true only when the digest is right, so the client retries
            // with a new nonce without asking the user again.
            self.counters.stale_nonces += 1;
            return Err(self.challenge(now, true));
        }
        Ok(agent)
    }

    /// A fresh nonce per offered algorithm, as challenge header values.
    fn challenge(&mut self, now: SystemTime, stale: bool) -> Denied {
        self.counters.challenges += 1;
        let nonce = self.key.issue(&self.config.realm, unix_secs(now));
        let stale = if stale { ", stale=true" } else { "" };
        let values = self
            .config
            .algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.config.realm,
                    a.token()
                )
            })
            .collect();
        Denied::Challenge(values)
    }

    /// Counts a failed authentication; blocks the address past the limit.
    fn failure(
        &mut self,
        ip: std::net::IpAddr,
        now: SystemTime,
        method: &str,
        why: &'static str,
    ) -> Denied {
        self.counters.auth_failures += 1;
        self.metrics.auth_failures.inc();
        let start = now
            .checked_sub(self.config.failure_window)
            .unwrap_or(UNIX_EPOCH);
        let limit = self.config.max_failures.max(1) as usize;
        if self.failures.hit(ip, now, start, limit) >= limit {
            let until = now + self.config.block_for;
            self.failures.ban(ip, until);
            self.counters.rate_limited += 1;
            self.metrics.rate_limited.inc();
            self.publish_gauges();
            tracing::warn!(target: "security", %ip, failures = limit,
                block_seconds = self.config.block_for.as_secs(),
                "{method}: too many authentication failures, source blocked");
            return Denied::Forbidden(ForbiddenCause::RateLimited { until });
        }
        tracing::info!(target: "security", %ip, "{method} authentication failed: {why}");
        self.challenge(now, false)
    }
}
