//! Legs: the INVITEs the B2BUA sends toward agents' contacts, SIP URIs and carriers, and what
//! their responses do to the call (alert the caller, win the call, move the plan on).

use std::net::SocketAddr;
use std::time::Instant;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use rsipstack::sip::{Request, Response};

use super::actor::{Node, TxRole};
use super::call::{CODECS, CallerState, Side, TE_PT};
use super::router::Report;
use super::rtp::RtpPair;
use super::sipmsg;
use crate::media::sdp::{self, Negotiated};
use crate::sip::Peer;
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::transaction::TxId;

/// A leg's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// INVITE sent.
    Calling,
    /// 180/183 received.
    Alerting,
    /// 2xx received and ACKed: bridged with the caller.
    Answered,
    /// Final error, timeout or unreachable.
    Failed,
    /// CANCEL sent by us.
    Cancelled,
    /// The answered leg's call ended.
    Ended,
}

/// One outgoing leg.
#[derive(Debug)]
pub(super) struct Leg {
    pub(super) id: String,
    pub(super) agent: String,
    pub(super) destination: String,
    pub(super) kind: pb::DestinationKind,
    pub(super) carrier: String,
    /// Carriers still to try if this one fails with 5xx / timeout (number legs).
    pub(super) carriers_left: Vec<String>,
    pub(super) queue: String,
    pub(super) owner: bool,
    /// The From user when it is not the call's caller (a callback shows the agent the client
    /// and the client our number).
    pub(super) from_user: Option<String>,
    pub(super) tx: TxId,
    pub(super) invite: Request,
    pub(super) dest: Peer,
    pub(super) contact: String,
    pub(super) generation: u64,
    pub(super) state: LegState,
    /// The final error code once failed (0: timeout or unreachable).
    pub(super) final_code: u16,
    /// Something (even `100 Trying`) came back for the current INVITE.
    pub(super) heard: bool,
    /// The carrier's challenge was answered once already.
    pub(super) auth_answered: bool,
    /// The leg holds one of its carrier's channels (given back when it ends).
    pub(super) holds_channel: bool,
    pub(super) alerted: bool,
    pub(super) dialog: Option<DialogId>,
    pub(super) pair: Option<RtpPair>,
    pub(super) port: u16,
    pub(super) negotiated: Option<Negotiated>,
}

impl Leg {
    /// Gives the leg's carrier channel back, at most once: every way a leg ends (failed,
    /// cancelled, its call ended) calls this, and clearing the flag makes the later calls no-ops,
    /// so a leg that fails and then ends with its call does not give its channel back twice.
    pub(super) fn release_channel(&mut self, book: &mut crate::carrier::CarrierBook) {
        if std::mem::take(&mut self.holds_channel) {
            book.release(&self.carrier);
        }
    }
}

/// What to ring: one destination of one target.
pub(super) struct LegRequest {
    pub(super) agent: String,
    pub(super) destination: pb::Destination,
    pub(super) queue: String,
    pub(super) owner: bool,
    /// For number destinations: carriers in order.
    pub(super) carriers: Vec<String>,
    /// The From user; `None` means the call's caller.
    pub(super) from_user: Option<String>,
}

impl Node {
    /// Sends an INVITE for one destination. Returns whether a leg was created.
    pub(super) fn create_leg(&mut self, key: &str, req: LegRequest) -> bool {
        let kind = pb::DestinationKind::try_from(req.destination.kind)
            .unwrap_or(pb::DestinationKind::Unspecified);
        let mut carriers = req.carriers.clone();
        let (target, dest, carrier) = match kind {
            pb::DestinationKind::Number => {
                let mut found = None;
                while !carriers.is_empty() {
                    let name = carriers.remove(0);
                    if let Err(why) = self.carrier_book.usable(&name) {
                        tracing::info!(carrier = %name, ?why, "carrier skipped");
                        continue;
                    }
                    if let Some(addr) = self.carrier_addrs.get(&name).and_then(|a| a.first()) {
                        found = Some((name, *addr));
                        break;
                    }
                    tracing::warn!(carrier = %name, "carrier address unknown (not resolved): skipped");
                }
                let Some((name, addr)) = found else {
                    tracing::warn!(number = %req.destination.uri, "no carrier to reach the number");
                    return false;
                };
                let snapshot = self.snapshot();
                let transport = match snapshot.carriers.get(&name).map(|c| c.transport) {
                    Some(dialtone_model::resources::carrier::CarrierTransport::Tcp) => {
                        crate::sip::Transport::Tcp
                    }
                    _ => crate::sip::Transport::Udp,
                };
                let host = super::actor::host_text(addr.ip());
                let suffix = if transport == crate::sip::Transport::Tcp {
                    ";transport=tcp"
                } else {
                    ""
                };
                let uri = format!("sip:{}@{host}:{}{suffix}", req.destination.uri, addr.port());
                (uri, Peer { transport, addr }, name)
            }
            _ => {
                let Some(peer) = sipmsg::peer_for_uri(&req.destination.uri) else {
                    tracing::warn!(uri = %req.destination.uri, "destination is not an IP address URI: skipped (DNS not supported in this slice)");
                    return false;
                };
                (req.destination.uri.clone(), peer, String::new())
            }
        };
        let pair = match self.ports.allocate() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "no RTP port for a leg");
                return false;
            }
        };
        let Some(call) = self.calls.get(key) else {
            self.ports.release(pair.port);
            return false;
        };
        let local = SocketAddr::new(self.cfg.advertised(), pair.port);
        let offer = sdp::write(
            local,
            fastrand::u64(1..u64::from(u32::MAX)),
            1,
            &CODECS,
            Some(TE_PT),
            sdp::Direction::SendRecv,
        );
        let host = super::actor::host_text(self.cfg.advertised());
        let contact = self.contact(dest.transport);
        let from_tag = self.layer.new_tag();
        let sip_call_id = format!(
            "{:016x}@{}",
            fastrand::u64(..),
            host.trim_matches(['[', ']'])
        );
        let spec = sipmsg::InviteSpec {
            target: &target,
            from_user: req.from_user.as_deref().unwrap_or(&call.caller_number),
            local_host: &host,
            from_tag: &from_tag,
            call_id: &sip_call_id,
            contact: &contact,
            max_forwards: call.max_forwards.saturating_sub(1),
            sdp: &offer,
        };
        let invite = match sipmsg::invite(&spec) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%target, error = %e, "cannot build the INVITE");
                self.ports.release(pair.port);
                return false;
            }
        };
        let generation = call.exec.generation;
        let (tx, actions) = match self
            .layer
            .send_request(Instant::now(), invite.clone(), dest)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%target, error = %e, "INVITE not sent");
                self.ports.release(pair.port);
                return false;
            }
        };
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        let leg = Leg {
            id: format!("leg{}", call.legs.len() + 1),
            agent: req.agent.clone(),
            destination: req.destination.uri.clone(),
            kind,
            carrier: carrier.clone(),
            carriers_left: carriers,
            queue: req.queue.clone(),
            owner: req.owner,
            from_user: req.from_user.clone(),
            tx,
            invite,
            dest,
            contact,
            generation,
            state: LegState::Calling,
            final_code: 0,
            heard: false,
            auth_answered: false,
            holds_channel: !carrier.is_empty(),
            alerted: false,
            dialog: None,
            port: pair.port,
            pair: Some(pair),
            negotiated: None,
        };
        call.emit(Kind::LegCreated(pb::LegCreated {
            leg_id: leg.id.clone(),
            agent: leg.agent.clone(),
            destination: leg.destination.clone(),
            destination_kind: kind as i32,
            carrier,
            queue: leg.queue.clone(),
            owner: leg.owner,
        }));
        tracing::info!(call_id = %key, leg = %leg.id, agent = %leg.agent, %target, "leg created");
        let report = (!leg.agent.is_empty()).then(|| {
            leg_event(
                &self.cfg.node_id,
                key,
                &leg,
                pb::LegEventKind::Created,
                0,
                false,
            )
        });
        let idx = call.legs.len();
        let carrier_leg = leg.holds_channel.then(|| leg.carrier.clone());
        call.legs.push(leg);
        if let Some(ev) = report {
            self.router.report(Report::Leg(ev));
        }
        self.tx_role
            .insert(tx, TxRole::LegInvite(key.to_owned(), idx));
        if let Some(carrier) = carrier_leg {
            self.carrier_book.acquire(&carrier);
            let timer = super::actor::Timer {
                call: key.to_owned(),
                generation: 0,
                kind: super::actor::TimerKind::CarrierSilence(idx, tx),
            };
            self.arm(Instant::now() + super::carriers::CARRIER_SILENCE, timer);
        }
        self.execute(actions);
        true
    }

    /// A leg event for the router.
    pub(super) fn leg_event(
        &self,
        key: &str,
        leg: &Leg,
        kind: pb::LegEventKind,
        sip_code: u16,
        unreachable: bool,
    ) -> pb::LegEvent {
        leg_event(&self.cfg.node_id, key, leg, kind, sip_code, unreachable)
    }

    /// A response on a leg's INVITE.
    pub(super) fn on_leg_response(&mut self, key: &str, idx: usize, response: Response) {
        let code = response.status_code.code();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let span = call.span.clone();
        let _g = span.enter();
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        leg.heard = true;
        if matches!(code, 401 | 407) && self.answer_carrier_challenge(key, idx, &response) {
            return;
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        match code {
            100 => {}
            101..=199 => {
                if leg.alerted || !matches!(code, 180 | 183) || leg.state != LegState::Calling {
                    return;
                }
                leg.alerted = true;
                leg.state = LegState::Alerting;
                let leg_id = leg.id.clone();
                let ev = (!leg.agent.is_empty())
                    .then_some(pb::LegEventKind::Alerting)
                    .map(|k| (k, leg.agent.clone()));
                call.emit(Kind::LegAlerting(pb::LegAlerting {
                    leg_id,
                    sip_code: u32::from(code),
                }));
                call.phase = pb::CallPhase::Ringing;
                let alert_caller = call.state == CallerState::Routing;
                if let Some((kind, _)) = ev
                    && let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx))
                {
                    let ev = self.leg_event(key, leg, kind, 0, false);
                    self.router.report(Report::Leg(ev));
                }
                if alert_caller {
                    if let Some(call) = self.calls.get_mut(key) {
                        call.state = CallerState::Alerted;
                    }
                    self.reply_caller(key, 180, false);
                } else {
                    // Already answered for a prompt: the caller hears our ringback tone.
                    self.ringback(key);
                }
            }
            200..=299 => self.leg_answered(key, idx, response),
            _ => {
                let reason = sipmsg::reason(&response);
                self.leg_failed(key, idx, code, &reason, false);
            }
        }
    }

    /// A 2xx: the first wins the call; any other is ACKed and hung up at once.
    fn leg_answered(&mut self, key: &str, idx: usize, response: Response) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        if leg.state == LegState::Answered {
            // A 2xx retransmission: ACK again.
            self.ack_leg(key, idx);
            return;
        }
        let dialog = match Dialog::uac(&leg.invite, &response, &leg.contact) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(call_id = %key, leg = %leg.id, error = %e, "2xx without a usable dialog");
                return;
            }
        };
        let id = dialog.id.clone();
        leg.dialog = Some(id.clone());
        self.dialog_owner
            .insert(id.clone(), (key.to_owned(), Side::Leg(idx)));
        self.dialogs.insert(dialog);
        self.ack_leg(key, idx);
        if self.agent_picks_up_callback(key, idx, &response) {
            return;
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        // The caller may already be answered (prompts, menu, queue): still not bridged.
        let won = call.answered.is_none() && call.state != CallerState::Finished;
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        let negotiated = sipmsg::sdp_body(&response.headers, &response.body)
            .and_then(|s| sdp::parse(&s).ok())
            .and_then(|s| sdp::negotiated(&s, &CODECS).ok());
        if !won
            || matches!(leg.state, LegState::Cancelled | LegState::Failed)
            || negotiated.is_none()
        {
            let why = if negotiated.is_none() {
                "no usable SDP answer"
            } else {
                "call already taken"
            };
            tracing::info!(call_id = %key, leg = %leg.id, why, "hanging up a late or unusable answer");
            let was_cancelled = leg.state == LegState::Cancelled;
            leg.state = LegState::Ended;
            self.send_bye(key, Side::Leg(idx));
            if !was_cancelled && negotiated.is_none() {
                self.leg_failed_after_answer(key, idx);
            }
            return;
        }
        leg.state = LegState::Answered;
        leg.negotiated = negotiated;
        call.answered = Some(idx);
        call.phase = pb::CallPhase::Bridged;
        let leg_id = leg.id.clone();
        let agent = leg.agent.clone();
        call.emit(Kind::LegAnswered(pb::LegAnswered {
            leg_id: leg_id.clone(),
        }));
        tracing::info!(call_id = %key, leg = %leg_id, %agent, "leg answered");
        if let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx))
            && !leg.agent.is_empty()
        {
            let ev = self.leg_event(key, leg, pb::LegEventKind::Answered, 0, false);
            self.router.report(Report::Leg(ev));
        }
        let others: Vec<usize> = self
            .calls
            .get(key)
            .map(|c| c.ringing_legs().filter(|i| *i != idx).collect())
            .unwrap_or_default();
        for other in others {
            self.cancel_leg(key, other, pb::LegCancelCause::ColleagueAnswered);
        }
        let mut answer_caller = false;
        if let Some(call) = self.calls.get_mut(key) {
            answer_caller = call.state != CallerState::Answered;
            call.state = CallerState::Answered;
            call.exec.generation += 1;
        }
        if answer_caller {
            self.reply_caller(key, 200, true);
            self.confirm_caller_dialog(key);
        }
        self.bridge(key, idx);
        self.agent_dial_answered(key);
        self.queue_answered(key);
        if let Some(call) = self.calls.get_mut(key) {
            call.emit(Kind::Bridged(pb::Bridged { leg_id, agent }));
        }
    }

    fn leg_failed_after_answer(&mut self, key: &str, idx: usize) {
        if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.legs.get_mut(idx)) {
            leg.state = LegState::Calling;
        }
        self.leg_failed(key, idx, 488, "answer without a common codec", false);
        if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.legs.get_mut(idx)) {
            leg.state = LegState::Ended;
        }
    }

    /// A leg ended without answer: report it and move the plan on when its stage is empty.
    pub(super) fn leg_failed(
        &mut self,
        key: &str,
        idx: usize,
        code: u16,
        reason: &str,
        unreachable: bool,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        match leg.state {
            LegState::Calling | LegState::Alerting => {}
            // Our CANCEL crossed a final response: already reported as cancelled.
            _ => return,
        }
        leg.state = LegState::Failed;
        leg.final_code = code;
        leg.release_channel(&mut self.carrier_book);
        leg.pair = None;
        let port = leg.port;
        let leg_id = leg.id.clone();
        let carrier = leg.carrier.clone();
        let retry = (code == 0 || code == 408 || code >= 500)
            .then(|| leg.carriers_left.clone())
            .filter(|c| !c.is_empty() && leg.kind == pb::DestinationKind::Number);
        let retry_req = retry.map(|carriers| super::legs::LegRequest {
            agent: leg.agent.clone(),
            destination: pb::Destination {
                kind: pb::DestinationKind::Number as i32,
                uri: leg.destination.clone(),
                reachable: true,
                ..Default::default()
            },
            queue: leg.queue.clone(),
            owner: leg.owner,
            carriers,
            from_user: leg.from_user.clone(),
        });
        call.emit(Kind::LegFailed(pb::LegFailed {
            leg_id: leg_id.clone(),
            sip_code: u32::from(code),
            reason: reason.to_owned(),
        }));
        tracing::info!(call_id = %key, leg = %leg_id, carrier = %carrier, code, reason, "leg failed");
        self.ports.release(port);
        if let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx))
            && !leg.agent.is_empty()
        {
            let ev = self.leg_event(key, leg, pb::LegEventKind::Failed, code, unreachable);
            self.router.report(Report::Leg(ev));
        }
        if let Some(req) = retry_req {
            tracing::info!(call_id = %key, "carrier failed: trying the next carrier");
            if self.create_leg(key, req) {
                return;
            }
        }
        self.check_stage(key);
    }

    /// CANCELs a ringing leg.
    pub(super) fn cancel_leg(&mut self, key: &str, idx: usize, cause: pb::LegCancelCause) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        if !matches!(leg.state, LegState::Calling | LegState::Alerting) {
            return;
        }
        leg.state = LegState::Cancelled;
        leg.pair = None;
        leg.release_channel(&mut self.carrier_book);
        let (tx, port, leg_id) = (leg.tx, leg.port, leg.id.clone());
        call.emit(Kind::LegCancelled(pb::LegCancelled {
            leg_id: leg_id.clone(),
            cause: cause as i32,
        }));
        tracing::info!(call_id = %key, leg = %leg_id, ?cause, "leg cancelled");
        self.ports.release(port);
        if let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx))
            && !leg.agent.is_empty()
        {
            let ev = self.leg_event(key, leg, pb::LegEventKind::Cancelled, 0, false);
            self.router.report(Report::Leg(ev));
        }
        match self.layer.cancel(Instant::now(), tx) {
            Ok(actions) => self.execute(actions),
            Err(e) => tracing::debug!(%tx, error = %e, "CANCEL not sent (transaction gone)"),
        }
    }
}

/// A leg event for the router.
fn leg_event(
    node_id: &str,
    key: &str,
    leg: &Leg,
    kind: pb::LegEventKind,
    sip_code: u16,
    unreachable: bool,
) -> pb::LegEvent {
    pb::LegEvent {
        call_id: key.to_owned(),
        leg_id: leg.id.clone(),
        agent: leg.agent.clone(),
        node_id: node_id.to_owned(),
        kind: kind as i32,
        at: Some(super::events::now_ts()),
        sip_code: u32::from(sip_code),
        queue: leg.queue.clone(),
        unreachable,
    }
}
