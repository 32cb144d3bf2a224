//! Outbound callbacks, ordered by the router (`OriginateCallback` over the node session): the
//! agent's phones ring first, showing the client's number; when the agent picks up, their leg
//! becomes the call's first side (they hear a ringback tone) and the client is dialled through
//! the carriers with the caller ID the router chose; when the client answers, the two are
//! bridged like any call. The call's events are those of an outbound call (`CallStarted` with
//! direction outbound and the callback's id, then `CallbackOrdered`), so the reporter counts it
//! as a callback attempt however it ends.

use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use rsipstack::sip::Response;

use super::actor::{Node, Timer, TimerKind};
use super::call::{Call, CallerMedia, CallerState, Side};
use super::ending::Ending;
use super::events::CallEvents;
use super::legs::{LegRequest, LegState};
use super::plan::{Exec, Mode};
use super::router::Report;
use super::rtp::RelaySide;
use super::session;
use super::sipmsg;
use crate::media::sdp::{self, Codec, Negotiated};

/// How long the client's phone may ring before the callback is given up (carriers usually
/// give up sooner).
pub(super) const CLIENT_RING: Duration = Duration::from_secs(60);

/// What a callback call knows beyond a call.
#[derive(Debug)]
pub(super) struct Outbound {
    pub(super) callback_id: String,
    pub(super) agent: String,
    pub(super) to: String,
    pub(super) carriers: Vec<String>,
    /// The agent's leg once they picked up: it became the call's caller side.
    pub(super) agent_leg: Option<usize>,
    /// The agent dialled from their softphone ([`super::agent_dial`]): their INVITE is the
    /// caller side from the start, there is no agent leg to wait for.
    pub(super) softphone: bool,
}

/// Why an order was not taken (the router's caller reads it).
pub(super) type Refusal = String;

impl Node {
    /// Carries out an `OriginateCallback`: rings the agent's reachable destinations. Returns
    /// the call's id, or why nothing was started (then no event was emitted: no attempt).
    pub(super) fn originate_callback(
        &mut self,
        order: pb::OriginateCallback,
    ) -> Result<String, Refusal> {
        if self.is_draining() {
            return Err("the media node is draining".into());
        }
        let Some(target) = order.agent.clone() else {
            return Err("the order names no agent".into());
        };
        // Only destinations this node can reach now: a callback that rings nobody is no
        // attempt and must leave no trace.
        let destinations: Vec<pb::Destination> = target
            .destinations
            .iter()
            .filter(|d| d.reachable)
            .filter(|d| match pb::DestinationKind::try_from(d.kind) {
                Ok(pb::DestinationKind::Number) => order
                    .carriers
                    .iter()
                    .any(|c| self.carrier_addrs.contains_key(c)),
                _ => sipmsg::peer_for_uri(&d.uri).is_some(),
            })
            .cloned()
            .collect();
        if destinations.is_empty() {
            return Err(format!(
                "Agent/{} has no destination this node can reach",
                target.agent
            ));
        }
        if !order
            .carriers
            .iter()
            .any(|c| self.carrier_addrs.contains_key(c))
        {
            return Err("no carrier for the client has a resolved address".into());
        }
        let key = if order.call_id.is_empty() {
            self.new_call_key()
        } else {
            order.call_id.clone()
        };
        if self.calls.contains_key(&key) {
            return Err(format!("call {key} already exists"));
        }
        let ring = super::events::from_duration(order.agent_ring_timeout.as_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(30));
        let span = tracing::info_span!("sip.callback", call_id = %key, agent = %target.agent, to = %order.to);
        let _g = span.enter();
        let mut events = CallEvents::new(&key, &self.cfg.node_id, self.sink.clone());
        events.emit(Kind::CallStarted(pb::CallStarted {
            caller: order.caller_id.clone(),
            number: order.to.clone(),
            direction: pb::Direction::Outbound as i32,
            carrier: order.carriers.first().cloned().unwrap_or_default(),
            agent: target.agent.clone(),
            callback_id: order.callback_id.clone(),
            ..Default::default()
        }));
        // A queue callback was announced by the queue call that chose it.
        if order.origin != pb::CallbackOrigin::Queue as i32 {
            events.emit(Kind::CallbackOrdered(pb::CallbackOrdered {
                callback_id: order.callback_id.clone(),
                origin: pb::CallbackOrigin::Api as i32,
                agent: target.agent.clone(),
                to: order.to.clone(),
                caller_id: order.caller_id.clone(),
                ordered_by: order.ordered_by.clone(),
                queue: String::new(),
            }));
        }
        self.health.metrics().calls.inc();
        self.health.metrics().active_calls.inc();
        let placeholder = sipmsg::placeholder_request();
        let call = Call {
            key: key.clone(),
            span: tracing::info_span!("call", call_id = %key, direction = "outbound"),
            events,
            started: Instant::now(),
            invite: Box::new(placeholder),
            invite_tx: crate::sip::transaction::TxId(0),
            source: crate::sip::Peer {
                transport: crate::sip::Transport::Udp,
                addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            },
            local_tag: String::new(),
            contact: String::new(),
            state: CallerState::Dialling,
            caller_dialog: None,
            caller_number: order.caller_id.clone(),
            number: order.to.clone(),
            max_forwards: 70,
            media: CallerMedia {
                pair: None,
                port: 0,
                answer: String::new(),
                negotiated: Negotiated {
                    codec: Codec::Pcmu,
                    telephone_event: None,
                    remote: None,
                    direction: sdp::Direction::SendRecv,
                },
            },
            plan: None,
            exec: Exec {
                mode: Mode::Ring {
                    externals: Vec::new(),
                    sequential: Default::default(),
                    timeout: ring,
                    owner: false,
                    waiting: false,
                },
                ..Exec::default()
            },
            legs: Vec::new(),
            answered: None,
            session: None,
            phase: pb::CallPhase::Ringing,
            queue: None,
            reserved_any: true,
            sdp_version: 1,
            media_seq: 0,
            ringback: false,
            voicemail: None,
            recording: None,
            callback_chosen: false,
            outbound: Some(Outbound {
                callback_id: order.callback_id.clone(),
                agent: target.agent.clone(),
                to: order.to.clone(),
                carriers: order.carriers.clone(),
                agent_leg: None,
                softphone: false,
            }),
            started_at: jiff::Timestamp::now(),
        };
        self.calls.insert(key.clone(), call);
        tracing::info!(call_id = %key, callback = %order.callback_id, agent = %target.agent, to = %order.to, caller_id = %order.caller_id, "callback: ringing the agent");
        let mut created = 0;
        for destination in destinations {
            let req = LegRequest {
                agent: target.agent.clone(),
                destination,
                queue: String::new(),
                owner: false,
                carriers: order.carriers.clone(),
                // The agent sees whom they are calling back.
                from_user: Some(order.to.clone()),
            };
            if self.create_leg(&key, req) {
                created += 1;
            }
        }
        if created == 0 {
            self.end_call(
                &key,
                Ending::not_answered(0, "no leg toward the agent could be sent"),
            );
            return Ok(key);
        }
        self.arm_stage(&key, ring);
        Ok(key)
    }

    pub(super) fn arm_stage(&mut self, key: &str, after: Duration) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let timer = Timer {
            call: key.to_owned(),
            generation: call.exec.generation,
            kind: TimerKind::Stage,
        };
        self.arm(Instant::now() + after, timer);
    }

    /// A 2xx on a leg of a callback whose agent has not picked up yet: this is the agent.
    /// Returns whether it was handled here.
    pub(super) fn agent_picks_up_callback(
        &mut self,
        key: &str,
        idx: usize,
        response: &Response,
    ) -> bool {
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        let Some(outbound) = call.outbound.as_mut() else {
            return false;
        };
        if outbound.agent_leg.is_some() || outbound.softphone {
            return false;
        }
        let Some(leg) = call.legs.get_mut(idx) else {
            return false;
        };
        if !matches!(leg.state, LegState::Calling | LegState::Alerting) {
            // A late answer on a leg we cancelled: the generic path hangs it up.
            return false;
        }
        let negotiated = sipmsg::sdp_body(&response.headers, &response.body)
            .and_then(|s| sdp::parse(&s).ok())
            .and_then(|s| sdp::negotiated(&s, &super::call::CODECS).ok());
        let (Some(negotiated), Some(pair), Some(dialog)) =
            (negotiated, leg.pair.take(), leg.dialog.take())
        else {
            // Without media the agent cannot talk: the generic path hangs it up as unusable.
            return false;
        };
        outbound.agent_leg = Some(idx);
        leg.state = LegState::Answered;
        let (leg_id, port, dest) = (leg.id.clone(), leg.port, leg.dest);
        // The port moves with the pair to the caller side (released once, at the end).
        leg.port = 0;
        let to = outbound.to.clone();
        let carriers = outbound.carriers.clone();
        call.emit(Kind::LegAnswered(pb::LegAnswered {
            leg_id: leg_id.clone(),
        }));
        tracing::info!(call_id = %key, leg = %leg_id, "callback: the agent picked up; dialling the client");
        call.caller_dialog = Some(dialog.clone());
        call.source = dest;
        call.state = CallerState::Answered;
        call.media = CallerMedia {
            pair: None,
            port,
            answer: String::new(),
            negotiated,
        };
        call.session = Some(session::spawn(session::Setup {
            pair,
            side: RelaySide {
                remote: negotiated.remote,
                codec: negotiated.codec,
                telephone_event: negotiated.telephone_event,
            },
            call: key.to_owned(),
            inbox: self.inbox.clone(),
            prompts: self.prompts.clone(),
            inactivity: self.cfg.media_timeout,
        }));
        call.exec.generation += 1;
        call.exec.mode = Mode::Ring {
            externals: Vec::new(),
            sequential: Default::default(),
            timeout: CLIENT_RING,
            owner: false,
            waiting: false,
        };
        self.dialog_owner
            .insert(dialog, (key.to_owned(), Side::Caller));
        if let Some(leg) = self.calls.get(key).and_then(|c| c.legs.get(idx)) {
            let ev = self.leg_event(key, leg, pb::LegEventKind::Answered, 0, false);
            self.router.report(Report::Leg(ev));
        }
        // The agent's other phones stop ringing.
        let others: Vec<usize> = self
            .calls
            .get(key)
            .map(|c| c.ringing_legs().collect())
            .unwrap_or_default();
        for other in others {
            self.cancel_leg(key, other, pb::LegCancelCause::ColleagueAnswered);
        }
        self.ringback(key);
        let req = LegRequest {
            agent: String::new(),
            destination: pb::Destination {
                kind: pb::DestinationKind::Number as i32,
                uri: to,
                reachable: true,
                ..Default::default()
            },
            queue: String::new(),
            owner: false,
            carriers,
            from_user: None,
        };
        if self.create_leg(key, req) {
            self.arm_stage(key, CLIENT_RING);
        } else {
            self.end_call(
                key,
                Ending {
                    disposition: pb::CallDisposition::Failed,
                    ..Ending::not_answered(503, "no carrier could be reached for the client")
                },
            );
        }
        true
    }

    /// A callback's stage produced no answer: the agent did not pick up, or the client's leg
    /// failed on every carrier or rang out.
    pub(super) fn callback_stage_over(&mut self, key: &str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(outbound) = &call.outbound else {
            return;
        };
        if outbound.softphone {
            self.agent_dial_over(key);
            return;
        }
        let ending = match outbound.agent_leg {
            None => Ending {
                cancel_cause: pb::LegCancelCause::Timeout,
                ..Ending::not_answered(
                    0,
                    &format!("Agent/{} did not answer the callback", outbound.agent),
                )
            },
            Some(_) => {
                let code = call
                    .legs
                    .iter()
                    .rev()
                    .find(|l| l.agent.is_empty() && l.state == LegState::Failed)
                    .map_or(0, |l| l.final_code);
                // Busy, no answer, declined: the client was reached. Anything else is a
                // failure of the destination or the route.
                let reached = matches!(code, 0 | 408 | 480 | 486 | 487 | 600 | 603);
                Ending {
                    disposition: if reached {
                        pb::CallDisposition::NotAnswered
                    } else {
                        pb::CallDisposition::Failed
                    },
                    cancel_cause: pb::LegCancelCause::Timeout,
                    ..Ending::not_answered(code, "the client did not answer the callback")
                }
            }
        };
        self.end_call(key, ending);
    }

    /// Hangs up a call on the router's order.
    pub(super) fn hang_up_on_order(&mut self, call_id: &str, reason: &str) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return Err(format!("call {call_id} is not on this node"));
        };
        let disposition = if call.answered.is_some() {
            pb::CallDisposition::Answered
        } else {
            pb::CallDisposition::NotAnswered
        };
        tracing::info!(call_id, reason, "hanging up on order");
        self.end_call(
            call_id,
            Ending {
                party: pb::HangupParty::System,
                disposition,
                sip_code: 480,
                reason: reason.to_owned(),
                cancel_cause: pb::LegCancelCause::System,
            },
        );
        Ok(())
    }

    /// The calls on this node, for the router's list of calls in progress.
    pub(super) fn active_calls(&self) -> Vec<pb::ActiveCall> {
        self.calls
            .values()
            .map(|c| {
                // An agent dialling from their softphone is on the call without a leg.
                let dialling = c
                    .outbound
                    .as_ref()
                    .filter(|o| o.softphone)
                    .map(|o| o.agent.clone());
                let agents: Vec<String> = c
                    .legs
                    .iter()
                    .filter(|l| {
                        !l.agent.is_empty()
                            && matches!(
                                l.state,
                                LegState::Calling | LegState::Alerting | LegState::Answered
                            )
                    })
                    .map(|l| l.agent.clone())
                    .chain(dialling)
                    .collect();
                pb::ActiveCall {
                    call_id: c.key.clone(),
                    node_id: self.cfg.node_id.clone(),
                    direction: if c.outbound.is_some() {
                        pb::Direction::Outbound as i32
                    } else {
                        pb::Direction::Inbound as i32
                    },
                    caller: c.caller_number.clone(),
                    number: c.number.clone(),
                    started_at: Some(timestamp(c.started_at)),
                    phase: c.phase as i32,
                    agents,
                    queue: c
                        .queue
                        .as_ref()
                        .map(|q| q.step.queue.clone())
                        .unwrap_or_default(),
                    answered_at: None,
                    callback_id: c
                        .outbound
                        .as_ref()
                        .map(|o| o.callback_id.clone())
                        .unwrap_or_default(),
                    trace_id: String::new(),
                }
            })
            .collect()
    }
}

fn timestamp(t: jiff::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}
