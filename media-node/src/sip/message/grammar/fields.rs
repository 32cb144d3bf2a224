//! Recognisers for header field values: parameters, name-addr / addr-spec, Via, CSeq,
//! Max-Forwards, Content-Length, Call-ID, media types.

use super::{hostport, is_token, is_token_byte, uri};

/// Skips spaces and tabs.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
        i += 1;
    }
    i
}

/// Recognises a `quoted-string` starting at `i` (which must be `"`); returns the index
/// just after the closing quote.
fn quoted_string(b: &[u8], mut i: usize) -> Result<usize, &'static str> {
    i += 1;
    loop {
        match b.get(i) {
            None => return Err("Unterminated Quoted String"),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                Some(&c) if c <= 0x7f && c != b'\n' && c != b'\r' => i += 2,
                _ => return Err("Malformed Quoted Pair"),
            },
            Some(&c) if c == b'\t' || c >= b' ' && c != 0x7f => i += 1,
            Some(_) => return Err("Control Character In Quoted String"),
        }
    }
}

/// `*( SEMI generic-param )` from index `i` to the end; returns (name, value) pairs.
pub fn params_from(s: &str, mut i: usize) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        if i >= b.len() {
            return Ok(out);
        }
        if b[i] != b';' {
            return Err("Malformed Parameters");
        }
        i = skip_ws(b, i + 1);
        let name_start = i;
        while b.get(i).is_some_and(|c| is_token_byte(*c)) {
            i += 1;
        }
        if i == name_start {
            return Err("Empty Parameter");
        }
        let name = s[name_start..i].to_ascii_lowercase();
        let after_name = skip_ws(b, i);
        let value = if b.get(after_name) == Some(&b'=') {
            i = skip_ws(b, after_name + 1);
            let value_start = i;
            if b.get(i) == Some(&b'"') {
                i = quoted_string(b, i)?;
            } else {
                while b
                    .get(i)
                    .is_some_and(|c| is_token_byte(*c) || b"[]:".contains(c))
                {
                    i += 1;
                }
            }
            if i == value_start {
                return Err("Empty Parameter Value");
            }
            Some(s[value_start..i].to_string())
        } else {
            i = after_name;
            None
        };
        out.push((name, value));
    }
}

/// A recognised `name-addr` or `addr-spec` with its header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI text (without the angle brackets).
    pub uri: String,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// Header parameters, names lower-cased.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// The value of a parameter (`None` if absent, `Some(None)` for a bare name).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The `tag` parameter value.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// Recognises `( name-addr / addr-spec ) *( SEMI generic-param )` (From, To, Contact,
/// Route, Record-Route entries; RFC 3261 §20.10 rules on `<>`).
pub fn name_addr(value: &str) -> Result<NameAddr, &'static str> {
    let b = value.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) == Some(&b'"') {
        i = quoted_string(b, i)?;
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'<') {
            return Err("Expected '<' After Display Name");
        }
    } else if let Some(lt) = value.find('<') {
        // Unquoted display name: *(token LWS) before '<' (RFC 4475 §3.1.2.15).
        let display = &value[i..lt];
        if !display
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .all(is_token)
        {
            return Err("Malformed Display Name");
        }
        i = lt;
    } else {
        // addr-spec form: the URI ends at the first ';' or whitespace and may then not
        // contain ',', '?' or ';' (RFC 3261 §20.10; RFC 4475 §3.1.2.13).
        let end = value[i..]
            .find([';', ' ', '\t'])
            .map_or(value.len(), |p| p + i);
        let uri_text = &value[i..end];
        if uri_text.contains([',', '?']) {
            return Err("URI With ',' Or '?' Must Be In <>");
        }
        uri(uri_text, false)?;
        let params = params_from(value, end)?;
        return Ok(NameAddr {
            uri: uri_text.to_string(),
            bracketed: false,
            params,
        });
    }
    // At '<': the addr-spec runs to '>' with no whitespace (RFC 4475 §3.1.2.14).
    let open = i + 1;
    let close = value[open..]
        .find('>')
        .map(|p| p + open)
        .ok_or("Missing '>'")?;
    let uri_text = &value[open..close];
    if uri_text.is_empty() || uri_text.contains([' ', '\t']) {
        return Err("Whitespace In addr-spec");
    }
    uri(uri_text, true)?;
    let params = params_from(value, close + 1)?;
    Ok(NameAddr {
        uri: uri_text.to_string(),
        bracketed: true,
        params,
    })
}

/// Splits a header value at top-level commas (outside quotes and `<>`).
pub fn split_commas(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut angle, mut quoted) = (0, 0, false, false);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(
        value
            .get(start..)
            .unwrap_or_default()
            .trim_matches([' ', '\t']),
    );
    out
}

/// One recognised `via-parm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaParm {
    /// Transport token, upper-cased (`UDP`, `TCP`, `SCTP`, or an extension).
    pub transport: String,
    /// sent-by host, lower-cased (IPv6 keeps its brackets).
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Parameters, names lower-cased.
    pub params: Vec<(String, Option<String>)>,
}

impl ViaParm {
    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == "branch")
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether an `rport` parameter is present (RFC 3581).
    pub fn has_rport(&self) -> bool {
        self.params.iter().any(|(n, _)| n == "rport")
    }

    /// `host[:port]` as used for transaction matching (RFC 3261 §17.2.3 sent-by).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The RFC 3261 magic cookie that marks a branch as globally unique.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Recognises a Via header value (one or more comma-separated via-parms).
pub fn via(value: &str) -> Result<Vec<ViaParm>, &'static str> {
    split_commas(value).into_iter().map(via_parm).collect()
}

fn via_parm(s: &str) -> Result<ViaParm, &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut fields = Vec::with_capacity(3);
    for n in 0..3 {
        i = skip_ws(b, i);
        let start = i;
        while b.get(i).is_some_and(|c| is_token_byte(*c)) {
            i += 1;
        }
        if i == start {
            return Err("Malformed Via Protocol");
        }
        fields.push(&s[start..i]);
        if n < 2 {
            i = skip_ws(b, i);
            if b.get(i) != Some(&b'/') {
                return Err("Malformed Via Protocol");
            }
            i += 1;
        }
    }
    if !fields[0].eq_ignore_ascii_case("SIP") {
        return Err("Malformed Via Protocol");
    }
    let after = skip_ws(b, i);
    if after == i {
        return Err("Malformed Via");
    }
    let end = s[after..].find(';').map_or(s.len(), |p| p + after);
    // sent-by = host [ COLON port ] where COLON = SWS ":" SWS: whitespace may only
    // surround the colon.
    let written = s[after..end].trim_matches([' ', '\t']);
    let sent_by = if written.contains([' ', '\t']) {
        let (h, p) = written.rsplit_once(':').ok_or("Malformed Via sent-by")?;
        format!(
            "{}:{}",
            h.trim_end_matches([' ', '\t']),
            p.trim_start_matches([' ', '\t'])
        )
    } else {
        written.to_string()
    };
    if sent_by.contains([' ', '\t']) {
        return Err("Malformed Via sent-by");
    }
    let (host, port) = hostport(&sent_by).map_err(|_| "Malformed Via sent-by")?;
    let params = params_from(s, end).map_err(|_| "Malformed Via Parameters")?;
    if let Some((_, value)) = params.iter().find(|(n, _)| n == "branch") {
        let ok = value
            .as_deref()
            .is_some_and(|v| v.bytes().all(is_token_byte));
        if !ok {
            return Err("Malformed Via Branch");
        }
    }
    Ok(ViaParm {
        transport: fields[2].to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// Recognises `CSeq: 1*DIGIT LWS Method`; the number must be below 2^31 (RFC 3261 §8.1.1.5).
pub fn cseq(value: &str) -> Result<(u32, &str), &'static str> {
    let (number, method) = value.split_once([' ', '\t']).ok_or("Malformed CSeq")?;
    let method = method.trim_matches([' ', '\t']);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return Err("Malformed CSeq");
    }
    let digits = number.trim_start_matches('0');
    if digits.len() > 10 {
        return Err("CSeq Number Out Of Range");
    }
    match digits.parse::<u64>().unwrap_or(0) {
        n if n <= i32::MAX as u64 => Ok((n as u32, method)),
        _ => Err("CSeq Number Out Of Range"),
    }
}

/// Recognises `Max-Forwards: 1*DIGIT` with a value of at most 255.
pub fn max_forwards(value: &str) -> Result<u8, &'static str> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Malformed Max-Forwards");
    }
    let digits = value.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() > 3 {
        return Err("Max-Forwards Out Of Range");
    }
    digits
        .parse::<u16>()
        .ok()
        .and_then(|n| u8::try_from(n).ok())
        .ok_or("Max-Forwards Out Of Range")
}

/// Recognises `Content-Length: 1*DIGIT`, rejecting signs and values beyond 2^32 - 1.
pub fn content_length(value: &str) -> Result<u64, &'static str> {
    if value.starts_with('-') {
        return Err("Negative Content-Length");
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Malformed Content-Length");
    }
    let digits = value.trim_start_matches('0');
    if digits.len() > 10 {
        return Err("Content-Length Out Of Range");
    }
    match digits.parse::<u64>().unwrap_or(0) {
        n if n <= u32::MAX as u64 => Ok(n),
        _ => Err("Content-Length Out Of Range"),
    }
}

/// Recognises `callid = word [ "@" word ]` (RFC 3261 §25.1).
pub fn call_id(value: &str) -> Result<(), &'static str> {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| is_token_byte(b) || b"()<>:\\\"/[]?{}".contains(&b))
    };
    let ok = match value.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(value),
    };
    if ok { Ok(()) } else { Err("Malformed Call-ID") }
}

/// The lower-cased `type/subtype` of a Content-Type value, ignoring parameters.
pub fn media_type(value: &str) -> Option<String> {
    let main = value.split(';').next()?.trim_matches([' ', '\t']);
    let (t, s) = main.split_once('/')?;
    let (t, s) = (t.trim_matches([' ', '\t']), s.trim_matches([' ', '\t']));
    (is_token(t) && is_token(s)).then(|| format!("{t}/{s}").to_ascii_lowercase())
}
