//! Reading the header fields of a REGISTER that the registrar needs: Contact (with its
//! `expires` and `+sip.instance` parameters, or `*`), Expires, To, Call-ID, CSeq and
//! Authorization. The edge hands over raw header values (as received, compact forms
//! included) so the registrar does not depend on how a parser models them.

use std::net::SocketAddr;

use super::RegisterRequest;

/// The Contact header fields of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Contacts {
    /// No Contact: a query for the current bindings.
    #[default]
    None,
    /// `Contact: *`: remove every binding (valid only with `Expires: 0`).
    Star,
    /// Contacts to add, refresh or remove.
    List(Vec<ContactSpec>),
}

/// One contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The URI (without angle brackets or header parameters).
    pub uri: String,
    /// The `expires` header parameter.
    pub expires: Option<u32>,
    /// The `+sip.instance` parameter (RFC 5626), unquoted, if any.
    pub instance_id: Option<String>,
}

/// Why header fields could not be read: the answer is 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A header is malformed.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// A mandatory header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
}

impl RegisterRequest {
    /// Builds a request from the Request-URI (as on the wire: it is compared with the
    /// digest `uri`) and the header fields as `(name, value)` pairs in message order.
    /// Header names are case-insensitive and compact forms (`m`, `t`, `i`) are understood.
    pub fn from_headers<'a>(
        request_uri: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        source: SocketAddr,
    ) -> Result<RegisterRequest, HeaderError> {
        let mut to = None;
        let mut call_id = None;
        let mut cseq = None;
        let mut expires = None;
        let mut authorization = None;
        let mut user_agent = None;
        let mut contacts = Contacts::None;
        for (name, value) in headers {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "to" | "t" => to = Some(name_addr_uri(value).ok_or(HeaderError::Malformed("To"))?),
                "call-id" | "i" => call_id = Some(value.to_owned()),
                "cseq" => {
                    let number = value.split_whitespace().next().unwrap_or_default();
                    cseq = Some(number.parse().map_err(|_| HeaderError::Malformed("CSeq"))?);
                }
                "expires" => {
                    expires = Some(parse_delta(value).ok_or(HeaderError::Malformed("Expires"))?)
                }
                "authorization" => authorization = Some(value.to_owned()),
                "user-agent" => user_agent = Some(value.to_owned()),
                "contact" | "m" => contacts = merge(contacts, value)?,
                _ => {}
            }
        }
        Ok(RegisterRequest {
            request_uri: request_uri.trim().to_owned(),
            to_uri: to.ok_or(HeaderError::Missing("To"))?,
            call_id: call_id.ok_or(HeaderError::Missing("Call-ID"))?,
            cseq: cseq.ok_or(HeaderError::Missing("CSeq"))?,
            contacts,
            expires,
            authorization,
            user_agent,
            source,
        })
    }
}

/// Adds one Contact header field's entries to what earlier ones gave.
fn merge(so_far: Contacts, value: &str) -> Result<Contacts, HeaderError> {
    let bad = HeaderError::Malformed("Contact");
    if value == "*" {
        return match so_far {
            Contacts::None => Ok(Contacts::Star),
            // `*` together with anything else is not allowed (RFC 3261 §10.3 step 6).
            _ => Err(bad),
        };
    }
    let mut list = match so_far {
        Contacts::None => Vec::new(),
        Contacts::List(list) => list,
        Contacts::Star => return Err(bad),
    };
    for entry in split_outside_quotes(value, ',') {
        list.push(parse_contact(entry.trim()).ok_or(HeaderError::Malformed("Contact"))?);
    }
    Ok(Contacts::List(list))
}

/// One `name-addr` or `addr-spec` with header parameters.
fn parse_contact(entry: &str) -> Option<ContactSpec> {
    let (uri, params) = if let Some(open) = find_outside_quotes(entry, '<') {
        let close = open + entry[open..].find('>')?;
        (&entry[open + 1..close], &entry[close + 1..])
    } else {
        // Without angle brackets, parameters belong to the header, not the URI
        // (RFC 3261 §20.10).
        match entry.find(';') {
            Some(i) => (&entry[..i], &entry[i..]),
            None => (entry, ""),
        }
    };
    let uri = uri.trim();
    if !is_sip_uri(uri) || uri.contains(char::is_whitespace) {
        return None;
    }
    let mut spec = ContactSpec {
        uri: uri.to_owned(),
        expires: None,
        instance_id: None,
    };
    for param in split_outside_quotes(params, ';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (param.trim(), ""),
        };
        if name.eq_ignore_ascii_case("expires") {
            spec.expires = Some(parse_delta(value)?);
        } else if name.eq_ignore_ascii_case("+sip.instance") {
            spec.instance_id = Some(value.trim_matches('"').to_owned());
        }
    }
    Some(spec)
}

/// A delta-seconds value; larger than 2^32-1 is read as 2^32-1 (RFC 3261 §20.19 allows
/// clamping, and the registrar clamps to its maximum anyway).
fn parse_delta(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        value
            .parse::<u64>()
            .map_or(u32::MAX, |v| v.min(u64::from(u32::MAX)) as u32),
    )
}

/// The URI of a To / From value (`"Name" <sip:u@h>;tag=x` or `sip:u@h;tag=x`).
fn name_addr_uri(value: &str) -> Option<String> {
    let uri = match find_outside_quotes(value, '<') {
        Some(open) => {
            let close = open + value[open..].find('>')?;
            &value[open + 1..close]
        }
        None => value.split(';').next().unwrap_or_default(),
    };
    let uri = uri.trim();
    is_sip_uri(uri).then(|| uri.to_owned())
}

fn is_sip_uri(uri: &str) -> bool {
    scheme_rest(uri).is_some_and(|rest| !rest.is_empty())
}

/// What follows `sip:` / `sips:` (scheme case-insensitive), or `None` for other schemes.
fn scheme_rest(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")).then_some(rest)
}

/// The user part of a SIP URI (`sip:user@host`, `sip:user:password@host`), compared byte
/// for byte with agent names, usernames and extensions.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = scheme_rest(uri)?;
    let (userinfo, _host) = rest.split_once('@')?;
    let user = userinfo.split(':').next().unwrap_or_default();
    (!user.is_empty()).then_some(user)
}

fn find_outside_quotes(s: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits on `sep` outside quoted strings and angle brackets.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            c if c == sep && !quoted && !angle => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 5060))
    }

    #[test]
    fn reads_contacts_in_every_form() {
        let r = RegisterRequest::from_headers(
            "sip:dialtone.example",
            [
                ("t", "\"Anna, Sales\" <sip:anna@dialtone.example>"),
                ("i", "a84b4c76e66710"),
                ("CSeq", "3 REGISTER"),
                (
                    "Contact",
                    "\"A, <B>\" <sip:anna@192.0.2.1:5060;transport=udp>;expires=120;+sip.instance=\"<urn:uuid:1>\", sip:anna@198.51.100.4;expires=0",
                ),
                ("m", "<sips:anna@[2001:db8::1]>"),
                ("Expires", "3600"),
            ],
            src(),
        )
        .expect("reads");
        assert_eq!(r.to_uri, "sip:anna@dialtone.example");
        assert_eq!(r.cseq, 3);
        assert_eq!(r.expires, Some(3600));
        let Contacts::List(list) = &r.contacts else {
            panic!("a list: {:?}", r.contacts)
        };
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].uri, "sip:anna@192.0.2.1:5060;transport=udp");
        assert_eq!(list[0].expires, Some(120));
        assert_eq!(list[0].instance_id.as_deref(), Some("<urn:uuid:1>"));
        assert_eq!(list[1].uri, "sip:anna@198.51.100.4");
        assert_eq!(list[1].expires, Some(0));
        assert_eq!(list[2].uri, "sips:anna@[2001:db8::1]");
        assert_eq!(uri_user(&r.to_uri), Some("anna"));
    }

    #[test]
    fn star_and_malformed_contacts() {
        let base = [
            ("To", "<sip:anna@x>"),
            ("Call-ID", "c"),
            ("CSeq", "1 REGISTER"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            RegisterRequest::from_headers("sip:x", base.iter().chain(extra.iter()).copied(), src())
        };
        assert_eq!(
            with(&[("Contact", "*")]).expect("star").contacts,
            Contacts::Star
        );
        assert!(with(&[("Contact", "*"), ("Contact", "<sip:a@b>")]).is_err());
        assert!(with(&[("Contact", "<sip:a@b>;expires=soon")]).is_err());
        assert!(with(&[("Contact", "<http://a@b>")]).is_err());
        assert!(with(&[("Expires", "-1")]).is_err());
        assert_eq!(
            with(&[("Expires", "99999999999")])
                .expect("clamped")
                .expires,
            Some(u32::MAX)
        );
        assert!(RegisterRequest::from_headers("sip:x", [("To", "<sip:a@x>")], src()).is_err());
    }
}
