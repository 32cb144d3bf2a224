//! Structural checks of received requests and responses (RFC 3261 §7, §8.1.3.3, §8.2.1-2,
//! §18.3; RFC 4475 §3.1.2 and §3.3; RFC 5118), run on the raw reading before `rsipstack`.

use rsipstack::sip::SipMessage;

use super::build::{Echo, response_bytes};
use super::grammar::{self, LineError, MAGIC_COOKIE};
use super::raw::{Hdr, RawMessage};
use super::{
    InboundRequest, InboundResponse, ParseConfig, Parsed, Reject, RequestMeta, Verdict, policy,
};
use crate::sip::Peer;

/// Methods whose spelling is registered (RFC 3261 and extensions `rsipstack` represents).
/// Methods are case-sensitive (RFC 3261 §7.1): `invite` is an unknown extension method.
pub const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

struct Answer<'a> {
    echo: Echo,
    source: Peer,
    is_ack: bool,
    raw: &'a RawMessage<'a>,
}

impl Answer<'_> {
    fn reject(&self, status: u16, reason: impl Into<String>) -> Parsed {
        if self.is_ack {
            // An ACK is never answered (RFC 3261 §17.2.1): a bad one is just dropped.
            return Parsed::Drop("malformed ACK");
        }
        if self.raw.start_line.is_none() {
            return Parsed::Drop("unreadable start line");
        }
        if self.raw.count(Hdr::Via) == 0 {
            // A response goes where the top Via says and carries the request's Vias
            // (RFC 3261 §8.2.6.2, §18.2.2): without one there is nothing valid to send, and
            // answering bare noise only tells a scanner that a SIP server listens here.
            return Parsed::Drop("no Via to answer to");
        }
        let reason = reason.into();
        let tag = self.echo.stable_tag();
        Parsed::Reject(Reject {
            status,
            bytes: response_bytes(&self.echo, status, &reason, Some(&tag), &[]),
            reason,
            to: self.source,
            method: self.raw.method_token().map(str::to_string),
        })
    }
}

fn single<'a>(raw: &'a RawMessage<'_>, h: Hdr) -> Result<&'a str, String> {
    match raw.count(h) {
        0 => Err(format!("Missing {} Header", h.name())),
        1 => Ok(raw.first(h).unwrap_or_default()),
        _ => Err(format!("Multiple {} Headers", h.name())),
    }
}

fn at_most_one<'a>(raw: &'a RawMessage<'_>, h: Hdr) -> Result<Option<&'a str>, String> {
    match raw.count(h) {
        0 => Ok(None),
        1 => Ok(raw.first(h)),
        _ => Err(format!("Multiple {} Headers", h.name())),
    }
}

/// Every Via value, flattened into entries.
fn all_vias(raw: &RawMessage<'_>) -> Result<Vec<grammar::ViaParm>, &'static str> {
    let mut out = Vec::new();
    for value in raw.all(Hdr::Via) {
        out.extend(grammar::via(value)?);
    }
    Ok(out)
}

/// Checks the syntax of list headers carrying name-addrs (Contact, Route, Record-Route).
fn name_addr_lists(raw: &RawMessage<'_>) -> Result<(), String> {
    for h in [Hdr::Contact, Hdr::Route, Hdr::RecordRoute] {
        for value in raw.all(h) {
            for entry in grammar::split_commas(value) {
                let star = h == Hdr::Contact && entry == "*";
                if !star && grammar::name_addr(entry).is_err() {
                    return Err(format!("Malformed {} Header", h.name()));
                }
            }
        }
    }
    Ok(())
}

/// Content-Length against what arrived; returns the body length to use.
fn body_length(raw: &RawMessage<'_>, max: usize) -> Result<usize, (u16, String)> {
    let declared = at_most_one(raw, Hdr::ContentLength).map_err(|r| (400, r))?;
    match declared {
        None => Ok(raw.body.len()),
        Some(v) => {
            let n = grammar::content_length(v).map_err(|r| (400, r.to_string()))?;
            let n = usize::try_from(n).map_err(|_| (400, "Content-Length Out Of Range".into()))?;
            if n > max {
                Err((513, "Message Too Large".into()))
            } else if n > raw.body.len() {
                Err((400, "Content-Length Exceeds Message Body".into()))
            } else {
                Ok(n)
            }
        }
    }
}

/// Checks a request; see the module documentation for the order of the checks.
pub(super) fn request(
    bytes: &[u8],
    raw: &RawMessage<'_>,
    source: Peer,
    config: &ParseConfig,
) -> Parsed {
    let answer = Answer {
        echo: Echo::from_raw(raw, source),
        source,
        is_ack: raw.method_token() == Some("ACK"),
        raw,
    };
    if bytes.len() > config.max_message_bytes {
        return answer.reject(513, "Message Too Large");
    }
    if let Some(problem) = raw.problems.first() {
        return answer.reject(400, problem.reason());
    }
    let line = match grammar::request_line(raw.start_line.unwrap_or_default()) {
        Ok(line) => line,
        Err(LineError::Version) => return answer.reject(505, "Version Not Supported"),
        Err(LineError::Malformed(reason)) => return answer.reject(400, reason),
    };
    match checked_meta(raw, &line, source, answer.echo.clone(), config) {
        Err((status, reason)) => answer.reject(status, reason),
        Ok((meta, body_len)) => {
            if meta.method != "ACK"
                && let Some(refusal) = policy::refusal(raw, &meta, body_len, &config.policy)
            {
                return Parsed::Request(Box::new(InboundRequest {
                    meta,
                    verdict: Verdict::Refuse(refusal),
                }));
            }
            let end = (raw.body_start + body_len).min(bytes.len());
            let framed = bytes.get(raw.start..end).unwrap_or_default();
            match SipMessage::try_from(framed) {
                Ok(SipMessage::Request(mut request)) => {
                    restamp_top_via(&mut request, &meta.echo);
                    // rsipstack drops a UDP body when Content-Length is absent (RFC 3261
                    // §18.3 says it runs to the end of the datagram): ours is authoritative.
                    request.body = raw.body.get(..body_len).unwrap_or_default().to_vec();
                    Parsed::Request(Box::new(InboundRequest {
                        meta,
                        verdict: Verdict::Accept(Box::new(request)),
                    }))
                }
                Ok(SipMessage::Response(_)) => Parsed::Drop("request parsed as a response"),
                Err(error) => {
                    tracing::debug!(%error, "rsipstack rejected a request our checks passed");
                    answer.reject(400, "Unparseable Request")
                }
            }
        }
    }
}

/// Runs the header checks of a request and collects its [`RequestMeta`].
fn checked_meta(
    raw: &RawMessage<'_>,
    line: &grammar::RequestLine<'_>,
    source: Peer,
    echo: Echo,
    config: &ParseConfig,
) -> Result<(RequestMeta, usize), (u16, String)> {
    let bad = |r: String| (400, r);
    if raw.count(Hdr::Via) == 0 {
        return Err(bad("Missing Via Header".into()));
    }
    let to = single(raw, Hdr::To).map_err(bad)?;
    let from = single(raw, Hdr::From).map_err(bad)?;
    let call_id = single(raw, Hdr::CallId).map_err(bad)?;
    let cseq = single(raw, Hdr::CSeq).map_err(bad)?;
    let max_forwards = at_most_one(raw, Hdr::MaxForwards).map_err(bad)?;

    let vias = all_vias(raw).map_err(|_| bad("Malformed Via Header".into()))?;
    let top_via = vias
        .first()
        .cloned()
        .ok_or_else(|| bad("Missing Via Header".into()))?;
    let branch = top_via.branch();
    if branch == Some(MAGIC_COOKIE) {
        // RFC 4475 §3.2.1: we reject rather than fall back to RFC 2543 matching.
        return Err(bad("Missing Transaction Identifier".into()));
    }
    let rfc3261 = branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE));

    let from = grammar::name_addr(from).map_err(|_| bad("Malformed From Header".into()))?;
    let from_tag = from.tag().map(str::to_string);
    if rfc3261 && from_tag.is_none() {
        return Err(bad("Missing From Tag".into()));
    }
    let to = grammar::name_addr(to).map_err(|_| bad("Malformed To Header".into()))?;
    grammar::call_id(call_id).map_err(|r| bad(r.into()))?;
    let (cseq, cseq_method) = grammar::cseq(cseq).map_err(|r| bad(r.into()))?;
    if cseq_method != line.method {
        return Err(bad("CSeq Method Does Not Match Request-Line".into()));
    }
    let max_forwards = match max_forwards {
        Some(v) => Some(grammar::max_forwards(v).map_err(|r| bad(r.into()))?),
        // RFC 2543 did not require Max-Forwards; RFC 3261 clients must send it.
        None if rfc3261 => return Err(bad("Missing Max-Forwards Header".into())),
        None => None,
    };
    let body_len = body_length(raw, config.max_message_bytes)?;
    if let Err(reason) = grammar::uri(line.uri, false) {
        return Err(bad(format!("Malformed Request-URI ({reason})")));
    }
    name_addr_lists(raw).map_err(bad)?;

    Ok((
        RequestMeta {
            method: line.method.to_string(),
            uri: line.uri.to_string(),
            top_via,
            vias,
            call_id: call_id.to_string(),
            from_tag,
            to_tag: to.tag().map(str::to_string),
            cseq,
            max_forwards,
            echo,
            source,
        },
        body_len,
    ))
}

/// Replaces the top Via of the parsed request with the stamped one (received / rport), so
/// that responses the TU builds from it reach the client.
fn restamp_top_via(request: &mut rsipstack::sip::Request, echo: &Echo) {
    let Some(stamped) = echo.vias.first() else {
        return;
    };
    if let Some(rsipstack::sip::Header::Via(via)) = request
        .headers
        .iter_mut()
        .find(|h| matches!(h, rsipstack::sip::Header::Via(_)))
    {
        via.replace(stamped.clone());
    }
}

/// Checks a response. Any failure drops it: responses are never answered.
pub(super) fn response(
    bytes: &[u8],
    raw: &RawMessage<'_>,
    source: Peer,
    config: &ParseConfig,
) -> Parsed {
    if bytes.len() > config.max_message_bytes {
        return Parsed::Drop("response too large");
    }
    if !raw.problems.is_empty() {
        return Parsed::Drop("malformed response framing");
    }
    let Ok(code) = grammar::status_line(raw.start_line.unwrap_or_default()) else {
        return Parsed::Drop("malformed status line");
    };
    let Ok(vias) = all_vias(raw) else {
        return Parsed::Drop("malformed Via in response");
    };
    if vias.len() != 1 {
        // RFC 3261 §8.1.3.3: a UAC discards a response with no or several Via values.
        return Parsed::Drop("response without exactly one Via");
    }
    let fields = (
        single(raw, Hdr::From),
        single(raw, Hdr::To),
        single(raw, Hdr::CallId),
        single(raw, Hdr::CSeq),
    );
    let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) = fields else {
        return Parsed::Drop("response with missing or repeated mandatory headers");
    };
    let (Ok(_), Ok(to), Ok(()), Ok((cseq, cseq_method))) = (
        grammar::name_addr(from),
        grammar::name_addr(to),
        grammar::call_id(call_id),
        grammar::cseq(cseq),
    ) else {
        return Parsed::Drop("malformed mandatory header in response");
    };
    let Ok(body_len) = body_length(raw, config.max_message_bytes) else {
        return Parsed::Drop("bad Content-Length in response");
    };
    let end = (raw.body_start + body_len).min(bytes.len());
    match SipMessage::try_from(bytes.get(raw.start..end).unwrap_or_default()) {
        Ok(SipMessage::Response(mut response)) => Parsed::Response(Box::new(InboundResponse {
            response: {
                response.body = raw.body.get(..body_len).unwrap_or_default().to_vec();
                response
            },
            code,
            branch: vias[0].branch().map(str::to_string),
            cseq,
            cseq_method: cseq_method.to_string(),
            to_tag: to.tag().map(str::to_string),
            source,
        })),
        _ => Parsed::Drop("response rejected by the parser"),
    }
}

/// 513 for a message whose declared body is larger than we read (stream framing).
pub(super) fn too_large(raw: &RawMessage<'_>, source: Peer) -> Parsed {
    if raw.is_response() {
        return Parsed::Drop("response too large");
    }
    let answer = Answer {
        echo: Echo::from_raw(raw, source),
        source,
        is_ack: raw.method_token() == Some("ACK"),
        raw,
    };
    answer.reject(513, "Message Too Large")
}
