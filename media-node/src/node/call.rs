//! A call: the caller's side (the INVITE we answer) and its lifecycle — admission, routing,
//! the router's verdict, cancellation. How a call ends is in [`super::ending`].

use std::time::Instant;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use rsipstack::sip::{HeadersExt, Request};

use super::actor::{Node, TxRole};
use super::ending::Ending;
use super::events::CallEvents;
use super::legs::{Leg, LegState};
use super::plan::{Exec, QueueState};
use super::record::RecordingHandle;
use super::router::ReplyBody;
use super::rtp::{RelaySide, RtpPair};
use super::session::{self, SessionHandle};
use super::sipmsg;
use crate::media::sdp::{self, Codec, Negotiated};
use crate::sip::Peer;
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::transaction::TxId;

/// Our id of a call (`{node}-{millis}-{n}`).
pub(super) type CallKey = String;

/// Codecs we speak, in our order of preference.
pub(super) const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
/// The telephone-event payload type we offer.
pub(super) const TE_PT: u8 = 101;

/// One side of a call: the caller, or an agent / external leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Caller,
    Leg(usize),
}

/// Where the caller's INVITE stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallerState {
    /// Nothing but 100 sent.
    Routing,
    /// 180 sent.
    Alerted,
    /// 200 sent: the caller's dialog is confirmed.
    Answered,
    /// A final error was sent (or the layer sent 487 after CANCEL).
    Finished,
    /// Outbound: no INVITE to answer; the agent's phone rings. Once the agent picks up, their
    /// leg becomes the call's first side and the state `Answered`.
    Dialling,
}

/// The caller's media: our socket pair (until the call's media task takes it), the SDP we
/// answer with, what it settled.
#[derive(Debug)]
pub(super) struct CallerMedia {
    pub(super) pair: Option<RtpPair>,
    pub(super) port: u16,
    pub(super) answer: String,
    pub(super) negotiated: Negotiated,
}

/// One call on this node.
pub(super) struct Call {
    pub(super) key: CallKey,
    pub(super) span: tracing::Span,
    pub(super) events: CallEvents,
    pub(super) started: Instant,
    pub(super) invite: Box<Request>,
    pub(super) invite_tx: TxId,
    pub(super) source: Peer,
    pub(super) local_tag: String,
    pub(super) contact: String,
    pub(super) state: CallerState,
    pub(super) caller_dialog: Option<DialogId>,
    pub(super) caller_number: String,
    pub(super) number: String,
    pub(super) max_forwards: u8,
    pub(super) media: CallerMedia,
    pub(super) plan: Option<pb::CallPlan>,
    pub(super) exec: Exec,
    pub(super) legs: Vec<Leg>,
    pub(super) answered: Option<usize>,
    /// The caller's media task: prompts, digits, voicemail, then the relay.
    pub(super) session: Option<SessionHandle>,
    pub(super) phase: pb::CallPhase,
    pub(super) queue: Option<QueueState>,
    pub(super) reserved_any: bool,
    pub(super) sdp_version: u64,
    /// The last playlist id given to the media task.
    pub(super) media_seq: u64,
    /// The ringback tone plays (the caller was answered before agents rang).
    pub(super) ringback: bool,
    /// The voicemail message being (or just) recorded, with the greeting played before it.
    pub(super) voicemail: Option<(RecordingHandle, String)>,
    /// The call recording with the number's recording mode.
    pub(super) recording: Option<(RecordingHandle, pb::RecordingMode)>,
    /// The caller chose a queue callback: the call ends as such however it ends.
    pub(super) callback_chosen: bool,
    /// An outbound callback: the agent rings first, then the client.
    pub(super) outbound: Option<super::outbound::Outbound>,
    /// When the call started, for the router's list of active calls.
    pub(super) started_at: jiff::Timestamp,
}

impl Call {
    pub(super) fn emit(&mut self, kind: Kind) {
        self.events.emit(kind);
    }

    /// Legs still ringing (INVITE sent, no final response, not cancelled).
    pub(super) fn ringing_legs(&self) -> impl Iterator<Item = usize> + '_ {
        self.legs
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.state, LegState::Calling | LegState::Alerting))
            .map(|(i, _)| i)
    }
}

impl Node {
    /// A new INVITE outside any dialog: admission, then PlanCall.
    pub(super) fn on_invite(&mut self, tx: TxId, request: Box<Request>, source: Peer) {
        // A root: one trace per call, not one per node (the actor runs inside `media_node`).
        let span = tracing::info_span!(parent: None, "sip.invite", node_id = %self.cfg.node_id, call_id = tracing::field::Empty, %source);
        let _g = span.enter();
        let local_tag = self.layer.new_tag();
        if self.is_draining() {
            let retry = self.cfg.retry_after_secs.to_string();
            self.reply(
                tx,
                &request,
                503,
                Some(&local_tag),
                &[("Retry-After", retry)],
            );
            return;
        }
        let snapshot = self.snapshot();
        let carrier = self.carrier_of(&snapshot, source);
        if self.is_agent_dial(&request, source, carrier.is_some()) {
            // An agent's softphone dialling out: authenticated, then planned by the router.
            self.on_agent_invite(tx, request, source, local_tag);
            return;
        }
        let Some(carrier) = carrier else {
            self.health.metrics().security_rejections.inc();
            tracing::warn!(target: "security", %source, uri = %request.uri, reason = "no carrier's address, no registered softphone, no credentials", "INVITE from an address that is no carrier: 403");
            self.reply(tx, &request, 403, Some(&local_tag), &[]);
            return;
        };
        let dialled = sipmsg::uri_user(&request.uri.to_string())
            .or_else(|| {
                let to = request.to_header().ok()?.value().to_string();
                let uri = crate::sip::message::grammar::name_addr(&to).ok()?.uri;
                sipmsg::uri_user(&uri)
            })
            .and_then(|u| sipmsg::normalise_number(&u));
        let Some(number) = dialled.filter(|n| snapshot.number(n).is_some()) else {
            tracing::info!(uri = %request.uri, "dialled number is no PhoneNumber: 404");
            self.reply(tx, &request, 404, Some(&local_tag), &[]);
            return;
        };
        let caller_number = caller_of(&request).unwrap_or_default();
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
        let call_span = tracing::info_span!("call", call_id = %key, number = %number);
        let sip_call_id = request
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        let mut events = CallEvents::new(&key, &self.cfg.node_id, self.sink.clone());
        events.emit(Kind::CallStarted(pb::CallStarted {
            caller: caller_number.clone(),
            number: number.clone(),
            direction: pb::Direction::Inbound as i32,
            carrier: carrier.clone(),
            anonymous: caller_number.is_empty(),
            sip_call_id,
            // Still inside `sip.invite`: the reporter's ingestion span becomes its child.
            traceparent: super::trace::current_traceparent(),
            ..Default::default()
        }));
        self.health.metrics().calls.inc();
        self.health.metrics().active_calls.inc();
        let contact = self.contact(source.transport);
        let max_forwards = sipmsg::max_forwards(&request);
        self.tx_role.insert(tx, TxRole::CallerInvite(key.clone()));
        self.router.plan(
            &key,
            pb::PlanCallRequest {
                call_id: key.clone(),
                number: number.clone(),
                caller: caller_number.clone(),
                at: Some(super::events::now_ts()),
                node_id: self.cfg.node_id.clone(),
                carrier: carrier.clone(),
            },
            self.cfg.plan_timeout,
        );
        tracing::info!(call_id = %key, caller = %caller_number, %number, %carrier, "call started");
        let call = Call {
            key: key.clone(),
            span: call_span,
            events,
            started: Instant::now(),
            invite: request,
            invite_tx: tx,
            source,
            local_tag,
            contact,
            state: CallerState::Routing,
            caller_dialog: None,
            caller_number,
            number,
            max_forwards,
            media,
            plan: None,
            exec: Exec::default(),
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
            outbound: None,
            started_at: jiff::Timestamp::now(),
        };
        self.calls.insert(key, call);
    }

    /// The carrier a source address belongs to: its `inboundSources`, or the address of a
    /// registration trunk.
    pub(super) fn carrier_of(
        &self,
        snapshot: &dialtone_model::Snapshot,
        source: Peer,
    ) -> Option<String> {
        if let Some(c) = snapshot.carrier_for_source(source.addr.ip()) {
            return Some(c.name.clone());
        }
        snapshot
            .carriers
            .values()
            .filter(|c| c.register)
            .find(|c| {
                self.carrier_addrs
                    .get(&c.name)
                    .is_some_and(|addrs| addrs.iter().any(|a| a.ip() == source.addr.ip()))
            })
            .map(|c| c.name.clone())
    }

    /// Our answer to the caller's offer on a fresh port pair (488 without a common codec,
    /// 500 without a free port). Without an offer we will offer in the 200 (late offer).
    /// Starts the media session of a caller's side (inbound caller or dialling softphone)
    /// on the RTP pair its offer got, if any.
    pub(super) fn caller_session(
        &self,
        media: &mut CallerMedia,
        key: &str,
    ) -> Option<session::SessionHandle> {
        media.pair.take().map(|pair| {
            session::spawn(session::Setup {
                pair,
                side: RelaySide {
                    remote: media.negotiated.remote,
                    codec: media.negotiated.codec,
                    telephone_event: media.negotiated.telephone_event,
                },
                call: key.to_owned(),
                inbox: self.inbox.clone(),
                prompts: self.prompts.clone(),
                inactivity: self.cfg.media_timeout,
            })
        })
    }

    pub(super) fn caller_media(&mut self, request: &Request) -> Result<CallerMedia, u16> {
        let offer = sipmsg::sdp_body(&request.headers, &request.body);
        let session = match offer.as_deref().map(sdp::parse) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                tracing::info!(error = %e, "unusable SDP offer: 488");
                return Err(488);
            }
            None => None,
        };
        if let Some(s) = &session
            && let Err(e) = sdp::negotiated(s, &CODECS)
        {
            tracing::info!(error = %e, "no common codec with the caller: 488");
            return Err(488);
        }
        let pair = self.ports.allocate().map_err(|e| {
            tracing::error!(error = %e, "no RTP port for the caller: 500");
            500u16
        })?;
        let local = std::net::SocketAddr::new(self.cfg.advertised(), pair.port);
        let session_id = fastrand::u64(1..u64::from(u32::MAX));
        let (answer, negotiated) = match session {
            Some(s) => sdp::answer(&s, local, &CODECS, session_id).map_err(|_| 488u16)?,
            None => (
                sdp::write(
                    local,
                    session_id,
                    1,
                    &CODECS,
                    Some(TE_PT),
                    sdp::Direction::SendRecv,
                ),
                Negotiated {
                    codec: Codec::Pcmu,
                    telephone_event: Some(TE_PT),
                    remote: None,
                    direction: sdp::Direction::SendRecv,
                },
            ),
        };
        Ok(CallerMedia {
            port: pair.port,
            pair: Some(pair),
            answer,
            negotiated,
        })
    }

    /// Answers a server transaction outside any call (errors, OPTIONS, 503 while draining).
    pub(super) fn reply(
        &mut self,
        tx: TxId,
        request: &Request,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
    ) {
        let response = sipmsg::respond(request, code, to_tag, None, None, extra);
        match self
            .layer
            .send_response(std::time::Instant::now(), tx, response)
        {
            Ok(actions) => self.execute(actions),
            Err(e) => tracing::debug!(%tx, error = %e, "response not sent"),
        }
    }

    /// Sends a response to the caller's INVITE.
    pub(super) fn reply_caller(&mut self, key: &str, code: u16, sdp: bool) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if call.state == CallerState::Dialling {
            // An outbound call has no INVITE of ours to answer.
            return;
        }
        let contact = (code > 100 && code < 300).then(|| call.contact.clone());
        let body = sdp.then(|| call.media.answer.clone());
        let response = sipmsg::respond(
            &call.invite,
            code,
            Some(&call.local_tag),
            contact.as_deref(),
            body.as_deref(),
            &[],
        );
        let tx = call.invite_tx;
        if code >= 300 {
            call.state = CallerState::Finished;
        }
        match self.layer.send_response(Instant::now(), tx, response) {
            Ok(actions) => self.execute(actions),
            Err(e) => tracing::debug!(%tx, error = %e, "response to the caller not sent"),
        }
    }

    /// The router's answer (or silence) about a call's plan.
    pub(super) fn on_plan(&mut self, key: &str, body: ReplyBody) {
        let ReplyBody::Plan(result) = body else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if call.plan.is_some() || call.state == CallerState::Finished {
            return;
        }
        let span = call.span.clone();
        let _g = span.enter();
        use pb::plan_call_response::Outcome;
        match *result {
            Ok(pb::PlanCallResponse {
                outcome: Some(Outcome::Plan(plan)),
            }) => self.start_plan(key, plan, None),
            Ok(pb::PlanCallResponse {
                outcome: Some(Outcome::Rejected(r)),
            }) => self.rejected(key, r),
            Ok(pb::PlanCallResponse { outcome: None }) => {
                self.router_down(key, "the router answered without a plan".into())
            }
            Err(e) => self.router_down(key, e),
        }
    }

    fn router_down(&mut self, key: &str, why: String) {
        let snapshot = self.snapshot();
        let Some(call) = self.calls.get(key) else {
            return;
        };
        tracing::warn!(call_id = %key, error = %why, "no plan from the router: trying the backup scheme");
        match super::backup::backup_plan(&snapshot, &call.number) {
            Some(plan) => {
                let reason = format!("router unreachable: {why}");
                self.start_plan(key, plan, Some(reason));
            }
            None => self.end_call(
                key,
                Ending::not_answered(
                    503,
                    &format!("router unreachable and no backup scheme: {why}"),
                ),
            ),
        }
    }

    fn rejected(&mut self, key: &str, r: pb::Rejection) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let kind = pb::RejectKind::try_from(r.kind).unwrap_or(pb::RejectKind::Unspecified);
        tracing::info!(call_id = %key, ?kind, reason = %r.reason, "call rejected by the router");
        let (code, disposition) = match kind {
            pb::RejectKind::Blocked => {
                call.emit(Kind::CallBlocked(pb::CallBlocked {
                    reason: r.reason.clone(),
                    blocklist: r.blocklist.clone(),
                    entry: r.entry.clone(),
                }));
                (403, pb::CallDisposition::Blocked)
            }
            pb::RejectKind::NoForwardingScheme => {
                call.emit(Kind::NoForwardingScheme(pb::NoForwardingScheme {
                    number_name: r.number_name.clone(),
                    schedule_state: r.schedule.as_ref().map_or(0, |s| s.state),
                    detail: r.reason.clone(),
                }));
                (480, pb::CallDisposition::NoForwardingScheme)
            }
            pb::RejectKind::NotFound | pb::RejectKind::Unspecified => {
                (404, pb::CallDisposition::NotAnswered)
            }
        };
        self.end_call(
            key,
            Ending {
                disposition,
                ..Ending::not_answered(code, &r.reason)
            },
        );
    }

    /// CANCEL from the caller: the layer already answered 200 and 487.
    pub(super) fn on_caller_cancel(&mut self, key: &str, terminated: bool) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if !terminated || call.state == CallerState::Answered {
            return;
        }
        let span = call.span.clone();
        let _g = span.enter();
        call.state = CallerState::Finished;
        if call.outbound.is_some() {
            // An agent's own call out: the agent gave up dialling, no client abandoned.
            tracing::info!(call_id = %key, "the agent cancelled the call out");
            self.end_call(
                key,
                Ending {
                    party: pb::HangupParty::Agent,
                    disposition: pb::CallDisposition::NotAnswered,
                    sip_code: 487,
                    reason: "the agent cancelled".into(),
                    cancel_cause: pb::LegCancelCause::CallerHungUp,
                },
            );
            return;
        }
        let phase = call.phase;
        call.emit(Kind::CallerHungUp(pb::CallerHungUp {
            phase: phase as i32,
        }));
        tracing::info!(call_id = %key, ?phase, "caller cancelled");
        self.end_call(
            key,
            Ending {
                party: pb::HangupParty::Client,
                disposition: pb::CallDisposition::Abandoned,
                sip_code: 487,
                reason: "caller cancelled".into(),
                cancel_cause: pb::LegCancelCause::CallerHungUp,
            },
        );
    }

    /// The caller's dialog, created when we answer.
    pub(super) fn confirm_caller_dialog(&mut self, key: &str) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        match Dialog::uas(&call.invite, &call.local_tag, &call.contact) {
            Ok(mut d) => {
                d.confirm();
                let id = d.id.clone();
                call.caller_dialog = Some(id.clone());
                self.dialog_owner.insert(id, (key.to_owned(), Side::Caller));
                self.dialogs.insert(d);
            }
            Err(e) => tracing::warn!(call_id = %key, error = %e, "caller dialog not created"),
        }
    }
}

/// The caller's number: P-Asserted-Identity, else From; `None` when anonymous.
fn caller_of(request: &Request) -> Option<String> {
    let from_header = |name: &str| {
        let value = sipmsg::header(&request.headers, name)?;
        let uri = crate::sip::message::grammar::name_addr(&value).ok()?.uri;
        sipmsg::uri_user(&uri).and_then(|u| sipmsg::normalise_number(&u))
    };
    from_header("P-Asserted-Identity").or_else(|| {
        let from = request.from_header().ok()?.value().to_string();
        let uri = crate::sip::message::grammar::name_addr(&from).ok()?.uri;
        sipmsg::uri_user(&uri).and_then(|u| sipmsg::normalise_number(&u))
    })
}
