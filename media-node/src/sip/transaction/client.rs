//! Client transactions: INVITE (RFC 3261 §17.1.1, RFC 6026 §7.2) and non-INVITE
//! (RFC 3261 §17.1.2).

use std::time::{Duration, Instant};

use rsipstack::sip::{Header, Request, Response};

use super::{Action, Timeout, Timers, TuEvent, TxId};
use crate::sip::Peer;

/// A retransmission timer: when it fires next and the interval that led there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retransmit {
    pub(super) at: Instant,
    pub(super) interval: Duration,
}

impl Retransmit {
    pub(super) fn start(now: Instant, interval: Duration) -> Self {
        Retransmit {
            at: now + interval,
            interval,
        }
    }

    /// The next firing after one at `now`, with the interval doubled up to `cap`.
    pub(super) fn doubled(self, now: Instant, cap: Option<Duration>) -> Self {
        let doubled = self.interval * 2;
        let interval = cap.map_or(doubled, |cap| doubled.min(cap));
        Retransmit {
            at: now + interval,
            interval,
        }
    }
}

/// The earliest of some optional instants.
pub(super) fn earliest(items: &[Option<Instant>]) -> Option<Instant> {
    items.iter().flatten().min().copied()
}

pub(super) fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

fn send(out: &mut Vec<Action>, to: Peer, bytes: &[u8], tx: TxId) {
    out.push(Action::Send {
        to,
        bytes: bytes.to_vec(),
        tx: Some(tx),
    });
}

/// Writes an ACK (for a non-2xx final response) or a CANCEL derived from an INVITE
/// (RFC 3261 §17.1.1.3 and §9.1): same Request-URI, top Via (same branch), Route set,
/// From, Call-ID and CSeq number; To from the response for ACK, from the INVITE for CANCEL.
pub(super) fn derived_request(invite: &Request, method: &str, cseq: u32, to: &str) -> Vec<u8> {
    let mut out = format!("{method} {} SIP/2.0\r\n", invite.uri);
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        out.push_str(&format!("{via}\r\n"));
    }
    for header in invite.headers.iter() {
        match header {
            Header::Route(_) | Header::From(_) | Header::CallId(_) => {
                out.push_str(&format!("{header}\r\n"))
            }
            _ => {}
        }
    }
    out.push_str(&format!(
        "To: {to}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    out.into_bytes()
}

/// States of an INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientState {
    /// INVITE sent, nothing heard (Timers A and B).
    Calling,
    /// Provisional response heard (guard timer).
    Proceeding,
    /// Non-2xx final: ACK sent, absorbing retransmissions (Timer D).
    Completed,
    /// 2xx heard: further 2xx go to the TU (Timer M, RFC 6026).
    Accepted,
    /// Done.
    Terminated,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub(super) struct InviteClient {
    pub(super) id: TxId,
    pub(super) state: InviteClientState,
    pub(super) peer: Peer,
    pub(super) invite: Request,
    pub(super) cseq: u32,
    /// A CANCEL was asked for before any provisional response (RFC 3261 §9.1).
    pub(super) cancel_pending: bool,
    bytes: Vec<u8>,
    ack: Option<Vec<u8>>,
    timers: Timers,
    a: Option<Retransmit>,
    b: Option<Instant>,
    d: Option<Instant>,
    m: Option<Instant>,
    guard: Option<Instant>,
}

impl InviteClient {
    /// Sends the INVITE and arms Timers A (unreliable only) and B.
    pub(super) fn start(
        id: TxId,
        now: Instant,
        invite: Request,
        cseq: u32,
        peer: Peer,
        timers: Timers,
        out: &mut Vec<Action>,
    ) -> Self {
        let bytes = invite.to_bytes();
        send(out, peer, &bytes, id);
        let reliable = peer.transport.is_reliable();
        InviteClient {
            id,
            state: InviteClientState::Calling,
            peer,
            invite,
            cseq,
            cancel_pending: false,
            bytes,
            ack: None,
            a: (!reliable).then(|| Retransmit::start(now, timers.t1)),
            b: Some(now + timers.t1x64()),
            d: None,
            m: None,
            guard: None,
            timers,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        earliest(&[self.a.map(|a| a.at), self.b, self.d, self.m, self.guard])
    }

    /// A response whose branch and CSeq method match this transaction.
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        code: u16,
        response: Response,
        out: &mut Vec<Action>,
    ) {
        use InviteClientState::*;
        match (self.state, code) {
            (Calling | Proceeding, 100..=199) => {
                if self.state == Calling {
                    self.guard = Some(now + self.timers.invite_client_guard);
                }
                self.state = Proceeding;
                self.a = None;
                self.b = None;
                self.to_tu(response, out);
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.cancel_pending = false;
                (self.a, self.b, self.guard) = (None, None, None);
                self.m = Some(now + self.timers.t1x64());
                self.to_tu(response, out);
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.cancel_pending = false;
                (self.a, self.b, self.guard) = (None, None, None);
                let to = response
                    .headers
                    .iter()
                    .find_map(|h| match h {
                        Header::To(to) => Some(to.value().to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let ack = derived_request(&self.invite, "ACK", self.cseq, &to);
                send(out, self.peer, &ack, self.id);
                self.ack = Some(ack);
                if self.peer.transport.is_reliable() {
                    self.state = Terminated;
                } else {
                    self.d = Some(now + self.timers.d);
                }
                self.to_tu(response, out);
            }
            (Accepted, 200..=299) => self.to_tu(response, out),
            (Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    send(out, self.peer, ack, self.id);
                }
            }
            _ => {}
        }
    }

    fn to_tu(&self, response: Response, out: &mut Vec<Action>) {
        out.push(Action::Tu(TuEvent::Response {
            tx: self.id,
            response: Box::new(response),
        }));
    }

    /// After a CANCEL was sent: RFC 3261 §9.1 gives the INVITE 64·T1 to end.
    pub(super) fn cancelled(&mut self, now: Instant) {
        let limit = now + self.timers.t1x64();
        self.guard = Some(self.guard.map_or(limit, |g| g.min(limit)));
    }

    pub(super) fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        use InviteClientState::*;
        match self.state {
            Calling if due(self.b, now) => self.time_out(out),
            Calling => {
                if let Some(a) = self.a.filter(|a| a.at <= now) {
                    send(out, self.peer, &self.bytes, self.id);
                    // Timer A doubles without the T2 cap (RFC 3261 §17.1.1.2).
                    self.a = Some(a.doubled(now, None));
                }
            }
            Proceeding if due(self.guard, now) => self.time_out(out),
            Completed if due(self.d, now) => self.state = Terminated,
            Accepted if due(self.m, now) => self.state = Terminated,
            _ => {}
        }
    }

    fn time_out(&mut self, out: &mut Vec<Action>) {
        self.state = InviteClientState::Terminated;
        out.push(Action::Tu(TuEvent::Timeout {
            tx: self.id,
            kind: Timeout::NoFinal,
        }));
    }
}

/// States of a non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteClientState {
    /// Request sent (Timers E and F).
    Trying,
    /// Provisional heard (E at T2, F).
    Proceeding,
    /// Final heard (Timer K).
    Completed,
    /// Done.
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub(super) struct NonInviteClient {
    pub(super) id: TxId,
    pub(super) state: NonInviteClientState,
    pub(super) peer: Peer,
    bytes: Vec<u8>,
    timers: Timers,
    e: Option<Retransmit>,
    f: Option<Instant>,
    k: Option<Instant>,
}

impl NonInviteClient {
    /// Sends the request and arms Timers E (unreliable only) and F.
    pub(super) fn start(
        id: TxId,
        now: Instant,
        bytes: Vec<u8>,
        peer: Peer,
        timers: Timers,
        out: &mut Vec<Action>,
    ) -> Self {
        send(out, peer, &bytes, id);
        NonInviteClient {
            id,
            state: NonInviteClientState::Trying,
            peer,
            bytes,
            e: (!peer.transport.is_reliable()).then(|| Retransmit::start(now, timers.t1)),
            f: Some(now + timers.t1x64()),
            k: None,
            timers,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        earliest(&[self.e.map(|e| e.at), self.f, self.k])
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        code: u16,
        response: Response,
        out: &mut Vec<Action>,
    ) {
        use NonInviteClientState::*;
        if !matches!(self.state, Trying | Proceeding) {
            return; // retransmitted final: absorbed
        }
        if code < 200 {
            self.state = Proceeding;
        } else {
            self.state = Completed;
            (self.e, self.f) = (None, None);
            if self.peer.transport.is_reliable() {
                self.state = Terminated;
            } else {
                self.k = Some(now + self.timers.t4);
            }
        }
        out.push(Action::Tu(TuEvent::Response {
            tx: self.id,
            response: Box::new(response),
        }));
    }

    pub(super) fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        use NonInviteClientState::*;
        match self.state {
            Trying | Proceeding if due(self.f, now) => {
                self.state = Terminated;
                out.push(Action::Tu(TuEvent::Timeout {
                    tx: self.id,
                    kind: Timeout::NoFinal,
                }));
            }
            Trying | Proceeding => {
                if let Some(e) = self.e.filter(|e| e.at <= now) {
                    send(out, self.peer, &self.bytes, self.id);
                    self.e = Some(if self.state == Trying {
                        e.doubled(now, Some(self.timers.t2))
                    } else {
                        Retransmit::start(now, self.timers.t2)
                    });
                }
            }
            Completed if due(self.k, now) => self.state = Terminated,
            _ => {}
        }
    }
}
