//! Cutting a TCP byte stream into SIP messages (RFC 3261 §18.3: Content-Length frames
//! the body on stream transports).
//!
//! The framer holds at most one partial message: its header section is bounded by
//! `max_head` and its body by `max_body`. A body larger than `max_body` is not buffered:
//! the header section is handed out as [`Frame::Oversized`] (so a 513 can be sent) and the
//! body bytes are skipped as they arrive. Bytes that cannot start a SIP message, an
//! over-long header section and an unusable Content-Length are errors after which the
//! connection must be closed: the framing is lost (RFC 4475 §3.3.9).

use thiserror::Error;

use super::grammar;
use super::raw::{self, Hdr};

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message: header section and exactly Content-Length body bytes.
    Message(Vec<u8>),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1): answer with a single CRLF pong.
    Ping,
    /// The header section of a message whose body exceeds the limit (answer 513); the
    /// body is being skipped.
    Oversized(Vec<u8>),
}

/// Why the stream cannot be framed any more. The connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramerError {
    /// The bytes cannot be the start of a SIP message.
    #[error("the stream does not carry SIP: {0}")]
    Garbage(&'static str),
    /// No end of the header section within the limit.
    #[error("header section longer than {0} bytes")]
    HeaderTooLarge(usize),
    /// Content-Length missing where needed, malformed, negative or repeated.
    #[error("unusable Content-Length: {0}")]
    BadContentLength(&'static str),
    /// An earlier error already ended this stream.
    #[error("the stream already failed")]
    Failed,
}

/// Incremental framer for one connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_head: usize,
    max_body: usize,
    discard: usize,
    failed: bool,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(16 * 1024, 48 * 1024)
    }
}

impl StreamFramer {
    /// A framer with limits on the header section and the body, in bytes.
    pub fn new(max_head: usize, max_body: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            max_head,
            max_body,
            discard: 0,
            failed: false,
        }
    }

    /// Bytes currently buffered (at most one partial message plus the last push).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes (skipping those of an oversized body directly).
    pub fn push(&mut self, mut data: &[u8]) {
        if self.failed {
            return;
        }
        if self.discard > 0 {
            let skip = self.discard.min(data.len());
            self.discard -= skip;
            data = &data[skip..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Appends bytes and returns every frame now complete, then the error that ended the
    /// stream, if any: frames cut before the error are still delivered, and the connection
    /// should be closed after them.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<Frame>, Option<FramerError>) {
        self.push(data);
        let mut frames = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    fn fail(&mut self, e: FramerError) -> Result<Option<Frame>, FramerError> {
        self.failed = true;
        self.buf = Vec::new();
        Err(e)
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramerError> {
        if self.failed {
            return Err(FramerError::Failed);
        }
        loop {
            if self.discard > 0 {
                let skip = self.discard.min(self.buf.len());
                self.buf.drain(..skip);
                self.discard -= skip;
                if self.discard > 0 {
                    return Ok(None);
                }
            }
            match self.buf.as_slice() {
                [] => return Ok(None),
                [b'\r', b'\n', b'\r', b'\n', ..] => {
                    self.buf.drain(..4);
                    return Ok(Some(Frame::Ping));
                }
                // A lone CRLF (pong, or a stray line end between messages): ignored.
                [b'\r', b'\n', c, ..] if *c != b'\r' => {
                    self.buf.drain(..2);
                    continue;
                }
                [b'\r', b'\n', b'\r', c, ..] if *c != b'\n' => {
                    self.buf.drain(..2);
                    continue;
                }
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                _ => {}
            }
            if let Err(e) = self.check_start_line() {
                return self.fail(e);
            }
            let Some(head_end) = raw::find_head_end(&self.buf, 0) else {
                if self.buf.len() > self.max_head + 3 {
                    let limit = self.max_head;
                    return self.fail(FramerError::HeaderTooLarge(limit));
                }
                return Ok(None);
            };
            if head_end > self.max_head {
                let limit = self.max_head;
                return self.fail(FramerError::HeaderTooLarge(limit));
            }
            let head_len = head_end + 4;
            let body = match content_length(&self.buf[..head_len]) {
                Ok(n) => n,
                Err(e) => return self.fail(e),
            };
            if body > self.max_body as u64 {
                let head: Vec<u8> = self.buf.drain(..head_len).collect();
                // Bounded by max_body < usize::MAX, so the conversion cannot truncate.
                self.discard = usize::try_from(body).unwrap_or(usize::MAX);
                return Ok(Some(Frame::Oversized(head)));
            }
            let total = head_len + body as usize;
            if self.buf.len() < total {
                return Ok(None);
            }
            let message: Vec<u8> = self.buf.drain(..total).collect();
            return Ok(Some(Frame::Message(message)));
        }
    }

    /// Rejects bytes that cannot begin a start line, without waiting for the whole line.
    fn check_start_line(&self) -> Result<(), FramerError> {
        let line_end = self.buf.windows(2).position(|w| w == b"\r\n");
        let line = &self.buf[..line_end.unwrap_or(self.buf.len())];
        if !line.first().is_some_and(|b| grammar::is_token_byte(*b)) {
            return Err(FramerError::Garbage(
                "start line begins with a non-token byte",
            ));
        }
        if line
            .iter()
            .any(|&b| (b < b' ' && b != b'\t' && b != b'\r') || b == 0x7f)
        {
            return Err(FramerError::Garbage("control byte in start line"));
        }
        match line_end {
            Some(_) => {
                let text = String::from_utf8_lossy(line);
                // Trailing whitespace is the parser's to judge (400), not a framing error.
                let sip = text.starts_with("SIP/")
                    || text
                        .trim_end()
                        .rsplit(' ')
                        .next()
                        .is_some_and(|v| v.starts_with("SIP/"));
                if sip {
                    Ok(())
                } else {
                    Err(FramerError::Garbage("start line is not SIP"))
                }
            }
            None if line.len() > self.max_head => Err(FramerError::HeaderTooLarge(self.max_head)),
            None => Ok(()),
        }
    }
}

/// The single Content-Length of a header section (0 when absent, as many stream peers
/// omit it on body-less messages).
fn content_length(head: &[u8]) -> Result<u64, FramerError> {
    let scanned = raw::scan(head, usize::MAX);
    let mut values = scanned.all(Hdr::ContentLength);
    let Some(first) = values.next() else {
        return Ok(0);
    };
    if values.next().is_some() {
        return Err(FramerError::BadContentLength("repeated"));
    }
    grammar::content_length(first).map_err(FramerError::BadContentLength)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
#[path = "framer_tests.rs"]
mod tests;
