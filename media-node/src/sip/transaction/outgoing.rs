//! The TU side of the [`TransactionLayer`]: starting client transactions, cancelling,
//! ACKing 2xx and answering on server transactions.

use std::time::Instant;

use rsipstack::sip::{
    ContentLength, Header, HeadersExt, MaxForwards, Method, Request, Response, Via,
};

use super::client::{InviteClient, InviteClientState, NonInviteClient, derived_request};
use super::key::ClientKey;
use super::layer::{Entry, Tx};
use super::{Action, LayerError, TransactionLayer, TxId};
use crate::sip::Peer;
use crate::sip::message::grammar;

impl TransactionLayer {
    /// Adds our Via (new branch, `rport`), Max-Forwards if missing and a correct
    /// Content-Length. Returns the branch.
    fn prepare(&mut self, request: &mut Request, transport: crate::sip::Transport) -> String {
        let branch = self.new_branch();
        let via = format!(
            "SIP/2.0/{transport} {};branch={branch};rport",
            self.config.sent_by
        );
        request.headers.push_front(Header::Via(Via::new(via)));
        if request.max_forwards_header().is_err() {
            request
                .headers
                .push(Header::MaxForwards(MaxForwards::new("70")));
        }
        set_content_length(&mut request.headers, request.body.len());
        branch
    }

    /// Starts a client transaction for `request` (not ACK, not CANCEL) towards `dest`.
    /// The request must carry From, To, Call-ID and a CSeq naming its method; the layer
    /// adds the top Via.
    pub fn send_request(
        &mut self,
        now: Instant,
        mut request: Request,
        dest: Peer,
    ) -> Result<(TxId, Vec<Action>), LayerError> {
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Err(LayerError::InvalidRequest(
                "send ACK with send_ack and CANCEL with cancel",
            ));
        }
        if request.from_header().is_err()
            || request.to_header().is_err()
            || request.call_id_header().is_err()
        {
            return Err(LayerError::InvalidRequest(
                "From, To and Call-ID are required",
            ));
        }
        let cseq = request.cseq_header().ok().and_then(|c| {
            grammar::cseq(c.value())
                .ok()
                .map(|(n, m)| (n, m.to_string()))
        });
        let method = request.method.to_string();
        let cseq = match cseq {
            Some((n, m)) if m == method => n,
            _ => {
                return Err(LayerError::InvalidRequest(
                    "CSeq missing or not naming the method",
                ));
            }
        };
        let branch = self.prepare(&mut request, dest.transport);
        let id = self.new_id();
        let mut out = Vec::new();
        let timers = self.config.timers;
        let tx = if request.method == Method::Invite {
            Tx::InviteClient(InviteClient::start(
                id, now, request, cseq, dest, timers, &mut out,
            ))
        } else {
            let bytes = request.to_bytes();
            Tx::NonInviteClient(NonInviteClient::start(
                id, now, bytes, dest, timers, &mut out,
            ))
        };
        let key = ClientKey { branch, method };
        self.clients.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Entry {
                tx,
                scheduled: None,
                client_key: Some(key),
            }),
        );
        self.settle(id, &mut out);
        Ok((id, out))
    }

    /// Cancels an INVITE client transaction (RFC 3261 §9.1): sends CANCEL now if a
    /// provisional response was received, or as soon as one is; does nothing once a final
    /// response arrived. The CANCEL's own responses come as [`TuEvent::Response`](super::TuEvent::Response).
    pub fn cancel(&mut self, now: Instant, invite: TxId) -> Result<Vec<Action>, LayerError> {
        let mut out = Vec::new();
        match self.txs.get_mut(&invite).map(|e| &mut e.tx) {
            None => return Err(LayerError::UnknownTransaction(invite)),
            Some(Tx::InviteClient(t)) => match t.state {
                InviteClientState::Calling => t.cancel_pending = true,
                InviteClientState::Proceeding => self.send_cancel(now, invite, &mut out),
                _ => {}
            },
            Some(_) => {
                return Err(LayerError::WrongKind(
                    invite,
                    "an INVITE client transaction",
                ));
            }
        }
        Ok(out)
    }

    pub(super) fn send_cancel(&mut self, now: Instant, invite: TxId, out: &mut Vec<Action>) {
        let Some(entry) = self.txs.get_mut(&invite) else {
            return;
        };
        let (Tx::InviteClient(t), Some(key)) = (&mut entry.tx, &entry.client_key) else {
            return;
        };
        let to = t
            .invite
            .to_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let bytes = derived_request(&t.invite, "CANCEL", t.cseq, &to);
        let (peer, branch) = (t.peer, key.branch.clone());
        t.cancelled(now);
        let id = self.new_id();
        let tx = NonInviteClient::start(id, now, bytes, peer, self.config.timers, out);
        let key = ClientKey {
            branch,
            method: "CANCEL".into(),
        };
        self.clients.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Entry {
                tx: Tx::NonInviteClient(tx),
                scheduled: None,
                client_key: Some(key),
            }),
        );
        self.settle(id, out);
        self.settle(invite, out);
    }

    /// Sends the ACK for a 2xx (a request outside any transaction, RFC 3261 §13.2.2.4);
    /// the layer adds a Via with a new branch.
    pub fn send_ack(&mut self, ack: Request, dest: Peer) -> Result<Vec<Action>, LayerError> {
        let mut ack = ack;
        if ack.method != Method::Ack {
            return Err(LayerError::InvalidRequest("send_ack sends ACK only"));
        }
        self.prepare(&mut ack, dest.transport);
        Ok(vec![Action::Send {
            to: dest,
            bytes: ack.to_bytes(),
            tx: None,
        }])
    }

    /// Sends the TU's response on a server transaction. Content-Length is set from the
    /// body; the To tag it carries becomes the tag of responses the layer makes later
    /// (487 after CANCEL, 408 on the guard).
    pub fn send_response(
        &mut self,
        now: Instant,
        tx: TxId,
        mut response: Response,
    ) -> Result<Vec<Action>, LayerError> {
        let code = response.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(LayerError::InvalidStatus(code));
        }
        set_content_length(&mut response.headers, response.body.len());
        let tag = response
            .to_header()
            .ok()
            .and_then(|to| grammar::name_addr(to.value()).ok())
            .and_then(|n| n.tag().map(str::to_string));
        let bytes = response.to_bytes();
        let mut out = Vec::new();
        match self.txs.get_mut(&tx).map(|e| &mut e.tx) {
            None => return Err(LayerError::UnknownTransaction(tx)),
            Some(Tx::InviteServer(t)) => {
                if let Some(tag) = tag {
                    t.origin.to_tag = tag;
                }
                t.respond(now, code, bytes, &mut out)?
            }
            Some(Tx::NonInviteServer(t)) => {
                if let Some(tag) = tag {
                    t.origin.to_tag = tag;
                }
                t.respond(now, code, bytes, &mut out)?
            }
            Some(_) => return Err(LayerError::WrongKind(tx, "a server transaction")),
        }
        self.settle(tx, &mut out);
        Ok(out)
    }
}

fn set_content_length(headers: &mut rsipstack::sip::Headers, len: usize) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_)));
    headers.push(Header::ContentLength(ContentLength::new(len.to_string())));
}
