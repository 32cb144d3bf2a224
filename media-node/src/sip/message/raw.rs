//! A minimal, infallible reading of a SIP message: start line, header fields (unfolded)
//! and body, with every framing problem recorded rather than fatal.
//!
//! Why our own scanner beside `rsipstack`: its parser silently drops header lines without
//! a colon, stops reading headers at the first line that is not UTF-8, lets the last of
//! several Content-Length values win and turns a negative one into 0. To answer a bad
//! message correctly we need the raw facts (how many Call-ID fields, exactly what the
//! request line says), and to answer *at all* we need Via / From / To / Call-ID / CSeq even
//! when the rest is garbage. This reading never fails: problems are listed and the checks
//! decide what they mean.

/// Header fields the core inspects, recognised by long or compact name (RFC 3261 §7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hdr {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Max-Forwards`
    MaxForwards,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Content-Encoding` / `e`
    ContentEncoding,
    /// `Require`
    Require,
    /// `Contact` / `m`
    Contact,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
}

impl Hdr {
    /// The long (canonical) name, used in reason phrases and generated messages.
    pub fn name(self) -> &'static str {
        match self {
            Hdr::Via => "Via",
            Hdr::From => "From",
            Hdr::To => "To",
            Hdr::CallId => "Call-ID",
            Hdr::CSeq => "CSeq",
            Hdr::MaxForwards => "Max-Forwards",
            Hdr::ContentLength => "Content-Length",
            Hdr::ContentType => "Content-Type",
            Hdr::ContentEncoding => "Content-Encoding",
            Hdr::Require => "Require",
            Hdr::Contact => "Contact",
            Hdr::Route => "Route",
            Hdr::RecordRoute => "Record-Route",
        }
    }

    fn compact(self) -> Option<&'static str> {
        match self {
            Hdr::Via => Some("v"),
            Hdr::From => Some("f"),
            Hdr::To => Some("t"),
            Hdr::CallId => Some("i"),
            Hdr::ContentLength => Some("l"),
            Hdr::ContentType => Some("c"),
            Hdr::ContentEncoding => Some("e"),
            Hdr::Contact => Some("m"),
            _ => None,
        }
    }

    /// Whether a header field name (as written on the wire) denotes this header.
    pub fn matches(self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.name())
            || self.compact().is_some_and(|c| name.eq_ignore_ascii_case(c))
    }
}

/// One header field line, unfolded: continuation lines are joined with a single space.
#[derive(Debug, Clone)]
pub struct RawHeader {
    /// The field name as written (without the surrounding whitespace).
    pub name: String,
    /// The value with leading and trailing whitespace removed.
    pub value: String,
}

/// A framing or lexical problem found while scanning. The first one decides the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanProblem {
    /// No empty line ends the header section.
    NoEndOfHeaders,
    /// A header line (1-based line number) is not UTF-8.
    NotUtf8(usize),
    /// A CR or LF appears alone inside a line.
    BareLineBreak(usize),
    /// A header line has no colon.
    NoColon(usize),
    /// A header field name is empty or not a token.
    BadFieldName(usize),
    /// A continuation line appears before any header field.
    OrphanContinuation(usize),
    /// More header fields than the configured limit.
    TooManyHeaders,
}

impl ScanProblem {
    /// Reason phrase for a 400 caused by this problem.
    pub fn reason(&self) -> &'static str {
        match self {
            ScanProblem::NoEndOfHeaders => "Missing Empty Line After Headers",
            ScanProblem::NotUtf8(_) => "Header Field Is Not UTF-8",
            ScanProblem::BareLineBreak(_) => "Bare CR Or LF In Header",
            ScanProblem::NoColon(_) => "Malformed Header Line",
            ScanProblem::BadFieldName(_) => "Malformed Header Field Name",
            ScanProblem::OrphanContinuation(_) => "Malformed Header Folding",
            ScanProblem::TooManyHeaders => "Too Many Header Fields",
        }
    }
}

/// The scanned message. `start_line` is `None` when the first line is not UTF-8.
#[derive(Debug, Clone)]
pub struct RawMessage<'a> {
    /// The start line (request line or status line), without CRLF.
    pub start_line: Option<&'a str>,
    /// Header fields in order.
    pub headers: Vec<RawHeader>,
    /// Offset of the first byte after the leading CRLFs that were skipped.
    pub start: usize,
    /// Offset of the body (just after the empty line), or the input length.
    pub body_start: usize,
    /// Everything after the empty line (may be longer or shorter than Content-Length).
    pub body: &'a [u8],
    /// Problems found, in order of appearance.
    pub problems: Vec<ScanProblem>,
}

/// Position of the first `\r\n\r\n` at or after `from`.
pub fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + from)
}

/// Number of leading CRLF pairs (RFC 3261 §7.5: ignored before a start line).
pub fn leading_crlfs(bytes: &[u8]) -> usize {
    let mut i = 0;
    while bytes.get(i..i + 2) == Some(b"\r\n") {
        i += 2;
    }
    i
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Scans `bytes`. Never fails and never panics; `max_headers` bounds the work.
pub fn scan(bytes: &[u8], max_headers: usize) -> RawMessage<'_> {
    let start = leading_crlfs(bytes);
    let mut problems = Vec::new();
    let (head_end, body_start) = match find_head_end(bytes, start) {
        Some(p) => (p, p + 4),
        None => {
            problems.push(ScanProblem::NoEndOfHeaders);
            // Read what is there as a header section so that a 400 can still be addressed.
            let mut end = bytes.len();
            while end > start && matches!(bytes[end - 1], b'\r' | b'\n') {
                end -= 1;
            }
            (end, bytes.len())
        }
    };
    let head = bytes.get(start..head_end).unwrap_or_default();
    let mut lines = head.split_inclusive(|&b| b == b'\n').enumerate();
    let mut headers: Vec<RawHeader> = Vec::new();

    let start_line = lines.next().and_then(|(_, line)| {
        let line = strip_crlf(line);
        match std::str::from_utf8(line) {
            Ok(s) if !s.contains(['\r', '\n']) => Some(s),
            Ok(_) => {
                problems.push(ScanProblem::BareLineBreak(1));
                None
            }
            Err(_) => {
                problems.push(ScanProblem::NotUtf8(1));
                None
            }
        }
    });

    for (index, line) in lines {
        let number = index + 1;
        let raw = strip_crlf(line);
        if raw.ends_with(b"\r") || (line.ends_with(b"\n") && !line.ends_with(b"\r\n")) {
            problems.push(ScanProblem::BareLineBreak(number));
            continue;
        }
        if raw.contains(&b'\r') {
            problems.push(ScanProblem::BareLineBreak(number));
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            problems.push(ScanProblem::NotUtf8(number));
            continue;
        };
        if text.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(last) => {
                    let more = text.trim_matches([' ', '\t']);
                    if !more.is_empty() {
                        if !last.value.is_empty() {
                            last.value.push(' ');
                        }
                        last.value.push_str(more);
                    }
                }
                None => problems.push(ScanProblem::OrphanContinuation(number)),
            }
            continue;
        }
        let Some(colon) = text.find(':') else {
            problems.push(ScanProblem::NoColon(number));
            continue;
        };
        let name = text[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            problems.push(ScanProblem::BadFieldName(number));
            continue;
        }
        if headers.len() >= max_headers {
            problems.push(ScanProblem::TooManyHeaders);
            break;
        }
        headers.push(RawHeader {
            name: name.to_string(),
            value: text[colon + 1..].trim_matches([' ', '\t']).to_string(),
        });
    }

    RawMessage {
        start_line,
        headers,
        start,
        body_start,
        body: bytes.get(body_start..).unwrap_or_default(),
        problems,
    }
}

fn strip_crlf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line)
}

impl RawMessage<'_> {
    /// Values of every field of one kind, in order.
    pub fn all(&self, h: Hdr) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |f| h.matches(&f.name))
            .map(|f| f.value.as_str())
    }

    /// The first value of a header field.
    pub fn first(&self, h: Hdr) -> Option<&str> {
        self.all(h).next()
    }

    /// How many fields of this kind appear.
    pub fn count(&self, h: Hdr) -> usize {
        self.all(h).count()
    }

    /// The first field whose name matches `name` case-insensitively (extension headers).
    pub fn named(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_str())
    }

    /// The method token of a request line (the text before the first space), if any.
    pub fn method_token(&self) -> Option<&str> {
        let line = self.start_line?;
        let method = line.split(' ').next()?;
        (!method.is_empty() && !line.starts_with("SIP/")).then_some(method)
    }

    /// Whether the start line looks like a status line.
    pub fn is_response(&self) -> bool {
        self.start_line.is_some_and(|l| l.starts_with("SIP/"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;

    #[test]
    fn unfolds_and_recognises_compact_names() {
        let msg = b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\n ;branch=z9hG4bKx\r\nTO :\r\n sip:a@b\r\nl: 0\r\n\r\nbody";
        let raw = scan(msg, 10);
        assert!(raw.problems.is_empty(), "{:?}", raw.problems);
        assert_eq!(raw.start_line, Some("OPTIONS sip:a@b SIP/2.0"));
        assert_eq!(raw.first(Hdr::Via), Some("SIP/2.0/UDP h ;branch=z9hG4bKx"));
        assert_eq!(raw.first(Hdr::To), Some("sip:a@b"));
        assert_eq!(raw.count(Hdr::ContentLength), 1);
        assert_eq!(raw.body, b"body");
        assert_eq!(raw.method_token(), Some("OPTIONS"));
    }

    #[test]
    fn records_problems_instead_of_failing() {
        let msg = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nno colon here\r\nX\xff: y\r\n :orphan?\r\nA\rB: c\r\n";
        let raw = scan(msg, 10);
        assert!(raw.problems.contains(&ScanProblem::NoEndOfHeaders));
        assert!(raw.problems.contains(&ScanProblem::NoColon(3)));
        assert!(raw.problems.contains(&ScanProblem::NotUtf8(4)));
        assert!(raw.problems.contains(&ScanProblem::BareLineBreak(6)));
        assert_eq!(raw.first(Hdr::Via), Some("x :orphan?"));
    }

    #[test]
    fn bounds_the_header_count() {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..50 {
            msg.extend_from_slice(b"X: y\r\n");
        }
        msg.extend_from_slice(b"\r\n");
        let raw = scan(&msg, 10);
        assert_eq!(raw.headers.len(), 10);
        assert!(raw.problems.contains(&ScanProblem::TooManyHeaders));
    }
}
