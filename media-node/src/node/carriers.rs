//! The actor's side of [`crate::carrier`]: OPTIONS probes and registration trunks sent
//! through the transaction layer, the carrier book followed on every configuration change,
//! digest answers to a carrier's challenge of our INVITE, and channels taken and given back by
//! outbound legs.

use std::time::{Duration, Instant};

use rsipstack::sip::{
    CSeq, CallId, Contact, From, Header, Headers, HeadersExt, MaxForwards, Method, Request,
    Response, To, Version,
};

use super::actor::{Node, TxRole, host_text};
use super::legs::LegState;
use super::sipmsg;
use crate::carrier::{Challenge, Transition, Trunk, TrunkAction, trunk};
use crate::sip::dialog::uri_for_request;
use crate::sip::{Peer, Transport};

/// How long a carrier may stay silent after our INVITE (not even `100 Trying`) before the leg
/// moves on to the next carrier. Retransmissions have gone out at 0.5 s and 1.5 s by then;
/// waiting for Timer B (32 s) would leave the client hearing nothing.
pub(super) const CARRIER_SILENCE: Duration = Duration::from_secs(2);

impl Node {
    /// Follows the configuration: the book of carriers' health and the registration trunks.
    pub(super) fn apply_carriers(&mut self) {
        let snapshot = self.snapshot();
        let now = Instant::now();
        self.carrier_book.apply(&snapshot, now);
        self.trunks.retain(|name, _| {
            snapshot
                .carriers
                .get(name)
                .is_some_and(|c| c.register && c.credentials.is_some())
        });
        for c in snapshot.carriers.values() {
            if c.register && c.credentials.is_some() && !self.trunks.contains_key(&c.name) {
                self.trunks.insert(c.name.clone(), Trunk::new(now));
            }
        }
        self.publish_carrier_states();
    }

    /// `dialtone_carrier_up`: up by its probes and its address resolved.
    pub(super) fn publish_carrier_states(&self) {
        let metrics = self.health.metrics();
        for (name, up) in self.carrier_book.states() {
            let resolved = self.carrier_addrs.contains_key(name);
            metrics.set_carrier_up(name, up && resolved);
        }
    }

    /// The earliest probe or trunk registration due.
    pub(super) fn carrier_deadline(&self) -> Option<Instant> {
        let trunks = self.trunks.values().filter_map(Trunk::next_deadline).min();
        [self.carrier_book.next_deadline(), trunks]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends the probes and registrations that are due.
    pub(super) fn carrier_timers(&mut self, now: Instant) {
        for name in self.carrier_book.overdue_probes(now) {
            // Its transaction may still answer (or time out) later: forget it, so that only
            // the next probe's answer counts.
            self.tx_role
                .retain(|_, role| !matches!(role, TxRole::Probe(n) if *n == name));
            tracing::debug!(carrier = %name, "OPTIONS probe unanswered until the next one: failed");
            self.probe_outcome(&name, false);
        }
        for name in self.carrier_book.due_probes(now) {
            self.send_probe(&name);
        }
        let due: Vec<(String, u32)> = self
            .trunks
            .iter_mut()
            .filter_map(|(name, t)| t.due(now).map(|cseq| (name.clone(), cseq)))
            .collect();
        for (name, cseq) in due {
            self.send_register(&name, cseq, None);
        }
    }

    fn carrier_peer(&self, name: &str) -> Option<Peer> {
        let snapshot = self.snapshot();
        let c = snapshot.carriers.get(name)?;
        let addr = *self.carrier_addrs.get(name)?.first()?;
        let transport = match c.transport {
            dialtone_model::resources::carrier::CarrierTransport::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        Some(Peer { transport, addr })
    }

    /// A request outside any dialog toward a carrier: OPTIONS or REGISTER.
    fn carrier_request(
        &mut self,
        method: Method,
        peer: Peer,
        user: &str,
        call_id: &str,
        cseq: u32,
        extra: Vec<Header>,
    ) -> Option<Request> {
        let host = host_text(peer.addr.ip());
        let suffix = if peer.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let target = format!("sip:{host}:{}{suffix}", peer.addr.port());
        let aor = format!("sip:{user}@{host}");
        let local = host_text(self.cfg.advertised());
        let mut headers = Headers::default();
        let tag = self.layer.new_tag();
        let from = if method == Method::Register {
            format!("<{aor}>;tag={tag}")
        } else {
            format!("<sip:dialtone@{local}>;tag={tag}")
        };
        headers.push(Header::From(From::new(from)));
        headers.push(Header::To(To::new(if method == Method::Register {
            format!("<{aor}>")
        } else {
            format!("<{target}>")
        })));
        headers.push(Header::CallId(CallId::new(call_id)));
        headers.push(Header::CSeq(CSeq::new(format!("{cseq} {method}"))));
        headers.push(Header::MaxForwards(MaxForwards::new("70")));
        headers.push(Header::Contact(Contact::new(format!(
            "<{}>",
            self.contact(peer.transport)
        ))));
        headers.push(Header::Other("User-Agent".into(), "dialtone".into()));
        for h in extra {
            headers.push(h);
        }
        match uri_for_request(&target) {
            Ok(uri) => Some(Request {
                method,
                uri,
                version: Version::V2,
                headers,
                body: Vec::new(),
            }),
            Err(e) => {
                tracing::warn!(%target, error = %e, "carrier request not built");
                None
            }
        }
    }

    fn send_probe(&mut self, name: &str) {
        let Some(peer) = self.carrier_peer(name) else {
            // Not resolved (yet: the first probes are due before the resolver answers). Not a
            // failure: an unresolved carrier is already reported down and skipped by legs, and
            // counting it would mark a healthy carrier down at every start.
            tracing::debug!(
                carrier = name,
                "probe skipped: carrier address not resolved"
            );
            return;
        };
        let call_id = format!("probe-{:016x}", fastrand::u64(..));
        let Some(request) =
            self.carrier_request(Method::Options, peer, "dialtone", &call_id, 1, Vec::new())
        else {
            return;
        };
        match self.layer.send_request(Instant::now(), request, peer) {
            Ok((tx, actions)) => {
                self.tx_role.insert(tx, TxRole::Probe(name.to_owned()));
                self.carrier_book.probe_sent(name);
                self.execute(actions);
            }
            Err(e) => {
                tracing::debug!(carrier = name, error = %e, "probe not sent");
                self.probe_outcome(name, false);
            }
        }
    }

    /// A probe's final response, or its timeout (`None`).
    pub(super) fn on_probe(&mut self, name: &str, code: Option<u16>) {
        self.probe_outcome(name, code.is_some_and(|c| c < 500));
    }

    fn probe_outcome(&mut self, name: &str, answered: bool) {
        match self.carrier_book.probe_result(name, answered) {
            Some(Transition::Down(c)) => {
                tracing::warn!(carrier = %c, "carrier down: its OPTIONS probes fail; outbound legs skip it");
            }
            Some(Transition::Up(c)) => {
                tracing::info!(carrier = %c, "carrier up again: its OPTIONS probes are answered");
            }
            None => {}
        }
        self.publish_carrier_states();
    }

    fn send_register(
        &mut self,
        name: &str,
        cseq: u32,
        credentials: Option<(&'static str, String)>,
    ) {
        let snapshot = self.snapshot();
        let Some(user) = snapshot
            .carriers
            .get(name)
            .and_then(|c| c.credentials.as_ref())
            .map(|c| c.username.clone())
        else {
            return;
        };
        let Some(peer) = self.carrier_peer(name) else {
            if let Some(t) = self.trunks.get_mut(name) {
                t.on_timeout(Instant::now());
            }
            return;
        };
        // One Call-ID per trunk and node for the registration's whole life (RFC 3261 §10.2).
        let call_id = format!("trunk-{}-{}", name, self.cfg.node_id);
        let mut extra = vec![Header::Other(
            "Expires".into(),
            trunk::ASKED_EXPIRES.to_string(),
        )];
        if let Some((header, value)) = credentials {
            extra.push(Header::Other(header.into(), value));
        }
        let Some(request) =
            self.carrier_request(Method::Register, peer, &user, &call_id, cseq, extra)
        else {
            return;
        };
        match self.layer.send_request(Instant::now(), request, peer) {
            Ok((tx, actions)) => {
                self.tx_role.insert(tx, TxRole::Trunk(name.to_owned()));
                self.execute(actions);
            }
            Err(e) => {
                tracing::warn!(carrier = name, error = %e, "REGISTER not sent");
                if let Some(t) = self.trunks.get_mut(name) {
                    t.on_timeout(Instant::now());
                }
            }
        }
    }

    /// A final response to a trunk's REGISTER, or its timeout (`None`).
    pub(super) fn on_trunk(&mut self, name: &str, response: Option<&Response>) {
        let now = Instant::now();
        let snapshot = self.snapshot();
        let Some(creds) = snapshot
            .carriers
            .get(name)
            .and_then(|c| c.credentials.clone())
        else {
            return;
        };
        let Some(trunk) = self.trunks.get_mut(name) else {
            return;
        };
        let Some(response) = response else {
            tracing::warn!(
                carrier = name,
                "trunk REGISTER got no answer; retrying later"
            );
            trunk.on_timeout(now);
            return;
        };
        let code = response.status_code.code();
        let challenge = challenge_of(response, code);
        let granted = granted_expires(response);
        let uri = self
            .carrier_peer(name)
            .map(|p| format!("sip:{}:{}", host_text(p.addr.ip()), p.addr.port()))
            .unwrap_or_default();
        let cnonce = format!("{:016x}", fastrand::u64(..));
        let Some(trunk) = self.trunks.get_mut(name) else {
            return;
        };
        let action = trunk.on_response(
            code,
            challenge.as_ref(),
            granted,
            |c| c.answer(&creds.username, &creds.password, "REGISTER", &uri, &cnonce),
            now,
        );
        match action {
            TrunkAction::Send { cseq, credentials } => {
                self.send_register(name, cseq, Some(credentials));
            }
            TrunkAction::Wait if (200..300).contains(&code) => {
                tracing::info!(carrier = name, expires = ?granted, "registered with the carrier");
            }
            TrunkAction::Wait => {
                tracing::warn!(
                    carrier = name,
                    code,
                    "the carrier refused our registration: check the Carrier's credentials Secret"
                );
            }
        }
    }

    /// A carrier challenged our INVITE (401/407): answer once with the Carrier's credentials.
    /// Returns whether the INVITE was sent again.
    pub(super) fn answer_carrier_challenge(
        &mut self,
        key: &str,
        idx: usize,
        response: &Response,
    ) -> bool {
        let code = response.status_code.code();
        let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx)) else {
            return false;
        };
        if leg.carrier.is_empty()
            || leg.auth_answered
            || leg.state != LegState::Calling && leg.state != LegState::Alerting
        {
            return false;
        }
        let snapshot = self.snapshot();
        let Some(creds) = snapshot
            .carriers
            .get(&leg.carrier)
            .and_then(|c| c.credentials.clone())
        else {
            tracing::warn!(carrier = %leg.carrier, "the carrier asks for credentials but its Carrier has none: add a credentials Secret");
            return false;
        };
        let Some(challenge) = challenge_of(response, code) else {
            return false;
        };
        let mut invite = leg.invite.clone();
        let uri = invite.uri.to_string();
        let cnonce = format!("{:016x}", fastrand::u64(..));
        let answer = challenge.answer(&creds.username, &creds.password, "INVITE", &uri, &cnonce);
        let cseq = sipmsg::header(&invite.headers, "CSeq")
            .and_then(|c| {
                c.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
            })
            .unwrap_or(1)
            + 1;
        invite.headers.retain(|h| !matches!(h, Header::CSeq(_)));
        invite
            .headers
            .push(Header::CSeq(CSeq::new(format!("{cseq} INVITE"))));
        let name = if code == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        invite.headers.push(Header::Other(name.into(), answer));
        let dest = leg.dest;
        let (tx, actions) = match self
            .layer
            .send_request(Instant::now(), invite.clone(), dest)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "authenticated INVITE not sent");
                return false;
            }
        };
        if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.legs.get_mut(idx)) {
            self.tx_role.remove(&leg.tx);
            leg.tx = tx;
            leg.invite = invite;
            leg.auth_answered = true;
            leg.heard = false;
            tracing::info!(call_id = %key, leg = %leg.id, carrier = %leg.carrier, "carrier challenge answered");
        }
        self.tx_role
            .insert(tx, TxRole::LegInvite(key.to_owned(), idx));
        self.execute(actions);
        true
    }

    /// A carrier leg heard nothing for [`CARRIER_SILENCE`]: the carrier counts as timed out
    /// and the leg moves on to the next carrier at once.
    pub(super) fn carrier_silent(
        &mut self,
        key: &str,
        idx: usize,
        tx: crate::sip::transaction::TxId,
    ) {
        let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx)) else {
            return;
        };
        if leg.heard || leg.tx != tx || leg.state != LegState::Calling {
            return;
        }
        tracing::warn!(call_id = %key, leg = %leg.id, carrier = %leg.carrier, "carrier silent after our INVITE: trying the next carrier");
        self.leg_failed(key, idx, 408, "carrier timeout: no response", false);
    }
}

/// The challenge of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`), the first we can
/// answer.
fn challenge_of(response: &Response, code: u16) -> Option<Challenge> {
    let name = match code {
        401 => "www-authenticate",
        407 => "proxy-authenticate",
        _ => return None,
    };
    response
        .headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .find_map(|v| Challenge::parse(&v).ok())
}

/// The expiry a REGISTER's 2xx granted: the Contact's `expires` parameter, else `Expires`.
fn granted_expires(response: &Response) -> Option<u32> {
    let from_contact = response.contact_header().ok().and_then(|c| {
        let v = c.value().to_ascii_lowercase();
        let at = v.find("expires=")?;
        v[at + 8..]
            .split(|ch: char| !ch.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
    });
    from_contact.or_else(|| {
        sipmsg::header(&response.headers, "Expires").and_then(|v| v.trim().parse().ok())
    })
}
