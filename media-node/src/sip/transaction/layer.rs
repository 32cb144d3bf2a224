//! The [`TransactionLayer`]: owns every transaction, routes input to them, and keeps the
//! timer queue the edge sleeps on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::client::{InviteClient, InviteClientState, NonInviteClient, NonInviteClientState};
use super::key::{AckKey, ClientKey, ServerKey};
use super::server::{
    InviteServer, InviteServerState, NonInviteServer, NonInviteServerState, Origin,
};
use super::{Action, LayerConfig, TuEvent, TxId};
use crate::sip::Peer;
use crate::sip::message::{
    self, Frame, InboundRequest, InboundResponse, ParseConfig, Parsed, Verdict, grammar,
};

#[derive(Debug)]
pub(super) enum Tx {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Tx {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Tx::InviteClient(t) => t.deadline(),
            Tx::NonInviteClient(t) => t.deadline(),
            Tx::InviteServer(t) => t.deadline(),
            Tx::NonInviteServer(t) => t.deadline(),
        }
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self {
            Tx::InviteClient(t) => t.on_timer(now, out),
            Tx::NonInviteClient(t) => t.on_timer(now, out),
            Tx::InviteServer(t) => t.on_timer(now, out),
            Tx::NonInviteServer(t) => t.on_timer(now, out),
        }
    }

    fn terminated(&self) -> bool {
        match self {
            Tx::InviteClient(t) => t.state == InviteClientState::Terminated,
            Tx::NonInviteClient(t) => t.state == NonInviteClientState::Terminated,
            Tx::InviteServer(t) => t.state == InviteServerState::Terminated,
            Tx::NonInviteServer(t) => t.state == NonInviteServerState::Terminated,
        }
    }

    fn abort(&mut self) {
        match self {
            Tx::InviteClient(t) => t.state = InviteClientState::Terminated,
            Tx::NonInviteClient(t) => t.state = NonInviteClientState::Terminated,
            Tx::InviteServer(t) => t.state = InviteServerState::Terminated,
            Tx::NonInviteServer(t) => t.state = NonInviteServerState::Terminated,
        }
    }

    fn origin(&self) -> Option<&Origin> {
        match self {
            Tx::InviteServer(t) => Some(&t.origin),
            Tx::NonInviteServer(t) => Some(&t.origin),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) tx: Tx,
    pub(super) scheduled: Option<Instant>,
    pub(super) client_key: Option<ClientKey>,
}

/// Owns all transactions of a node. See the [module documentation](super) for how the
/// edge drives it.
#[derive(Debug)]
pub struct TransactionLayer {
    pub(super) config: LayerConfig,
    branch_prefix: String,
    rng: fastrand::Rng,
    next_id: u64,
    /// Boxed: an entry is a few hundred bytes (an INVITE client transaction holds its
    /// request), and a completed non-INVITE server transaction lives on for Timer J (32 s
    /// over UDP), so 10,000 softphones registering at once keep ~20,000 of them; inline,
    /// every empty bucket of the table would cost as much as a live transaction.
    pub(super) txs: HashMap<TxId, Box<Entry>>,
    servers: HashMap<ServerKey, TxId>,
    pub(super) clients: HashMap<ClientKey, TxId>,
    accepted: HashMap<AckKey, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId)>>,
}

impl TransactionLayer {
    /// A layer with no transactions. Our branch prefix goes into the parse policy so that
    /// requests that loop back to us are answered 482.
    pub fn new(mut config: LayerConfig) -> Self {
        let branch_prefix = format!("{}-{}-", grammar::MAGIC_COOKIE, config.node_token);
        config.parse.policy.own_branch_prefix = Some(branch_prefix.clone());
        TransactionLayer {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            branch_prefix,
            next_id: 0,
            txs: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            accepted: HashMap::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// The parse configuration in use (with our loop-detection prefix).
    pub fn parse_config(&self) -> &ParseConfig {
        &self.config.parse
    }

    /// How many transactions are alive.
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    /// A fresh To/From tag.
    pub fn new_tag(&mut self) -> String {
        format!("dt{:016x}", self.rng.u64(..))
    }

    pub(super) fn new_branch(&mut self) -> String {
        format!("{}{:016x}", self.branch_prefix, self.rng.u64(..))
    }

    pub(super) fn new_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    /// The earliest instant at which [`Self::on_timer`] has work. Sleep until then.
    pub fn next_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            match self.txs.get(&id) {
                Some(e) if e.scheduled == Some(at) => return Some(at),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// Fires every timer due at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.txs.get_mut(&id) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            // Several timers may be due together (a late wake-up): bounded repeat.
            for _ in 0..8 {
                entry.tx.on_timer(now, &mut out);
                if entry.tx.terminated() || entry.tx.deadline().is_none_or(|d| d > now) {
                    break;
                }
            }
            // A deadline that stays due would spin this loop: end the transaction instead.
            if !entry.tx.terminated() && entry.tx.deadline().is_some_and(|d| d <= now) {
                tracing::error!(%id, "transaction timer did not advance; aborting it");
                entry.tx.abort();
            }
            self.settle(id, &mut out);
        }
        out
    }

    /// A UDP datagram from `source`.
    pub fn on_datagram(&mut self, now: Instant, bytes: &[u8], source: Peer) -> Vec<Action> {
        let parsed = message::parse(bytes, source, &self.config.parse);
        self.on_parsed(now, parsed, source)
    }

    /// A frame cut from the stream of `source` by its
    /// [`StreamFramer`](crate::sip::message::StreamFramer).
    pub fn on_frame(&mut self, now: Instant, frame: Frame, source: Peer) -> Vec<Action> {
        match frame {
            Frame::Message(bytes) => self.on_datagram(now, &bytes, source),
            // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
            Frame::Ping => vec![Action::Send {
                to: source,
                bytes: b"\r\n".to_vec(),
                tx: None,
            }],
            Frame::Oversized(head) => {
                let parsed = message::parse_oversized(&head, source, &self.config.parse);
                self.on_parsed(now, parsed, source)
            }
        }
    }

    fn on_parsed(&mut self, now: Instant, parsed: Parsed, source: Peer) -> Vec<Action> {
        let mut out = Vec::new();
        match parsed {
            Parsed::Reject(r) => {
                tracing::debug!(status = r.status, reason = %r.reason, %source, "rejected malformed request");
                out.push(Action::Send {
                    to: r.to,
                    bytes: r.bytes,
                    tx: None,
                });
                out.push(Action::Tu(TuEvent::Rejected {
                    status: r.status,
                    method: r.method,
                    source,
                }));
            }
            Parsed::Drop(reason) => {
                tracing::debug!(reason, %source, "dropped message");
                out.push(Action::Tu(TuEvent::Discarded { reason, source }));
            }
            Parsed::Response(r) => self.on_response(now, *r, &mut out),
            Parsed::Request(r) => self.on_request(now, *r, &mut out),
        }
        out
    }

    fn on_response(&mut self, now: Instant, r: InboundResponse, out: &mut Vec<Action>) {
        let key = r.branch.clone().map(|branch| ClientKey {
            branch,
            method: r.cseq_method.clone(),
        });
        let Some(id) = key.and_then(|k| self.clients.get(&k).copied()) else {
            out.push(Action::Tu(TuEvent::StrayResponse {
                response: Box::new(r.response),
                source: r.source,
            }));
            return;
        };
        let mut cancel_now = false;
        match self.txs.get_mut(&id).map(|e| &mut e.tx) {
            Some(Tx::InviteClient(t)) => {
                t.on_response(now, r.code, r.response, out);
                if t.cancel_pending && t.state == InviteClientState::Proceeding {
                    t.cancel_pending = false;
                    cancel_now = true;
                }
            }
            Some(Tx::NonInviteClient(t)) => t.on_response(now, r.code, r.response, out),
            _ => {}
        }
        if cancel_now {
            self.send_cancel(now, id, out);
        }
        self.settle(id, out);
    }

    fn on_request(&mut self, now: Instant, r: InboundRequest, out: &mut Vec<Action>) {
        let InboundRequest { meta, verdict } = r;
        if meta.method == "ACK" {
            return self.on_ack(now, meta, verdict, out);
        }
        let key = ServerKey::for_request(&meta);
        if let Some(&id) = self.servers.get(&key) {
            match self.txs.get(&id).map(|e| &e.tx) {
                Some(Tx::InviteServer(t)) => t.on_retransmission(out),
                Some(Tx::NonInviteServer(t)) => t.on_retransmission(out),
                _ => {}
            }
            return;
        }
        let id = self.new_id();
        let origin = Origin {
            key: key.clone(),
            ack_key: AckKey::of(&meta),
            echo: meta.echo.clone(),
            peer: meta.source,
            to_tag: self.new_tag(),
        };
        let timers = self.config.timers;
        let invite = meta.method == "INVITE";
        let tx = match verdict {
            Verdict::Refuse(refusal) => {
                let mut tx = if invite {
                    Tx::InviteServer(InviteServer::start(id, now, origin, timers, false, out))
                } else {
                    Tx::NonInviteServer(NonInviteServer::start(id, now, origin, timers))
                };
                Self::respond_generated(
                    &mut tx,
                    now,
                    refusal.status,
                    Some(&refusal.reason),
                    &refusal.headers,
                    out,
                );
                out.push(Action::Tu(TuEvent::Rejected {
                    status: refusal.status,
                    method: Some(meta.method.clone()),
                    source: meta.source,
                }));
                tx
            }
            Verdict::Accept(request) if meta.method == "CANCEL" => {
                let mut tx = Tx::NonInviteServer(NonInviteServer::start(id, now, origin, timers));
                self.on_cancel(now, &mut tx, &meta, out);
                drop(request);
                tx
            }
            Verdict::Accept(request) => {
                let tx = if invite {
                    Tx::InviteServer(InviteServer::start(id, now, origin, timers, true, out))
                } else {
                    Tx::NonInviteServer(NonInviteServer::start(id, now, origin, timers))
                };
                out.push(Action::Tu(TuEvent::Request {
                    tx: id,
                    request,
                    source: meta.source,
                }));
                tx
            }
        };
        self.servers.insert(key, id);
        self.txs.insert(
            id,
            Box::new(Entry {
                tx,
                scheduled: None,
                client_key: None,
            }),
        );
        self.settle(id, out);
    }

    fn respond_generated(
        tx: &mut Tx,
        now: Instant,
        status: u16,
        reason: Option<&str>,
        headers: &[(&'static str, String)],
        out: &mut Vec<Action>,
    ) {
        let result = match tx {
            Tx::InviteServer(t) => {
                let bytes = t.origin.generated(status, reason, headers);
                t.respond(now, status, bytes, out)
            }
            Tx::NonInviteServer(t) => {
                let bytes = t.origin.generated(status, reason, headers);
                t.respond(now, status, bytes, out)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(%e, "generated response not sent");
        }
    }

    /// RFC 3261 §9.2: 200 to the CANCEL (with the INVITE's To tag) and 487 to a pending
    /// INVITE; 481 when no INVITE transaction matches.
    fn on_cancel(
        &mut self,
        now: Instant,
        cancel: &mut Tx,
        meta: &message::RequestMeta,
        out: &mut Vec<Action>,
    ) {
        let invite_id = self.servers.get(&ServerKey::of(meta, "INVITE")).copied();
        let invite = invite_id.and_then(|id| match self.txs.get_mut(&id).map(|e| &mut e.tx) {
            Some(Tx::InviteServer(t)) => Some((id, t)),
            _ => None,
        });
        let Some((invite_id, invite)) = invite else {
            Self::respond_generated(cancel, now, 481, None, &[], out);
            out.push(Action::Tu(TuEvent::Rejected {
                status: 481,
                method: Some("CANCEL".into()),
                source: meta.source,
            }));
            return;
        };
        let terminated = invite.state == InviteServerState::Proceeding;
        if terminated {
            let bytes = invite.origin.generated(487, None, &[]);
            let _ = invite.respond(now, 487, bytes, out);
        }
        let to_tag = invite.origin.to_tag.clone();
        if let Tx::NonInviteServer(t) = cancel {
            t.origin.to_tag = to_tag;
        }
        Self::respond_generated(cancel, now, 200, None, &[], out);
        out.push(Action::Tu(TuEvent::Cancelled {
            tx: invite_id,
            terminated,
        }));
        self.settle(invite_id, out);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        meta: message::RequestMeta,
        verdict: Verdict,
        out: &mut Vec<Action>,
    ) {
        let Verdict::Accept(request) = verdict else {
            return;
        };
        let by_branch = self.servers.get(&ServerKey::for_request(&meta)).copied();
        let by_dialog = || self.accepted.get(&AckKey::of(&meta)).copied();
        let matched = by_branch.or_else(by_dialog);
        let mut for_tu = matched.is_none();
        if let Some(id) = matched
            && let Some(Tx::InviteServer(t)) = self.txs.get_mut(&id).map(|e| &mut e.tx)
        {
            for_tu = t.on_ack(now);
            self.settle(id, out);
        }
        if for_tu {
            out.push(Action::Tu(TuEvent::Ack {
                tx: matched,
                request,
                source: meta.source,
            }));
        }
    }

    /// Removes a terminated transaction (and tells the TU), or re-arms its timer.
    pub(super) fn settle(&mut self, id: TxId, out: &mut Vec<Action>) {
        let Some(entry) = self.txs.get_mut(&id) else {
            return;
        };
        if !entry.tx.terminated() {
            let deadline = entry.tx.deadline();
            if deadline != entry.scheduled {
                entry.scheduled = deadline;
                if let Some(at) = deadline {
                    self.heap.push(Reverse((at, id)));
                }
            }
            if let Tx::InviteServer(t) = &entry.tx
                && t.state == InviteServerState::Accepted
            {
                self.accepted.insert(t.origin.ack_key.clone(), id);
            }
            return;
        }
        let Some(entry) = self.txs.remove(&id) else {
            return;
        };
        if let Some(origin) = entry.tx.origin() {
            if self.servers.get(&origin.key) == Some(&id) {
                self.servers.remove(&origin.key);
            }
            if self.accepted.get(&origin.ack_key) == Some(&id) {
                self.accepted.remove(&origin.ack_key);
            }
        }
        if let Some(key) = entry.client_key
            && self.clients.get(&key) == Some(&id)
        {
            self.clients.remove(&key);
        }
        out.push(Action::Tu(TuEvent::Terminated { tx: id }));
    }

    /// Sending failed for `tx` (e.g. the TCP connection is gone): the transaction ends
    /// and the TU is told (RFC 3261 §17.1.4, §17.2.4).
    pub fn on_transport_error(&mut self, tx: TxId) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(entry) = self.txs.get_mut(&tx) {
            entry.tx.abort();
            out.push(Action::Tu(TuEvent::TransportError { tx }));
            self.settle(tx, &mut out);
        }
        out
    }
}
