//! Dispatch of what the transaction layer reports, and in-dialog requests: BYE ends both
//! sides, re-INVITE / UPDATE / INFO pass through to the other side (hold), with SDP rewritten
//! to name our media ports.

use std::time::Instant;

use dialtone_proto::v1 as pb;
use rsipstack::sip::{Method, Request, Response};

use super::actor::{Node, TxRole};
use super::call::{CallerState, Side};
use super::ending::Ending;
use super::legs::LegState;
use super::router::{Reply, ReplyBody};
use super::sipmsg;
use crate::media::sdp;
use crate::sip::Peer;
use crate::sip::dialog::{Dialog, DialogMatch};
use crate::sip::transaction::{Timeout, TxId};

impl Node {
    /// A new request with its server transaction.
    pub(super) fn on_request(&mut self, tx: TxId, request: Box<Request>, source: Peer) {
        let (id, refusal) = match self.dialogs.for_request(&request) {
            DialogMatch::Dialog(d) => (Some(d.id.clone()), None),
            DialogMatch::OutOfDialog => (None, None),
            DialogMatch::Refuse(r) => (None, Some(r)),
        };
        if let Some(response) = refusal {
            if let Some(response) = response
                && let Ok(actions) = self.layer.send_response(Instant::now(), tx, *response)
            {
                self.execute(actions);
            }
            return;
        }
        if let Some(id) = id {
            let Some((key, side)) = self.dialog_owner.get(&id).cloned() else {
                self.reply(tx, &request, 481, None, &[]);
                return;
            };
            self.in_dialog(&key, side, tx, request);
            return;
        }
        match request.method {
            Method::Invite => self.on_invite(tx, request, source),
            Method::Register => self.on_register(tx, request, source),
            Method::Options => {
                let allow = (
                    "Allow",
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO".to_owned(),
                );
                let code = if self.is_draining() { 503 } else { 200 };
                self.reply(tx, &request, code, None, &[allow]);
            }
            // BYE / UPDATE / INFO need a dialog (RFC 3261 §12.2.2).
            _ => self.reply(tx, &request, 481, None, &[]),
        }
    }

    /// The ACK of a 2xx we sent (the caller's, or of a relayed re-INVITE).
    pub(super) fn on_ack(&mut self, tx: Option<TxId>, request: &Request, source: Peer) {
        let _ = (tx, source);
        if let DialogMatch::Refuse(_) = self.dialogs.for_request(request) {
            tracing::debug!("ACK for no dialog: ignored");
        }
    }

    /// A response to one of our client transactions.
    pub(super) fn on_response(&mut self, tx: TxId, response: Response) {
        let code = response.status_code.code();
        match self.tx_role.get(&tx) {
            Some(TxRole::LegInvite(key, idx)) => {
                let (key, idx) = (key.clone(), *idx);
                self.on_leg_response(&key, idx, response);
            }
            Some(TxRole::Orphan {
                invite,
                dest,
                contact,
            }) if (200..300).contains(&code) => {
                let (invite, dest, contact) = (invite.clone(), *dest, contact.clone());
                tracing::info!("2xx to a cancelled INVITE: ACK and BYE");
                self.hang_up_orphan(&invite, &response, dest, &contact);
            }
            Some(TxRole::Probe(_)) if code >= 200 => {
                if let Some(TxRole::Probe(name)) = self.tx_role.remove(&tx) {
                    self.on_probe(&name, Some(code));
                }
            }
            Some(TxRole::Trunk(_)) if code >= 200 => {
                if let Some(TxRole::Trunk(name)) = self.tx_role.remove(&tx) {
                    self.on_trunk(&name, Some(&response));
                }
            }
            Some(TxRole::PassThrough { .. }) if code >= 200 => {
                if let Some(TxRole::PassThrough {
                    call,
                    server,
                    request,
                    from,
                }) = self.tx_role.remove(&tx)
                {
                    self.relay_response(&call, server, &request, from, response);
                }
            }
            _ => {}
        }
    }

    /// A response no transaction claims: a retransmitted 2xx whose ACK was lost.
    pub(super) fn on_stray(&mut self, response: &Response, source: Peer) {
        let is_invite_2xx = (200..300).contains(&response.status_code.code())
            && sipmsg::header(&response.headers, "CSeq").is_some_and(|c| c.ends_with("INVITE"));
        if !is_invite_2xx {
            return;
        }
        if let Some(dialog) = self.dialogs.for_response(response) {
            let cseq = sipmsg::header(&response.headers, "CSeq")
                .and_then(|c| c.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(1);
            let dest = sipmsg::peer_for_uri(&dialog.next_hop()).unwrap_or(source);
            if let Ok(ack) = dialog.ack(cseq, None)
                && let Ok(actions) = self.layer.send_ack(ack, dest)
            {
                self.execute(actions);
            }
        }
    }

    pub(super) fn on_timeout(&mut self, tx: TxId, kind: Timeout) {
        match self.tx_role.get(&tx) {
            Some(TxRole::Probe(_) | TxRole::Trunk(_)) => match self.tx_role.remove(&tx) {
                Some(TxRole::Probe(name)) => self.on_probe(&name, None),
                Some(TxRole::Trunk(name)) => self.on_trunk(&name, None),
                _ => {}
            },
            Some(TxRole::LegInvite(key, idx)) => {
                let (key, idx) = (key.clone(), *idx);
                let alerted = self
                    .calls
                    .get(&key)
                    .and_then(|c| c.legs.get(idx))
                    .is_some_and(|l| l.alerted);
                let (code, unreachable) = if alerted { (408, false) } else { (0, true) };
                self.leg_failed(&key, idx, code, "no final response", unreachable);
            }
            Some(TxRole::CallerInvite(key)) => {
                let key = key.clone();
                match kind {
                    Timeout::NoAck2xx => {
                        tracing::warn!(call_id = %key, "no ACK for our 200: hanging up");
                        self.end_call(&key, Ending::not_answered(0, "no ACK from the caller"));
                    }
                    Timeout::TuSilent => {
                        if let Some(c) = self.calls.get_mut(&key) {
                            c.state = CallerState::Finished;
                        }
                        self.end_call(&key, Ending::not_answered(408, "caller INVITE timed out"));
                    }
                    _ => {}
                }
            }
            Some(TxRole::PassThrough { .. }) => {
                if let Some(TxRole::PassThrough {
                    call,
                    server,
                    request,
                    from,
                }) = self.tx_role.remove(&tx)
                {
                    let _ = (call, from);
                    self.reply(server, &request, 408, None, &[]);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_transport_error(&mut self, tx: TxId) {
        match self.tx_role.get(&tx) {
            Some(TxRole::LegInvite(key, idx)) => {
                let (key, idx) = (key.clone(), *idx);
                self.leg_failed(&key, idx, 0, "transport error", true);
            }
            Some(TxRole::Probe(_) | TxRole::Trunk(_)) => match self.tx_role.remove(&tx) {
                Some(TxRole::Probe(name)) => self.on_probe(&name, None),
                Some(TxRole::Trunk(name)) => self.on_trunk(&name, None),
                _ => {}
            },
            _ => {}
        }
    }

    /// A router answer.
    pub(super) fn on_router(&mut self, reply: Reply) {
        let Reply {
            call,
            generation,
            body,
        } = reply;
        match body {
            ReplyBody::Plan(_) => self.on_plan(&call, body),
            ReplyBody::Reserved(_) => self.on_reserved(&call, generation, body),
            ReplyBody::QueueJoined(_) => self.on_queue_joined(&call, generation, body),
            ReplyBody::QueueNext(_) => self.on_queue_next(&call, generation, body),
            ReplyBody::Owner(_) => self.on_owner(&call, generation, body),
            ReplyBody::Callback(_) => self.on_callback(&call, body),
            ReplyBody::Outbound(result) => self.on_plan_outbound(&call, result),
        }
    }

    /// A request inside one of a call's dialogs.
    fn in_dialog(&mut self, key: &str, side: Side, tx: TxId, request: Box<Request>) {
        let Some(call) = self.calls.get(key) else {
            self.reply(tx, &request, 481, None, &[]);
            return;
        };
        let span = tracing::info_span!(parent: &call.span, "sip.in_dialog", call_id = %key, method = %request.method);
        let _g = span.enter();
        let local_tag = self.local_tag(key, side);
        let answered = call.answered;
        let caller_answered = call.state == CallerState::Answered;
        match request.method {
            Method::Bye => {
                self.reply(tx, &request, 200, local_tag.as_deref(), &[]);
                match side {
                    Side::Caller => {
                        let ending = self.caller_hung_up(key);
                        self.end_call(key, ending);
                    }
                    Side::Leg(i) if Some(i) == answered => {
                        // Outbound, the answered leg is the client's.
                        let party = match self.calls.get(key).map(|c| c.outbound.is_some()) {
                            Some(true) => pb::HangupParty::Client,
                            _ => pb::HangupParty::Agent,
                        };
                        self.end_call(key, hung_up(party))
                    }
                    Side::Leg(i) => {
                        if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.legs.get_mut(i)) {
                            leg.state = LegState::Ended;
                        }
                    }
                }
            }
            Method::Invite | Method::Update | Method::Info => {
                let other = match (side, answered) {
                    (Side::Caller, Some(i)) => Some(Side::Leg(i)),
                    (Side::Leg(i), Some(a)) if i == a => Some(Side::Caller),
                    _ => None,
                };
                match other {
                    Some(other) => self.pass_through(key, side, other, tx, request),
                    None if request.method == Method::Info => {
                        self.reply(tx, &request, 200, local_tag.as_deref(), &[]);
                        if side == Side::Caller {
                            self.info_dtmf(key, &request);
                        }
                    }
                    None if side == Side::Caller && caller_answered => {
                        // A session refresh (or a codec re-offer) while the caller hears the
                        // node: our media does not change, so the answer is the one they have.
                        self.reply_sdp(key, tx, &request, local_tag.as_deref());
                    }
                    None => self.reply(tx, &request, 491, local_tag.as_deref(), &[]),
                }
            }
            _ => self.reply(tx, &request, 200, local_tag.as_deref(), &[]),
        }
    }

    /// A key pressed in SIP INFO (the fallback of phones that send no RFC 4733 events).
    fn info_dtmf(&mut self, key: &str, request: &Request) {
        let ct = sipmsg::header(&request.headers, "Content-Type").unwrap_or_default();
        match crate::media::dtmf::from_info(&ct, &request.body) {
            Some(digit) => self.on_digit(key, digit),
            None => tracing::debug!(call_id = %key, content_type = %ct, "INFO without a key"),
        }
    }

    /// Answers an in-dialog INVITE / UPDATE from the caller with our unchanged SDP.
    fn reply_sdp(&mut self, key: &str, tx: TxId, request: &Request, tag: Option<&str>) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let body = (request.method == Method::Invite || !request.body.is_empty())
            .then(|| call.media.answer.clone());
        let response =
            sipmsg::respond(request, 200, tag, Some(&call.contact), body.as_deref(), &[]);
        match self.layer.send_response(Instant::now(), tx, response) {
            Ok(actions) => self.execute(actions),
            Err(e) => tracing::debug!(error = %e, "response to the caller's re-INVITE not sent"),
        }
    }

    fn local_tag(&self, key: &str, side: Side) -> Option<String> {
        let call = self.calls.get(key)?;
        let id = match side {
            Side::Caller => call.caller_dialog.as_ref(),
            Side::Leg(i) => call.legs.get(i)?.dialog.as_ref(),
        }?;
        Some(id.local_tag.clone())
    }

    /// Our SDP toward `side`, mirroring the direction of the SDP received from the other.
    fn sdp_for(&mut self, key: &str, side: Side, received: Option<&str>) -> Option<String> {
        let received = received.and_then(|s| sdp::parse(s).ok())?;
        let direction = received
            .media
            .iter()
            .find(|m| m.kind == "audio")
            .map(|m| m.direction)
            .unwrap_or_default();
        let ip = self.cfg.advertised();
        let call = self.calls.get_mut(key)?;
        call.sdp_version += 1;
        let (port, n) = match side {
            Side::Caller => (call.media.port, Some(call.media.negotiated)),
            Side::Leg(i) => {
                let leg = call.legs.get(i)?;
                (leg.port, leg.negotiated)
            }
        };
        let n = n?;
        Some(sdp::write(
            std::net::SocketAddr::new(ip, port),
            u64::from(port),
            call.sdp_version,
            &[n.codec],
            n.telephone_event,
            direction,
        ))
    }

    /// Relays a re-INVITE / UPDATE / INFO to the other side of a bridged call.
    fn pass_through(&mut self, key: &str, from: Side, to: Side, tx: TxId, request: Box<Request>) {
        let received = sipmsg::sdp_body(&request.headers, &request.body);
        let body = if request.method == Method::Info {
            let ct = sipmsg::header(&request.headers, "Content-Type");
            ct.map(|ct| (ct, request.body.clone()))
        } else {
            self.sdp_for(key, to, received.as_deref())
                .map(|s| ("application/sdp".to_owned(), s.into_bytes()))
        };
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let (dialog_id, fallback) = match to {
            Side::Caller => (call.caller_dialog.clone(), call.source),
            Side::Leg(i) => match call.legs.get(i) {
                Some(l) => (l.dialog.clone(), l.dest),
                None => return,
            },
        };
        let Some(dialog) = dialog_id.as_ref().and_then(|id| self.dialogs.get_mut(id)) else {
            self.reply(tx, &request, 481, None, &[]);
            return;
        };
        let out = dialog.request(
            request.method,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        let dest = match to {
            Side::Caller => fallback,
            Side::Leg(_) => sipmsg::peer_for_uri(&dialog.next_hop()).unwrap_or(fallback),
        };
        let mut out = match out {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot relay the request");
                self.reply(tx, &request, 500, None, &[]);
                return;
            }
        };
        sipmsg::set_max_forwards(&mut out, sipmsg::max_forwards(&request).saturating_sub(1));
        match self.layer.send_request(Instant::now(), out, dest) {
            Ok((client, actions)) => {
                self.tx_role.insert(
                    client,
                    TxRole::PassThrough {
                        call: key.to_owned(),
                        server: tx,
                        request,
                        from,
                    },
                );
                self.execute(actions);
            }
            Err(e) => {
                tracing::warn!(error = %e, "relayed request not sent");
                self.reply(tx, &request, 500, None, &[]);
            }
        }
    }

    /// The other side answered a relayed request: answer the original, ACK a 2xx re-INVITE.
    fn relay_response(
        &mut self,
        key: &str,
        server: TxId,
        request: &Request,
        from: Side,
        response: Response,
    ) {
        let code = response.status_code.code();
        if request.method == Method::Invite
            && (200..300).contains(&code)
            && let Some(dialog) = self.dialogs.for_response(&response)
        {
            let cseq = sipmsg::header(&response.headers, "CSeq")
                .and_then(|c| c.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(dialog.local_seq);
            let dest = sipmsg::peer_for_uri(&dialog.next_hop());
            if let (Ok(ack), Some(dest)) = (dialog.ack(cseq, None), dest)
                && let Ok(actions) = self.layer.send_ack(ack, dest)
            {
                self.execute(actions);
            }
        }
        let received = sipmsg::sdp_body(&response.headers, &response.body);
        let sdp = if (200..300).contains(&code) {
            self.sdp_for(key, from, received.as_deref())
        } else {
            None
        };
        let tag = self.local_tag(key, from);
        let contact = self.calls.get(key).map(|c| c.contact.clone());
        let reply = sipmsg::respond(
            request,
            code,
            tag.as_deref(),
            contact.as_deref(),
            sdp.as_deref(),
            &[],
        );
        match self.layer.send_response(Instant::now(), server, reply) {
            Ok(actions) => self.execute(actions),
            Err(e) => tracing::debug!(error = %e, "relayed response not sent"),
        }
    }

    /// Sends BYE on a side's confirmed dialog.
    pub(super) fn send_bye(&mut self, key: &str, side: Side) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let (id, fallback) = match side {
            Side::Caller => (call.caller_dialog.clone(), Some(call.source)),
            Side::Leg(i) => match call.legs.get(i) {
                Some(l) => (l.dialog.clone(), Some(l.dest)),
                None => (None, None),
            },
        };
        let Some(dialog) = id.as_ref().and_then(|id| self.dialogs.get_mut(id)) else {
            return;
        };
        let bye = match dialog.request(Method::Bye, None) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "BYE not built");
                return;
            }
        };
        // The caller's side is reached where its requests came from (NAT, TCP connection).
        let dest = match side {
            Side::Caller => fallback,
            Side::Leg(_) => sipmsg::peer_for_uri(&dialog.next_hop()).or(fallback),
        };
        let Some(dest) = dest else {
            return;
        };
        match self.layer.send_request(Instant::now(), bye, dest) {
            Ok((tx, actions)) => {
                self.tx_role.insert(tx, TxRole::Fire);
                self.execute(actions);
            }
            Err(e) => tracing::warn!(error = %e, "BYE not sent"),
        }
    }

    /// A 2xx for an INVITE of a call that is gone: ACK it and hang up (RFC 3261 §15).
    pub(super) fn hang_up_orphan(
        &mut self,
        invite: &Request,
        response: &Response,
        dest: Peer,
        contact: &str,
    ) {
        let Ok(mut dialog) = Dialog::uac(invite, response, contact) else {
            return;
        };
        let dest = sipmsg::peer_for_uri(&dialog.next_hop()).unwrap_or(dest);
        if let Ok(ack) = dialog.ack(1, None)
            && let Ok(actions) = self.layer.send_ack(ack, dest)
        {
            self.execute(actions);
        }
        if let Ok(bye) = dialog.request(Method::Bye, None)
            && let Ok((tx, actions)) = self.layer.send_request(Instant::now(), bye, dest)
        {
            self.tx_role.insert(tx, TxRole::Fire);
            self.execute(actions);
        }
    }
}

fn hung_up(party: pb::HangupParty) -> Ending {
    Ending {
        party,
        disposition: pb::CallDisposition::Answered,
        sip_code: 0,
        reason: "BYE".into(),
        cancel_cause: pb::LegCancelCause::System,
    }
}
