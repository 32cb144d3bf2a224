//! What this node supports, and the refusals of well-formed requests it does not
//! (RFC 3261 §8.2.1-3, §16.3 steps 2 and 4 as applied by a B2BUA).

use super::checks::KNOWN_METHODS;
use super::grammar::{self, UriKind};
use super::raw::{Hdr, RawMessage};
use super::{Refusal, RequestMeta};

/// Local capabilities. The defaults describe the Dialtone B2BUA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Methods accepted (the Allow header of 405/501). Others get 405 if they are
    /// registered methods, 501 if not (RFC 3261 §8.2.1).
    pub allow: Vec<String>,
    /// Option-tags understood in Require (RFC 3261 §8.2.2.3); others get 420.
    pub supported: Vec<String>,
    /// Body media types accepted on INVITE and UPDATE (RFC 3261 §8.2.3); others get 415.
    pub accept: Vec<String>,
    /// Request-URI schemes served; others get 416 (RFC 3261 §8.2.2.1).
    pub uri_schemes: Vec<String>,
    /// The branch prefix of our own Vias. A request that carries one has come back to us:
    /// 482 Loop Detected. Set by the transaction layer.
    pub own_branch_prefix: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Policy {
            allow: strings(&[
                "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "UPDATE", "INFO",
            ]),
            supported: Vec::new(),
            // multipart/mixed: SIP-I carriers wrap SDP with ISUP; the B2BUA takes the SDP part.
            accept: strings(&["application/sdp", "multipart/mixed"]),
            uri_schemes: strings(&["sip", "sips", "tel"]),
            own_branch_prefix: None,
        }
    }
}

/// Methods answered here rather than relayed to another leg, so a Max-Forwards of 0 does
/// not stop them. A B2BUA is a UAS, but it re-originates INVITE, BYE, UPDATE, INFO… on
/// the other leg with Max-Forwards decremented from this one (that is what stops loops
/// through chains of B2BUAs); with 0 left there is nothing to relay with, so those get 483
/// as a proxy would (RFC 3261 §16.3 step 2). OPTIONS is answered by us (RFC 4475 §3.3.11),
/// REGISTER ends at our registrar, CANCEL at our server transaction, ACK is never answered.
const TERMINATED_HERE: [&str; 4] = ["OPTIONS", "REGISTER", "CANCEL", "ACK"];

fn refuse(status: u16, reason: &str, headers: Vec<(&'static str, String)>) -> Option<Refusal> {
    Some(Refusal {
        status,
        reason: reason.to_string(),
        headers,
    })
}

/// The refusal of a well-formed request, if any; `None` means the TU gets it.
/// Order: loop, hops, method, URI scheme, Require, body.
pub(super) fn refusal(
    raw: &RawMessage<'_>,
    meta: &RequestMeta,
    body_len: usize,
    policy: &Policy,
) -> Option<Refusal> {
    if let Some(prefix) = &policy.own_branch_prefix
        && meta
            .vias
            .iter()
            .any(|v| v.branch().is_some_and(|b| b.starts_with(prefix.as_str())))
    {
        return refuse(482, "Loop Detected", vec![]);
    }
    if meta.max_forwards == Some(0) && !TERMINATED_HERE.contains(&meta.method.as_str()) {
        return refuse(483, "Too Many Hops", vec![]);
    }
    if !policy.allow.contains(&meta.method) {
        let allow = vec![("Allow", policy.allow.join(", "))];
        return if KNOWN_METHODS.contains(&meta.method.as_str()) {
            refuse(405, "Method Not Allowed", allow)
        } else {
            refuse(501, "Not Implemented", allow)
        };
    }
    let scheme = match grammar::uri(&meta.uri, false) {
        Ok(UriKind::Sip) => "sip".to_string(),
        Ok(UriKind::Sips) => "sips".to_string(),
        Ok(UriKind::Tel) => "tel".to_string(),
        Ok(UriKind::Other(s)) => s,
        Err(_) => String::new(),
    };
    if !policy.uri_schemes.contains(&scheme) {
        return refuse(416, "Unsupported URI Scheme", vec![]);
    }
    if meta.method != "CANCEL" {
        let unsupported: Vec<&str> = raw
            .all(Hdr::Require)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim_matches([' ', '\t']))
            .filter(|t| !t.is_empty())
            .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return refuse(
                420,
                "Bad Extension",
                vec![("Unsupported", unsupported.join(", "))],
            );
        }
    }
    if (meta.method == "INVITE" || meta.method == "UPDATE") && body_len > 0 {
        let accept = || ("Accept", policy.accept.join(", "));
        if let Some(encoding) = raw.first(Hdr::ContentEncoding) {
            let identity = encoding
                .split(',')
                .all(|e| e.trim_matches([' ', '\t']).eq_ignore_ascii_case("identity"));
            if !identity {
                return refuse(
                    415,
                    "Unsupported Media Type",
                    vec![accept(), ("Accept-Encoding", "identity".into())],
                );
            }
        }
        match raw.first(Hdr::ContentType).and_then(grammar::media_type) {
            Some(t) if policy.accept.contains(&t) => {}
            Some(_) => return refuse(415, "Unsupported Media Type", vec![accept()]),
            None => return refuse(400, "Missing Or Malformed Content-Type Header", vec![]),
        }
    }
    None
}
