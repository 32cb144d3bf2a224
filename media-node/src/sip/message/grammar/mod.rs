//! Strict recognisers for the RFC 3261 §25 productions the core must judge itself:
//! start lines, SIP URIs, name-addr / addr-spec with parameters, Via, CSeq, scalars.
//!
//! They are recognisers, not parsers into a model: they return the few facts the core
//! needs (branch, tags, numbers) and `Err(reason)` with a short text that becomes part of
//! a 400 reason phrase. They work on `&str` byte by byte and never index into the middle
//! of a UTF-8 sequence, so arbitrary input cannot make them panic.

use std::net::{Ipv4Addr, Ipv6Addr};

mod fields;

pub use fields::{
    MAGIC_COOKIE, NameAddr, ViaParm, call_id, content_length, cseq, max_forwards, media_type,
    name_addr, params_from, split_commas, via,
};

/// RFC 3261 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether `s` is a non-empty `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks `%HEX HEX` escapes and that every other byte is in `allowed` or unreserved.
fn escaped_run(s: &str, allowed: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else if is_unreserved(b[i]) || allowed.contains(&b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// A parsed request line (RFC 3261 §7.1: `Method SP Request-URI SP SIP-Version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// The method token, case-sensitive (RFC 3261 §7.1).
    pub method: &'a str,
    /// The Request-URI text.
    pub uri: &'a str,
}

/// Why a start line is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// A well-formed `SIP/x.y` other than 2.0: answered 505.
    Version,
    /// Anything else: answered 400 with this reason.
    Malformed(&'static str),
}

fn version_of(v: &str) -> Result<(), LineError> {
    let Some(rest) = v.strip_prefix("SIP/") else {
        return Err(LineError::Malformed("Malformed SIP Version"));
    };
    let (major, minor) = rest
        .split_once('.')
        .ok_or(LineError::Malformed("Malformed SIP Version"))?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(LineError::Malformed("Malformed SIP Version"));
    }
    if rest == "2.0" {
        Ok(())
    } else {
        Err(LineError::Version)
    }
}

/// Recognises a request line: exactly two single spaces, no other whitespace.
pub fn request_line(line: &str) -> Result<RequestLine<'_>, LineError> {
    let parts: Vec<&str> = line.split(' ').collect();
    if let [method, uri, version] = parts.as_slice() {
        if !is_token(method) {
            return Err(LineError::Malformed("Malformed Method"));
        }
        version_of(version)?;
        if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(LineError::Malformed("Malformed Request-URI"));
        }
        Ok(RequestLine { method, uri })
    } else {
        // A version anywhere at the end still decides 505 vs 400 (RFC 4475 §3.1.2.16).
        if let Some(last) = parts.last().filter(|_| parts.len() > 3)
            && version_of(last) == Err(LineError::Version)
        {
            return Err(LineError::Version);
        }
        Err(LineError::Malformed("Malformed Request-Line"))
    }
}

/// Recognises a status line; returns the code (100..=699). Empty reason allowed.
pub fn status_line(line: &str) -> Result<u16, LineError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    version_of(version)?;
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::Malformed("Malformed Status-Code"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| LineError::Malformed("Malformed Status-Code"))?;
    if !(100..=699).contains(&code) {
        return Err(LineError::Malformed("Status-Code Out Of Range"));
    }
    if let Some(reason) = parts.next()
        && reason.bytes().any(|b| b < b' ' && b != b'\t')
    {
        return Err(LineError::Malformed("Malformed Reason-Phrase"));
    }
    Ok(code)
}

/// The scheme of a URI, lower-cased, if it has a syntactically valid one.
pub fn scheme(uri: &str) -> Option<String> {
    let (scheme, _) = uri.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)))
        .then(|| scheme.to_ascii_lowercase())
}

/// `host` of RFC 3261 §25.1: hostname, IPv4address or `[` IPv6address `]`.
pub fn host(h: &str) -> Result<(), &'static str> {
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("Malformed IPv6 Reference")?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "Malformed IPv6 Reference");
    }
    if h.is_empty() {
        return Err("Empty Host");
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return h
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "Malformed IPv4 Address");
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err("Malformed Host")
    }
}

/// `hostport`: host with an optional `:port` (port fits in 16 bits).
pub fn hostport(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (h, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or("Malformed IPv6 Reference")?;
        let (h, rest) = s.split_at(close + 1);
        if rest.is_empty() {
            (h, None)
        } else {
            (h, Some(rest.strip_prefix(':').ok_or("Malformed Host")?))
        }
    } else if s.matches(':').count() > 1 {
        return Err("IPv6 Address Without Brackets");
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    host(h)?;
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "Port Out Of Range")?)
        }
        Some(_) => return Err("Malformed Port"),
        None => None,
    };
    Ok((h.to_ascii_lowercase(), port))
}

/// A SIP or SIPS URI after the scheme colon (RFC 3261 §19.1.1 / §25.1).
/// `allow_headers` is false for the Request-URI (RFC 4475 §3.1.2.11).
pub fn sip_uri_rest(rest: &str, allow_headers: bool) -> Result<(), &'static str> {
    // A '@' is never allowed unescaped outside userinfo, so the first one ends it; the
    // user part may contain '?' and ';' (RFC 4475 §3.1.1.2), so split it off first.
    let (userinfo, after) = match rest.split_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, rest),
    };
    let (after, headers) = match after.split_once('?') {
        Some((m, h)) => (m, Some(h)),
        None => (after, None),
    };
    if headers.is_some() && !allow_headers {
        return Err("Headers Not Allowed In Request-URI");
    }
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if user.is_empty() || !escaped_run(user, b"&=+$,;?/") {
            return Err("Malformed URI User");
        }
        if password.is_some_and(|p| !escaped_run(p, b"&=+$,")) {
            return Err("Malformed URI Password");
        }
    }
    let (hp, params) = match after.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (after, None),
    };
    hostport(hp)?;
    if let Some(params) = params {
        for param in params.split(';') {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            let paramchars = |s: &str| escaped_run(s, b"[]/:&+$");
            if name.is_empty() || !paramchars(name) || value.is_some_and(|v| !paramchars(v)) {
                return Err("Malformed URI Parameter");
            }
        }
    }
    if let Some(headers) = headers {
        for header in headers.split('&') {
            let (name, value) = header.split_once('=').ok_or("Malformed URI Header")?;
            let hchars = |s: &str| escaped_run(s, b"[]/?:+$");
            if name.is_empty() || !hchars(name) || !hchars(value) {
                return Err("Malformed URI Header");
            }
        }
    }
    Ok(())
}

/// What kind of URI a checked URI is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriKind {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966); only loosely checked.
    Tel,
    /// Any other syntactically valid scheme (lower-cased).
    Other(String),
}

/// Checks any URI: SIP/SIPS strictly, others as an opaque absolute URI without spaces.
pub fn uri(u: &str, allow_headers: bool) -> Result<UriKind, &'static str> {
    let scheme = scheme(u).ok_or("Malformed URI Scheme")?;
    let rest = &u[scheme.len() + 1..];
    if rest.is_empty()
        || rest
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b))
    {
        return Err("Malformed URI");
    }
    match scheme.as_str() {
        "sip" => sip_uri_rest(rest, allow_headers).map(|_| UriKind::Sip),
        "sips" => sip_uri_rest(rest, allow_headers).map(|_| UriKind::Sips),
        "tel" => Ok(UriKind::Tel),
        _ => Ok(UriKind::Other(scheme)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
#[path = "tests.rs"]
mod tests;
