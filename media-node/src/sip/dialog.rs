//! Dialog state (RFC 3261 §12) for both UAC and UAS dialogs, and in-dialog requests.
//!
//! The B2BUA keeps one dialog per leg. Header values are read with our own recognisers
//! and kept as text: `rsipstack`'s `Uri` type re-encodes `%` in user parts on output
//! (`sip:cal%6Cer@h` would become `sip:cal%256Cer@h`), so a URI only becomes a `Uri` when a
//! request line needs one, and then with its escapes decoded first ([`uri_for_request`]).

use std::collections::HashMap;

use rsipstack::sip::{
    CSeq, CallId, Contact, ContentLength, ContentType, From, Header, Headers, HeadersExt,
    MaxForwards, Method, Request, Response, Route, To, Uri, Version,
};
use thiserror::Error;

use crate::sip::message::{grammar, response_to};

/// Why a dialog cannot be created or used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// The response carries no To tag (no dialog can be identified).
    #[error("no To tag")]
    NoToTag,
    /// The message cannot create or update a dialog (e.g. 100 Trying, or a failure).
    #[error("status {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// A URI `rsipstack` cannot represent (e.g. an unknown transport parameter).
    #[error("URI cannot be used in a request line: {0}")]
    Uri(String),
}

/// Which side of the dialog we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE.
    Uac,
    /// We received it.
    Uas,
}

/// RFC 3261 §12: early after a provisional with a tag, confirmed after a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a 1xx with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Identifies a dialog (RFC 3261 §12: Call-ID, local tag, remote tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// The state of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Identity.
    pub id: DialogId,
    /// Our side.
    pub role: Role,
    /// Early or confirmed.
    pub state: DialogState,
    /// Our address (From of our requests), without tag.
    pub local_uri: String,
    /// The peer's address (To of our requests), without tag.
    pub remote_uri: String,
    /// CSeq of our last request.
    pub local_seq: u32,
    /// CSeq of the peer's last request, once it sent one.
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go (the peer's Contact URI).
    pub remote_target: String,
    /// Route set from Record-Route, in the order our requests use it.
    pub route_set: Vec<String>,
    /// Our Contact URI.
    pub local_contact: String,
    /// The dialog was set up with a SIPS Request-URI.
    pub secure: bool,
}

/// The value of a single-valued name-addr header, split into (address without its tag
/// parameter, tag).
fn address_and_tag(value: &str) -> Option<(String, Option<String>)> {
    let parsed = grammar::name_addr(value).ok()?;
    let tag = parsed.tag().map(str::to_string);
    let value = value.trim();
    // Header parameters start after '>' (name-addr) or at the first ';' (addr-spec).
    let start = match value.find('>') {
        Some(i) if parsed.bracketed => i + 1,
        _ => value.find(';').unwrap_or(value.len()),
    };
    let (address, params) = value.split_at(start);
    let mut kept = address.trim_end().to_string();
    for param in params.split(';').skip(1) {
        let name = param.split('=').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("tag") {
            kept.push(';');
            kept.push_str(param.trim());
        }
    }
    Some((kept, tag))
}

fn contact_uri(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::Contact(c) => grammar::split_commas(c.value())
            .first()
            .and_then(|e| grammar::name_addr(e).ok())
            .map(|n| n.uri),
        _ => None,
    })
}

fn record_route(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::RecordRoute(rr) => Some(rr.value()),
            _ => None,
        })
        .flat_map(|v| grammar::split_commas(v).into_iter().map(str::to_string))
        .filter(|e| !e.is_empty())
        .collect()
}

fn cseq_number(headers: &Headers) -> Option<u32> {
    headers.iter().find_map(|h| match h {
        Header::CSeq(c) => grammar::cseq(c.value()).ok().map(|(n, _)| n),
        _ => None,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Turns URI text into an `rsipstack` [`Uri`] whose serialisation is equivalent to it:
/// user and password escapes are decoded first because `rsipstack` encodes them again.
pub fn uri_for_request(text: &str) -> Result<Uri, DialogError> {
    let mut uri = Uri::try_from(text).map_err(|e| DialogError::Uri(e.to_string()))?;
    if let Some(auth) = uri.auth.as_mut() {
        auth.user = percent_decode(&auth.user).ok_or_else(|| DialogError::Uri(text.into()))?;
        if let Some(p) = auth.password.as_mut() {
            *p = percent_decode(p).ok_or_else(|| DialogError::Uri(text.into()))?;
        }
    }
    Ok(uri)
}

/// Whether a route entry's URI carries the `lr` parameter (loose routing, RFC 3261 §16.12).
fn is_loose(entry: &str) -> bool {
    let Ok(parsed) = grammar::name_addr(entry) else {
        return false;
    };
    let after_host = parsed.uri.split('?').next().unwrap_or_default();
    let after_host = after_host.rsplit('@').next().unwrap_or(after_host);
    after_host.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case("lr"))
    })
}

impl Dialog {
    /// The UAC dialog created by a response with a To tag to our INVITE (RFC 3261
    /// §12.1.2): early for 101-199, confirmed for 2xx. The route set is the Record-Route
    /// of the response, reversed.
    pub fn uac(
        invite: &Request,
        response: &Response,
        local_contact: &str,
    ) -> Result<Self, DialogError> {
        let code = response.status_code.code();
        if !(101..=299).contains(&code) {
            return Err(DialogError::NotDialogCreating(code));
        }
        let from = invite
            .from_header()
            .map_err(|_| DialogError::Header("From"))?;
        let (local_uri, local_tag) =
            address_and_tag(from.value()).ok_or(DialogError::Header("From"))?;
        let to = response
            .to_header()
            .map_err(|_| DialogError::Header("To"))?;
        let (remote_uri, remote_tag) =
            address_and_tag(to.value()).ok_or(DialogError::Header("To"))?;
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::Header("Call-ID"))?;
        let mut route_set = record_route(&response.headers);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.value().to_string(),
                local_tag: local_tag.ok_or(DialogError::Header("From"))?,
                remote_tag: remote_tag.ok_or(DialogError::NoToTag)?,
            },
            role: Role::Uac,
            state: if code >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_uri,
            remote_uri,
            local_seq: cseq_number(&invite.headers).ok_or(DialogError::Header("CSeq"))?,
            remote_seq: None,
            remote_target: contact_uri(&response.headers).ok_or(DialogError::Header("Contact"))?,
            route_set,
            local_contact: local_contact.to_string(),
            secure: invite.uri.to_string().starts_with("sips:"),
        })
    }

    /// The UAS dialog for a received INVITE answered with `local_tag` (RFC 3261 §12.1.1).
    /// It starts early; call [`Dialog::confirm`] when the 2xx is sent.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Self, DialogError> {
        let from = invite
            .from_header()
            .map_err(|_| DialogError::Header("From"))?;
        let (remote_uri, remote_tag) =
            address_and_tag(from.value()).ok_or(DialogError::Header("From"))?;
        let to = invite.to_header().map_err(|_| DialogError::Header("To"))?;
        let (local_uri, _) = address_and_tag(to.value()).ok_or(DialogError::Header("To"))?;
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::Header("Call-ID"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.value().to_string(),
                local_tag: local_tag.to_string(),
                // RFC 2543 clients may omit the From tag: it is then empty.
                remote_tag: remote_tag.unwrap_or_default(),
            },
            role: Role::Uas,
            state: DialogState::Early,
            local_uri,
            remote_uri,
            local_seq: 0,
            remote_seq: cseq_number(&invite.headers),
            remote_target: contact_uri(&invite.headers).ok_or(DialogError::Header("Contact"))?,
            route_set: record_route(&invite.headers),
            local_contact: local_contact.to_string(),
            secure: invite.uri.to_string().starts_with("sips:"),
        })
    }

    /// The UAS sent its 2xx.
    pub fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// A later response in a UAC dialog: a 2xx confirms it; 1xx/2xx refresh the remote
    /// target (and, while early, the route set: RFC 3261 §12.1.2, §13.2.2.4).
    pub fn on_response(&mut self, response: &Response) {
        let code = response.status_code.code();
        if !(101..=299).contains(&code) {
            return;
        }
        if let Some(target) = contact_uri(&response.headers) {
            self.remote_target = target;
        }
        if self.state == DialogState::Early && self.role == Role::Uac {
            let mut routes = record_route(&response.headers);
            routes.reverse();
            self.route_set = routes;
        }
        if code >= 200 {
            self.state = DialogState::Confirmed;
        }
    }

    /// Checks an in-dialog request from the peer (RFC 3261 §12.2.2): a CSeq lower than
    /// the last one is out of order and gets 500. A re-INVITE or UPDATE with a Contact
    /// refreshes the remote target. Returns the status to answer with on refusal.
    pub fn on_request(&mut self, request: &Request) -> Result<(), u16> {
        let Some(seq) = cseq_number(&request.headers) else {
            return Err(400);
        };
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|last| seq < last) {
                return Err(500);
            }
            self.remote_seq = Some(seq);
        }
        if matches!(request.method, Method::Invite | Method::Update)
            && let Some(target) = contact_uri(&request.headers)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// The next hop for our requests: the first route's URI, or the remote target.
    pub fn next_hop(&self) -> String {
        self.route_set
            .first()
            .and_then(|r| grammar::name_addr(r).ok())
            .map_or_else(|| self.remote_target.clone(), |n| n.uri)
    }

    /// Builds an in-dialog request (BYE, re-INVITE, UPDATE, INFO…) with the next local
    /// CSeq (RFC 3261 §12.2.1.1), including loose or strict routing. The transaction layer
    /// adds the Via.
    pub fn request(
        &mut self,
        method: Method,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Request, DialogError> {
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        self.build(method, self.local_seq, body)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn ack(
        &self,
        invite_seq: u32,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Request, DialogError> {
        self.build(Method::Ack, invite_seq, body)
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Request, DialogError> {
        let (target, routes): (String, Vec<String>) = match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if is_loose(first) => (self.remote_target.clone(), self.route_set.clone()),
            Some(first) => {
                // Strict routing: the first route becomes the Request-URI and the remote
                // target goes last in Route (RFC 3261 §12.2.1.1).
                let uri = grammar::name_addr(first)
                    .map_err(|_| DialogError::Header("Record-Route"))?
                    .uri;
                let mut rest: Vec<String> = self.route_set[1..].to_vec();
                rest.push(format!("<{}>", self.remote_target));
                (uri, rest)
            }
        };
        let mut headers = Headers::default();
        for route in routes {
            headers.push(Header::Route(Route::new(route)));
        }
        headers.push(Header::From(From::new(format!(
            "{};tag={}",
            self.local_uri, self.id.local_tag
        ))));
        let to = if self.id.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            format!("{};tag={}", self.remote_uri, self.id.remote_tag)
        };
        headers.push(Header::To(To::new(to)));
        headers.push(Header::CallId(CallId::new(self.id.call_id.clone())));
        headers.push(Header::CSeq(CSeq::new(format!("{seq} {method}"))));
        headers.push(Header::MaxForwards(MaxForwards::new("70")));
        if method != Method::Ack {
            headers.push(Header::Contact(Contact::new(format!(
                "<{}>",
                self.local_contact
            ))));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                headers.push(Header::ContentType(ContentType::new(content_type)));
                bytes
            }
            None => Vec::new(),
        };
        headers.push(Header::ContentLength(ContentLength::new(
            body.len().to_string(),
        )));
        Ok(Request {
            method,
            uri: uri_for_request(&target)?,
            version: Version::V2,
            headers,
            body,
        })
    }
}

/// Where an incoming request belongs.
#[derive(Debug)]
pub enum DialogMatch<'a> {
    /// An existing dialog (already checked and updated by [`Dialog::on_request`]).
    Dialog(&'a mut Dialog),
    /// No To tag: a request outside any dialog (new call, REGISTER, OPTIONS…).
    OutOfDialog,
    /// Refused: a To tag that matches no dialog (481, RFC 3261 §12.2.2) or an
    /// out-of-order CSeq (500). Send this response (ACKs are never answered: `None`).
    Refuse(Option<Box<Response>>),
}

/// All dialogs of a node, keyed by [`DialogId`].
#[derive(Debug, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// Adds or replaces a dialog.
    pub fn insert(&mut self, dialog: Dialog) {
        self.map.insert(dialog.id.clone(), dialog);
    }

    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.map.remove(id)
    }

    /// A dialog by id.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    /// How many dialogs exist.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The dialog a response to one of our requests belongs to (local tag = From tag).
    pub fn for_response(&mut self, response: &Response) -> Option<&mut Dialog> {
        let call_id = response.call_id_header().ok()?.value().to_string();
        let (_, local) = address_and_tag(response.from_header().ok()?.value())?;
        let (_, remote) = address_and_tag(response.to_header().ok()?.value())?;
        self.map.get_mut(&DialogId {
            call_id,
            local_tag: local?,
            remote_tag: remote?,
        })
    }

    /// Routes an incoming request (RFC 3261 §12.2.2): to its dialog, out of dialog, or
    /// refused with 481 / 500.
    pub fn for_request(&mut self, request: &Request) -> DialogMatch<'_> {
        let refuse = |code: u16| {
            if request.method == Method::Ack {
                DialogMatch::Refuse(None)
            } else {
                DialogMatch::Refuse(Some(Box::new(response_to(request, code, None))))
            }
        };
        let tags = (
            request.call_id_header().ok().map(|c| c.value().to_string()),
            request
                .to_header()
                .ok()
                .and_then(|t| address_and_tag(t.value())),
            request
                .from_header()
                .ok()
                .and_then(|f| address_and_tag(f.value())),
        );
        let (Some(call_id), Some((_, to_tag)), Some((_, from_tag))) = tags else {
            return refuse(400);
        };
        let Some(local_tag) = to_tag else {
            return DialogMatch::OutOfDialog;
        };
        let id = DialogId {
            call_id,
            local_tag,
            remote_tag: from_tag.unwrap_or_default(),
        };
        let Some(dialog) = self.map.get_mut(&id) else {
            return refuse(481);
        };
        match dialog.on_request(request) {
            Ok(()) => DialogMatch::Dialog(dialog),
            Err(code) => refuse(code),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
#[path = "dialog_tests.rs"]
mod tests;
