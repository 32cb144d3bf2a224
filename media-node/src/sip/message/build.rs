//! Building responses.
//!
//! Responses the core generates itself (errors, 100 Trying, 487, 200 to CANCEL) are
//! written as bytes from the *raw* header values of the request ([`Echo`]) rather than
//! through `rsipstack` types, for two reasons: a request that `rsipstack` cannot parse
//! still deserves an answer, and `rsipstack::sip::Response` always serialises the standard
//! reason phrase, while our 400s name the offending header in theirs.

use std::hash::{DefaultHasher, Hash, Hasher};

use rsipstack::sip::{Header, Request, Response, StatusCode, Version};

use super::grammar;
use super::raw::{Hdr, RawMessage};
use crate::sip::Peer;

/// The request header values a response must copy (RFC 3261 §8.2.6.2), with the top Via
/// already carrying `received` / `rport` (RFC 3261 §18.2.1, RFC 3581).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echo {
    /// Every Via field value, in order.
    pub vias: Vec<String>,
    /// From value.
    pub from: Option<String>,
    /// To value.
    pub to: Option<String>,
    /// Call-ID value.
    pub call_id: Option<String>,
    /// CSeq value.
    pub cseq: Option<String>,
}

impl Echo {
    /// Collects the values from a scanned request received from `source`.
    pub fn from_raw(raw: &RawMessage<'_>, source: Peer) -> Self {
        let mut vias: Vec<String> = raw.all(Hdr::Via).map(str::to_string).collect();
        if let Some(top) = vias.first_mut() {
            *top = stamp_top_via(top, source);
        }
        Echo {
            vias,
            from: raw.first(Hdr::From).map(str::to_string),
            to: raw.first(Hdr::To).map(str::to_string),
            call_id: raw.first(Hdr::CallId).map(str::to_string),
            cseq: raw.first(Hdr::CSeq).map(str::to_string),
        }
    }

    /// A To tag that is the same for every retransmission of the same request, so that
    /// stateless answers stay consistent (RFC 3261 §8.2.7) without keeping state.
    pub fn stable_tag(&self) -> String {
        let mut h = DefaultHasher::new();
        self.vias.first().hash(&mut h);
        self.from.hash(&mut h);
        self.call_id.hash(&mut h);
        self.cseq.hash(&mut h);
        format!("dt{:016x}", h.finish())
    }
}

/// Adds `received` (when the sent-by host is not the source address, or `rport` asks for
/// it) and fills a bare `rport` with the source port, so responses reach NATed clients.
pub fn stamp_top_via(value: &str, source: Peer) -> String {
    let entries = grammar::split_commas(value);
    let Some(first) = entries.first() else {
        return value.to_string();
    };
    let Ok(parsed) = grammar::via(first) else {
        return value.to_string();
    };
    let Some(parm) = parsed.first() else {
        return value.to_string();
    };
    let ip = source.addr.ip();
    let ip_text = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let host_is_source = parm.host == ip_text || parm.host == ip.to_string();
    if host_is_source && !parm.has_rport() {
        return value.to_string();
    }
    let head = first.split(';').next().unwrap_or(first).trim_end();
    let mut out = head.to_string();
    for (name, v) in &parm.params {
        match (name.as_str(), v) {
            ("received", _) => {}
            ("rport", _) => out.push_str(&format!(";rport={}", source.addr.port())),
            (n, Some(v)) => out.push_str(&format!(";{n}={v}")),
            (n, None) => out.push_str(&format!(";{n}")),
        }
    }
    out.push_str(&format!(";received={ip_text}"));
    for rest in entries.iter().skip(1) {
        out.push_str(", ");
        out.push_str(rest);
    }
    out
}

/// The standard reason phrase of a status code (RFC 3261 §21 and extensions we use).
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Appends `;tag=` to a To value that has none (never for 100 Trying: RFC 3261 §8.2.6.2).
fn to_with_tag(to: &str, tag: Option<&str>) -> String {
    let has_tag = grammar::name_addr(to).is_ok_and(|n| n.tag().is_some());
    match tag {
        Some(tag) if !has_tag => format!("{to};tag={tag}"),
        _ => to.to_string(),
    }
}

/// Writes a response from echoed request values.
pub fn response_bytes(
    echo: &Echo,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in &echo.vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    if let Some(from) = &echo.from {
        out.push_str(&format!("From: {from}\r\n"));
    }
    if let Some(to) = &echo.to {
        let tag = if code == 100 { None } else { to_tag };
        out.push_str(&format!("To: {}\r\n", to_with_tag(to, tag)));
    }
    if let Some(call_id) = &echo.call_id {
        out.push_str(&format!("Call-ID: {call_id}\r\n"));
    }
    if let Some(cseq) = &echo.cseq {
        out.push_str(&format!("CSeq: {cseq}\r\n"));
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Server: dialtone\r\nContent-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// A status code carrying `reason` on the wire. `rsipstack` writes only the standard phrase
/// for codes it knows, so a custom phrase needs the `Other` form.
pub fn status(code: u16, reason: Option<&str>) -> StatusCode {
    let standard = StatusCode::from(code);
    match (reason, standard) {
        (Some(r), standard) if !r.eq_ignore_ascii_case(standard.text()) => {
            StatusCode::Other(code, r.to_string())
        }
        (_, StatusCode::Other(c, _)) => StatusCode::Other(c, default_reason(c).to_string()),
        (_, standard) => standard,
    }
}

/// Builds a response to a parsed request for the TU (RFC 3261 §8.2.6): Via, From, To (with
/// `to_tag` added if the request had none and the code is not 100), Call-ID, CSeq copied.
pub fn response_to(request: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers = rsipstack::sip::Headers::default();
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => {
                let tag = if code == 100 { None } else { to_tag };
                headers.push(Header::To(rsipstack::sip::To::new(to_with_tag(
                    to.value(),
                    tag,
                ))))
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsipstack::sip::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status(code, None),
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;
    use crate::sip::message::raw::scan;

    fn peer(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    #[test]
    fn stamps_received_and_rport() {
        let v = stamp_top_via(
            "SIP/2.0/UDP host.example;branch=z9hG4bKa;rport",
            peer("192.0.2.9:4000"),
        );
        assert_eq!(
            v,
            "SIP/2.0/UDP host.example;branch=z9hG4bKa;rport=4000;received=192.0.2.9"
        );
        let same = "SIP/2.0/UDP 192.0.2.9:4000;branch=z9hG4bKa";
        assert_eq!(stamp_top_via(same, peer("192.0.2.9:4000")), same);
        let v6 = stamp_top_via(
            "SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/UDP g",
            peer("[2001:db8::1]:5060"),
        );
        assert_eq!(
            v6,
            "SIP/2.0/UDP h;branch=z9hG4bKa;received=[2001:db8::1], SIP/2.0/UDP g"
        );
        assert_eq!(stamp_top_via("garbage", peer("192.0.2.9:1")), "garbage");
    }

    #[test]
    fn writes_an_error_response_with_a_named_reason() {
        let raw = scan(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 BYE\r\n\r\n", 32);
        let echo = Echo::from_raw(&raw, peer("192.0.2.1:5060"));
        let tag = echo.stable_tag();
        assert_eq!(tag, echo.clone().stable_tag());
        let bytes = response_bytes(&echo, 400, "Missing Call-ID Header", Some(&tag), &[]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Missing Call-ID Header\r\n"));
        assert!(text.contains(&format!("To: <sip:a@b>;tag={tag}\r\n")));
        assert!(!text.contains("Call-ID:"));
    }

    #[test]
    fn custom_reason_survives_rsipstack_serialisation() {
        let mut r = Response {
            status_code: status(400, Some("Missing To Header")),
            ..Default::default()
        };
        assert!(
            r.to_bytes()
                .starts_with(b"SIP/2.0 400 Missing To Header\r\n")
        );
        r.status_code = status(486, None);
        assert!(r.to_bytes().starts_with(b"SIP/2.0 486 Busy Here\r\n"));
    }
}
