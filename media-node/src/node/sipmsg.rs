//! Small SIP helpers of the B2BUA: numbers from URIs, where a URI points, building the
//! requests and responses it sends.

use std::net::{IpAddr, SocketAddr};

use rsipstack::sip::{
    CSeq, CallId, Contact, ContentType, From, Header, Headers, HeadersExt, MaxForwards, Method,
    Request, Response, To, Version,
};

use crate::sip::dialog::uri_for_request;
use crate::sip::message::{grammar, response_to};
use crate::sip::{Peer, Transport};

/// Normalises a dialled or calling number to E.164: visual separators removed, `00` turned
/// into `+`, a bare digit string taken as already international. `None` for anything that is
/// not a number (`anonymous`, names, empty).
pub fn normalise_number(user: &str) -> Option<String> {
    let user = user.split(';').next().unwrap_or_default().trim();
    let cleaned: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let (plus, digits) = match cleaned.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, cleaned.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
        return None;
    }
    let digits = if !plus {
        digits.strip_prefix("00").unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty() {
        return None;
    }
    Some(format!("+{digits}"))
}

/// The user part of a SIP/SIPS URI or the number of a tel URI, percent-escapes decoded.
pub(super) fn uri_user(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"));
    let rest = rest?;
    let user = if uri.starts_with("tel:") {
        rest.split(';').next()?
    } else {
        rest.split_once('@')?.0.split(':').next()?
    };
    Some(percent_decode(user))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a SIP URI points when its host is an IP literal: `(address, transport)`. Hostnames
/// are not resolved here (the actor must not block on DNS): `None`.
pub(super) fn peer_for_uri(uri: &str) -> Option<Peer> {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split('>').next()?;
    let (secure, rest) = match uri.strip_prefix("sips:") {
        Some(r) => (true, r),
        None => (false, uri.strip_prefix("sip:")?),
    };
    let (hostport_and_params, _) = rest.split_once('?').unwrap_or((rest, ""));
    let after_user = hostport_and_params
        .rsplit_once('@')
        .map_or(hostport_and_params, |(_, h)| h);
    let mut parts = after_user.split(';');
    let hostport = parts.next()?;
    let transport = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("transport"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let (host, port) = grammar::hostport(hostport).ok()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let transport = match transport.as_deref() {
        Some("tcp") | Some("tls") => Transport::Tcp,
        _ if secure => Transport::Tcp,
        _ => Transport::Udp,
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port.unwrap_or(5060)),
    })
}

/// The value of the first header field with this name (any typed or untyped header).
pub(super) fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, v) = text.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The SDP body of a message, if it has one.
pub(super) fn sdp_body(headers: &Headers, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let ct = headers.iter().find_map(|h| match h {
        Header::ContentType(ct) => Some(ct.value().to_ascii_lowercase()),
        _ => None,
    });
    match ct {
        Some(t) if t.starts_with("application/sdp") => {
            Some(String::from_utf8_lossy(body).into_owned())
        }
        _ => None,
    }
}

/// A response from the B2BUA to a request: To tag, our Contact for dialog-creating
/// responses (with the request's Record-Route copied, RFC 3261 §12.1.1), an optional SDP body
/// and extra header fields.
pub(super) fn respond(
    request: &Request,
    code: u16,
    to_tag: Option<&str>,
    contact: Option<&str>,
    sdp: Option<&str>,
    extra: &[(&str, String)],
) -> Response {
    let mut r = response_to(request, code, to_tag);
    r.headers.retain(|h| !matches!(h, Header::ContentLength(_)));
    if let Some(contact) = contact {
        for h in request.headers.iter() {
            if let Header::RecordRoute(rr) = h {
                r.headers.push(Header::RecordRoute(rr.clone()));
            }
        }
        r.headers
            .push(Header::Contact(Contact::new(format!("<{contact}>"))));
    }
    for (name, value) in extra {
        r.headers
            .push(Header::Other((*name).to_owned(), value.clone()));
    }
    if let Some(sdp) = sdp {
        r.headers
            .push(Header::ContentType(ContentType::new("application/sdp")));
        r.body = sdp.as_bytes().to_vec();
    }
    r
}

/// What a new outgoing INVITE needs.
pub(super) struct InviteSpec<'a> {
    pub(super) target: &'a str,
    pub(super) from_user: &'a str,
    pub(super) local_host: &'a str,
    pub(super) from_tag: &'a str,
    pub(super) call_id: &'a str,
    pub(super) contact: &'a str,
    pub(super) max_forwards: u8,
    pub(super) sdp: &'a str,
}

/// The request an outbound call keeps where an inbound call keeps the caller's INVITE: never
/// sent nor answered (an outbound call's state says so), only there so a call has one shape.
pub(super) fn placeholder_request() -> Request {
    Request {
        method: Method::Invite,
        uri: rsipstack::sip::Uri::default(),
        version: Version::V2,
        headers: Headers::default(),
        body: Vec::new(),
    }
}

/// A new INVITE toward an agent or a carrier (the layer adds Via and Content-Length).
pub(super) fn invite(spec: &InviteSpec<'_>) -> Result<Request, crate::sip::dialog::DialogError> {
    let mut headers = Headers::default();
    let from_user = if spec.from_user.is_empty() {
        "anonymous"
    } else {
        spec.from_user
    };
    headers.push(Header::From(From::new(format!(
        "<sip:{from_user}@{}>;tag={}",
        spec.local_host, spec.from_tag
    ))));
    headers.push(Header::To(To::new(format!("<{}>", spec.target))));
    headers.push(Header::CallId(CallId::new(spec.call_id)));
    headers.push(Header::CSeq(CSeq::new("1 INVITE")));
    headers.push(Header::MaxForwards(MaxForwards::new(
        spec.max_forwards.to_string(),
    )));
    headers.push(Header::Contact(Contact::new(format!("<{}>", spec.contact))));
    headers.push(Header::Other(
        "Allow".into(),
        "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO".into(),
    ));
    headers.push(Header::Other("User-Agent".into(), "dialtone".into()));
    headers.push(Header::ContentType(ContentType::new("application/sdp")));
    Ok(Request {
        method: Method::Invite,
        uri: uri_for_request(spec.target)?,
        version: Version::V2,
        headers,
        body: spec.sdp.as_bytes().to_vec(),
    })
}

/// The Max-Forwards of a received request, 70 when absent.
pub(super) fn max_forwards(request: &Request) -> u8 {
    request
        .max_forwards_header()
        .ok()
        .and_then(|m| grammar::max_forwards(m.value()).ok())
        .unwrap_or(70)
}

/// Replaces the Max-Forwards of a request we relay: the received one minus one, so that
/// loops through chains of B2BUAs end (RFC 3261 §16.6 step 3, applied by a B2BUA).
pub(super) fn set_max_forwards(request: &mut Request, value: u8) {
    request
        .headers
        .retain(|h| !matches!(h, Header::MaxForwards(_)));
    request
        .headers
        .push(Header::MaxForwards(MaxForwards::new(value.to_string())));
}

/// The status line text of a response, for events.
pub(super) fn reason(response: &Response) -> String {
    response.status_code.text().to_string()
}

/// The status code of serialised bytes, when they are a response.
pub(super) fn status_of(bytes: &[u8]) -> Option<u16> {
    let head = bytes.get(..12)?;
    let text = std::str::from_utf8(head).ok()?;
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        assert_eq!(
            normalise_number("+380441234567").as_deref(),
            Some("+380441234567")
        );
        assert_eq!(
            normalise_number("00380441234567").as_deref(),
            Some("+380441234567")
        );
        assert_eq!(
            normalise_number("+38 (044) 123-45-67").as_deref(),
            Some("+380441234567")
        );
        assert_eq!(
            normalise_number("380441234567;npdi").as_deref(),
            Some("+380441234567")
        );
        assert_eq!(normalise_number("anonymous"), None);
        assert_eq!(normalise_number(""), None);
    }

    #[test]
    fn users_and_peers_from_uris() {
        assert_eq!(
            uri_user("sip:+380441234567@10.0.0.1;user=phone").as_deref(),
            Some("+380441234567")
        );
        assert_eq!(uri_user("<sip:%2B380@h>").as_deref(), Some("+380"));
        assert_eq!(
            uri_user("tel:+380441234567;phone-context=x").as_deref(),
            Some("+380441234567")
        );
        let p = peer_for_uri("sip:anna@127.0.0.1:5070;transport=TCP").expect("ip");
        assert_eq!(p, Peer::tcp("127.0.0.1:5070".parse().expect("addr")));
        let p = peer_for_uri("<sip:[::1]>").expect("v6");
        assert_eq!(p, Peer::udp("[::1]:5060".parse().expect("addr")));
        assert_eq!(peer_for_uri("sip:anna@pbx.example.com"), None);
    }
}
