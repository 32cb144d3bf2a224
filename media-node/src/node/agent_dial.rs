//! Agents dialling out from their registered softphones through Dialtone.
//!
//! An INVITE that comes from where an agent's softphone registered (or that carries
//! credentials) is no carrier's call: the agent is authenticated with the registrar's digest
//! (407 with `Proxy-Authenticate`, MD5 and SHA-256, the same nonces, replay table and
//! per-source failure limit as REGISTER, the same answer for an unknown user and a wrong
//! password), then the router plans the call (`PlanOutbound`: the client's number, the caller
//! ID the number policy gives — the PhoneNumber the client last called — the carriers in
//! order, and a reservation of the agent so that inbound calls leave them alone meanwhile).
//!
//! The call then runs as an outbound call whose caller side is the agent's own INVITE: one
//! leg toward the client through the carriers ([`Node::create_leg`], with its failover,
//! digest toward the carrier and channel caps); the client's 180 becomes the softphone's
//! 180, the client's answer our 200 to the softphone, and the two are bridged by the call's
//! media task like any inbound call. Its events are an outbound call's (`CallStarted` with
//! direction outbound and the agent), so the reporter counts it as a callback attempt when it
//! follows a miss of that client, and an answered one processes the client's missed group.
//!
//! Anything else keeps getting 403: a stranger that never registered and shows no credentials
//! is refused as before, and counted as a security rejection.

use std::time::SystemTime;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use rsipstack::sip::{HeadersExt, Request};

use super::actor::{Node, TxRole};
use super::call::{Call, CallerState};
use super::ending::Ending;
use super::events::CallEvents;
use super::legs::{LegRequest, LegState};
use super::outbound::{CLIENT_RING, Outbound};
use super::plan::{Exec, Mode};
use super::router::Report;
use super::sipmsg;
use crate::registrar::{AuthOutcome, AuthRequest, RegisteredFrom};
use crate::sip::Peer;
use crate::sip::transaction::TxId;

/// The leg id an agent's own side carries in the router's leg events (it has no leg of ours).
const SOFTPHONE_LEG: &str = "softphone";

impl Node {
    /// Whether an INVITE outside any dialog is an agent dialling out rather than a carrier's
    /// call: it comes from the very socket a softphone registered from, or — when it is no
    /// carrier's — from a registered agent's address or with credentials to check.
    pub(super) fn is_agent_dial(
        &self,
        request: &Request,
        source: Peer,
        from_carrier: bool,
    ) -> bool {
        match self
            .registrar
            .registered_from(source.addr, SystemTime::now())
        {
            // Carriers do not register with us: a registered socket is a softphone even on a
            // carrier's address (one host running both, as in tests and small offices).
            RegisteredFrom::Socket => true,
            _ if from_carrier => false,
            RegisteredFrom::Address => true,
            RegisteredFrom::Nowhere => credentials(request).is_some(),
        }
    }

    /// An agent's INVITE to dial out: authenticate, then ask the router for the plan.
    pub(super) fn on_agent_invite(
        &mut self,
        tx: TxId,
        request: Box<Request>,
        source: Peer,
        local_tag: String,
    ) {
        let span = tracing::info_span!(parent: None, "sip.agent_dial", node_id = %self.cfg.node_id, call_id = tracing::field::Empty, agent = tracing::field::Empty, %source);
        let _g = span.enter();
        let snapshot = self.snapshot();
        let uri = request.uri.to_string();
        let authorization = credentials(&request);
        let outcome = self.registrar.authenticate(
            &AuthRequest {
                method: "INVITE",
                request_uri: &uri,
                authorization: authorization.as_deref(),
                source: source.addr,
            },
            &snapshot,
            SystemTime::now(),
        );
        let agent = match outcome {
            AuthOutcome::Authenticated { agent } => agent,
            refusal => {
                match &refusal {
                    AuthOutcome::Forbidden { cause } => {
                        self.health.metrics().security_rejections.inc();
                        tracing::warn!(target: "security", %source, reason = ?cause, %uri, "INVITE to dial out refused: 403");
                    }
                    AuthOutcome::BadRequest { detail } => {
                        // Malformed credentials are no softphone's honest mistake: traceable.
                        tracing::warn!(target: "security", %source, reason = %detail, %uri, "INVITE to dial out with malformed credentials: 400");
                    }
                    _ => {
                        // A first challenge is routine; wrong answers were logged (target
                        // security) by the registrar.
                        tracing::debug!(
                            status = refusal.status(),
                            "INVITE to dial out not authenticated yet"
                        );
                    }
                }
                let extra = refusal.headers();
                let extra: Vec<(&str, String)> =
                    extra.iter().map(|(n, v)| (*n, v.clone())).collect();
                self.reply(tx, &request, refusal.status(), Some(&local_tag), &extra);
                return;
            }
        };
        span.record("agent", agent.as_str());
        let dialled = sipmsg::uri_user(&uri).or_else(|| {
            let to = request.to_header().ok()?.value().to_string();
            let to = crate::sip::message::grammar::name_addr(&to).ok()?.uri;
            sipmsg::uri_user(&to)
        });
        let Some(dialled) = dialled.filter(|d| !d.trim().is_empty()) else {
            tracing::info!(%agent, %source, %uri, "INVITE to dial out names no number: 404");
            self.reply(tx, &request, 404, Some(&local_tag), &[]);
            return;
        };
        let mut media = match self.caller_media(&request) {
            Ok(m) => m,
            Err(code) => {
                self.reply(tx, &request, code, Some(&local_tag), &[]);
                return;
            }
        };
        let key = self.new_call_key();
        span.record("call_id", key.as_str());
        let session = self.caller_session(&mut media, &key);
        // Events start once the router has said what the call is (its caller ID above all);
        // a call that ends before (cancelled, router down) leaves no trace.
        let events = CallEvents::new(&key, &self.cfg.node_id, self.sink.clone());
        self.health.metrics().calls.inc();
        self.health.metrics().active_calls.inc();
        let contact = self.contact(source.transport);
        let max_forwards = sipmsg::max_forwards(&request);
        self.tx_role.insert(tx, TxRole::CallerInvite(key.clone()));
        self.router.plan_outbound(
            &key,
            pb::PlanOutboundRequest {
                call_id: key.clone(),
                agent: agent.clone(),
                dialled: dialled.clone(),
                node_id: self.cfg.node_id.clone(),
                hold: Some(super::events::duration(
                    CLIENT_RING + std::time::Duration::from_secs(15),
                )),
            },
            self.cfg.plan_timeout,
        );
        tracing::info!(call_id = %key, %agent, %dialled, "agent dials out");
        let call = Call {
            key: key.clone(),
            span: tracing::info_span!("call", call_id = %key, direction = "outbound", agent = %agent),
            events,
            started: std::time::Instant::now(),
            invite: request,
            invite_tx: tx,
            source,
            local_tag,
            contact,
            state: CallerState::Routing,
            caller_dialog: None,
            caller_number: String::new(),
            number: dialled.clone(),
            max_forwards,
            media,
            plan: None,
            exec: Exec {
                mode: Mode::Ring {
                    externals: Vec::new(),
                    sequential: Default::default(),
                    timeout: CLIENT_RING,
                    owner: false,
                    waiting: true,
                },
                ..Exec::default()
            },
            legs: Vec::new(),
            answered: None,
            session,
            phase: pb::CallPhase::Routing,
            queue: None,
            reserved_any: false,
            sdp_version: 1,
            media_seq: 0,
            ringback: false,
            voicemail: None,
            recording: None,
            callback_chosen: false,
            outbound: Some(Outbound {
                callback_id: String::new(),
                agent,
                to: dialled,
                carriers: Vec::new(),
                agent_leg: None,
                softphone: true,
            }),
            started_at: jiff::Timestamp::now(),
        };
        self.calls.insert(key, call);
    }

    /// The router's plan for an agent's call out (or its silence).
    pub(super) fn on_plan_outbound(
        &mut self,
        key: &str,
        result: Result<pb::PlanOutboundResponse, String>,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            if matches!(&result, Ok(p) if p.refused == pb::OutboundRefusal::Unspecified as i32) {
                // The call ended (the agent cancelled) before this answer: its release may
                // have reached the router before the reservation did. Release it again.
                self.router
                    .report(Report::Release(pb::ReleaseAgentsRequest {
                        call_id: key.to_owned(),
                        agents: Vec::new(),
                    }));
            }
            return;
        };
        if call.state == CallerState::Finished || call.events.count() > 0 {
            // Cancelled meanwhile, or a duplicate answer.
            return;
        }
        let span = call.span.clone();
        let _g = span.enter();
        let plan = match result {
            Ok(plan) => plan,
            Err(why) => {
                // No plan, no caller ID, no reservation: the call cannot go out correctly.
                tracing::warn!(call_id = %key, error = %why, "no outbound plan from the router: 503");
                self.end_call(
                    key,
                    Ending {
                        disposition: pb::CallDisposition::Failed,
                        ..Ending::not_answered(503, &format!("router unreachable: {why}"))
                    },
                );
                return;
            }
        };
        let refused =
            pb::OutboundRefusal::try_from(plan.refused).unwrap_or(pb::OutboundRefusal::NoRoute);
        let code = match refused {
            pb::OutboundRefusal::Unspecified => 0,
            pb::OutboundRefusal::InvalidNumber => 404,
            pb::OutboundRefusal::BlockedDestination => 403,
            pb::OutboundRefusal::AgentBusy => 486,
            pb::OutboundRefusal::AgentUnavailable => 480,
            pb::OutboundRefusal::NoRoute => 503,
        };
        let (agent, sip_call_id) = match self.calls.get(key) {
            Some(c) => (
                c.outbound
                    .as_ref()
                    .map(|o| o.agent.clone())
                    .unwrap_or_default(),
                c.invite
                    .call_id_header()
                    .map(|h| h.value().to_string())
                    .unwrap_or_default(),
            ),
            None => return,
        };
        let number = if plan.number.is_empty() {
            self.calls
                .get(key)
                .map(|c| c.number.clone())
                .unwrap_or_default()
        } else {
            plan.number.clone()
        };
        let started = |caller: &str, carrier: &str| {
            Kind::CallStarted(pb::CallStarted {
                caller: caller.to_owned(),
                number: number.clone(),
                direction: pb::Direction::Outbound as i32,
                carrier: carrier.to_owned(),
                agent: agent.clone(),
                sip_call_id: sip_call_id.clone(),
                traceparent: super::trace::current_traceparent(),
                ..Default::default()
            })
        };
        match refused {
            pb::OutboundRefusal::Unspecified => {}
            pb::OutboundRefusal::InvalidNumber | pb::OutboundRefusal::BlockedDestination => {
                // Refused by policy: an outbound call that failed on its destination, which
                // the reports show as forbidden_destination (as a failed callback). An agent
                // dialling a blocklisted number is worth a security line (toll fraud starts
                // so), with where the INVITE came from.
                let source = self.calls.get(key).map(|c| c.source.to_string());
                tracing::warn!(target: "security", call_id = %key, source = source.as_deref().unwrap_or("?"), %agent, %number, reason = %plan.reason, code, "call out refused by policy");
                if let Some(call) = self.calls.get_mut(key) {
                    call.emit(started("", ""));
                }
                self.end_call(
                    key,
                    Ending {
                        disposition: pb::CallDisposition::Failed,
                        ..Ending::not_answered(code, &plan.reason)
                    },
                );
                return;
            }
            _ => {
                // Nothing was attempted toward the client: no call to record.
                tracing::info!(call_id = %key, %agent, %number, reason = %plan.reason, code, "call out not possible now");
                self.end_call(key, Ending::not_answered(code, &plan.reason));
                return;
            }
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.emit(started(
            &plan.caller_id,
            plan.carriers.first().map_or("", String::as_str),
        ));
        call.caller_number = plan.caller_id.clone();
        call.number = number.clone();
        call.reserved_any = true;
        call.phase = pb::CallPhase::Ringing;
        if let Mode::Ring { waiting, .. } = &mut call.exec.mode {
            *waiting = false;
        }
        if let Some(outbound) = call.outbound.as_mut() {
            outbound.to = number.clone();
            outbound.carriers = plan.carriers.clone();
        }
        tracing::info!(call_id = %key, %agent, %number, caller_id = %plan.caller_id, carriers = ?plan.carriers, "dialling the client");
        let req = LegRequest {
            agent: String::new(),
            destination: pb::Destination {
                kind: pb::DestinationKind::Number as i32,
                uri: number,
                reachable: true,
                ..Default::default()
            },
            queue: String::new(),
            owner: false,
            carriers: plan.carriers,
            // The client sees the caller ID (the call's caller number).
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
    }

    /// The client answered an agent's call out: the agent is on a call now (their
    /// reservation turns into an answered call at the router, released when the call ends).
    pub(super) fn agent_dial_answered(&mut self, key: &str) {
        let Some(agent) = self
            .calls
            .get(key)
            .and_then(|c| c.outbound.as_ref())
            .filter(|o| o.softphone)
            .map(|o| o.agent.clone())
        else {
            return;
        };
        self.router.report(Report::Leg(pb::LegEvent {
            call_id: key.to_owned(),
            leg_id: SOFTPHONE_LEG.to_owned(),
            agent,
            node_id: self.cfg.node_id.clone(),
            kind: pb::LegEventKind::Answered as i32,
            at: Some(super::events::now_ts()),
            ..Default::default()
        }));
    }

    /// The client's leg produced no answer (every carrier failed, the client refused, or it
    /// rang out): the softphone gets a final response that says which.
    pub(super) fn agent_dial_over(&mut self, key: &str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let last = call.legs.iter().rev().find(|l| l.agent.is_empty());
        let (code, reason) = match last.map(|l| (l.state, l.final_code)) {
            // Rang until our limit: nobody there.
            Some((LegState::Cancelled, _)) | None => (480, "the client did not answer"),
            // Every carrier timed out, was unreachable or failed with 5xx.
            Some((_, 0)) => (503, "no carrier could reach the client"),
            Some((_, c)) if (500..600).contains(&c) => (503, "the carriers failed"),
            // The client's (or the carrier's) own refusal: busy, declined, no such number…
            Some((_, c)) => (c, "the client's side refused the call"),
        };
        // Busy, no answer, declined: the client was reached. Anything else is a failure of
        // the destination or the route (4xx such as 403/404 being forbidden_destination).
        let reached = matches!(code, 408 | 480 | 486 | 487 | 600 | 603);
        tracing::info!(call_id = %key, code, reason, "call out not answered");
        self.end_call(
            key,
            Ending {
                disposition: if reached {
                    pb::CallDisposition::NotAnswered
                } else {
                    pb::CallDisposition::Failed
                },
                cancel_cause: pb::LegCancelCause::Timeout,
                ..Ending::not_answered(code, reason)
            },
        );
    }
}

/// The credentials an INVITE carries for us: `Proxy-Authorization` (the answer to our 407),
/// else `Authorization` (softphones that answer a 407 as if it were a 401).
fn credentials(request: &Request) -> Option<String> {
    sipmsg::header(&request.headers, "Proxy-Authorization")
        .or_else(|| sipmsg::header(&request.headers, "Authorization"))
}
