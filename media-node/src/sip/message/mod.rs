//! Parsing received SIP messages into what the transaction layer needs, or into the exact
//! answer a bad message deserves.
//!
//! `rsipstack::sip` does the full parse of messages that pass our checks; everything it
//! gets wrong or lets through is judged first on a raw reading of the bytes
//! ([`raw::scan`]) by strict recognisers ([`grammar`]):
//!
//! 1. syntax and framing ([`Parsed::Reject`], answered statelessly: 400, 505, 513),
//! 2. what this node supports ([`Verdict::Refuse`], answered through a server transaction
//!    so that INVITE rejections are retransmitted until ACKed: 405, 501, 415, 416, 420,
//!    482, 483),
//! 3. then `rsipstack` parses the message for the TU ([`Verdict::Accept`]).
//!
//! Responses that fail a check and ACKs are dropped: neither is ever answered.

pub mod build;
mod checks;
pub mod framer;
pub mod grammar;
mod policy;
pub mod raw;

pub use build::{Echo, response_to, status};
pub use framer::{Frame, FramerError, StreamFramer};
pub use grammar::{UriKind, ViaParm};
pub use policy::Policy;

use rsipstack::sip::{Request, Response};

use crate::sip::Peer;

/// Size limits and the local policy applied to every received message.
#[derive(Debug, Clone)]
pub struct ParseConfig {
    /// Largest message accepted (datagram, or head + body of a stream frame): bigger ones
    /// are answered 513 Message Too Large when they can be addressed.
    pub max_message_bytes: usize,
    /// Most header fields read from one message (bounds the work per message).
    pub max_headers: usize,
    /// What the node supports (methods, extensions, bodies, URI schemes, loop detection).
    pub policy: Policy,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            max_message_bytes: 65_535,
            max_headers: 128,
            policy: Policy::default(),
        }
    }
}

/// The outcome of reading one datagram or stream frame.
#[derive(Debug)]
pub enum Parsed {
    /// A well-formed request (possibly refused by policy).
    Request(Box<InboundRequest>),
    /// A well-formed response.
    Response(Box<InboundResponse>),
    /// A malformed request that must be answered statelessly with these bytes.
    Reject(Reject),
    /// Nothing to do: an unaddressable or malformed message that is never answered
    /// (responses, ACKs, garbage). The text says why, for logs and metrics.
    Drop(&'static str),
}

/// A stateless error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The status code sent.
    pub status: u16,
    /// The reason phrase sent (names the offending header where there is one).
    pub reason: String,
    /// The serialised response.
    pub bytes: Vec<u8>,
    /// Where it goes: the source of the request (symmetric response routing).
    pub to: Peer,
    /// The request's method token, if the request line could be read.
    pub method: Option<String>,
}

/// The facts about a request the transaction layer and the policy need, read by our own
/// recognisers (so they are available even for methods `rsipstack` cannot represent).
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Method, case-sensitive as on the wire.
    pub method: String,
    /// Request-URI text.
    pub uri: String,
    /// The top Via entry.
    pub top_via: ViaParm,
    /// Every Via entry (loop detection).
    pub vias: Vec<ViaParm>,
    /// Call-ID value.
    pub call_id: String,
    /// From tag (absent only in RFC 2543 requests).
    pub from_tag: Option<String>,
    /// To tag (present for in-dialog requests).
    pub to_tag: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// Max-Forwards, if present.
    pub max_forwards: Option<u8>,
    /// Raw values for building responses.
    pub echo: Echo,
    /// Where the request came from.
    pub source: Peer,
}

impl RequestMeta {
    /// Whether the top Via carries an RFC 3261 branch (magic cookie).
    pub fn is_rfc3261(&self) -> bool {
        self.top_via
            .branch()
            .is_some_and(|b| b.starts_with(grammar::MAGIC_COOKIE))
    }
}

/// A well-formed request and what to do with it.
#[derive(Debug)]
pub struct InboundRequest {
    /// Our reading of the request.
    pub meta: RequestMeta,
    /// Accept (parsed by `rsipstack`, for the TU) or refuse (with this answer).
    pub verdict: Verdict,
}

/// Whether the node takes a well-formed request.
#[derive(Debug)]
pub enum Verdict {
    /// Passes every check; the top Via already carries received / rport.
    Accept(Box<Request>),
    /// Refused by local policy; answered through a server transaction.
    Refuse(Refusal),
}

/// A policy refusal: status, reason phrase and the headers the RFC requires with it
/// (Allow with 405/501, Unsupported with 420, Accept / Accept-Encoding with 415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Extra header fields.
    pub headers: Vec<(&'static str, String)>,
}

/// A well-formed response with the fields used for transaction matching.
#[derive(Debug)]
pub struct InboundResponse {
    /// The parsed response.
    pub response: Response,
    /// Status code.
    pub code: u16,
    /// Top Via branch.
    pub branch: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// To tag.
    pub to_tag: Option<String>,
    /// Where it came from.
    pub source: Peer,
}

/// Reads one UDP datagram or one stream frame (as cut by [`StreamFramer`]).
///
/// Never panics, whatever the bytes; the work is bounded by `config.max_headers` and the
/// input length.
pub fn parse(bytes: &[u8], source: Peer, config: &ParseConfig) -> Parsed {
    let raw = raw::scan(bytes, config.max_headers);
    if raw.start_line.is_none() {
        return Parsed::Drop("unreadable start line");
    }
    if raw.is_response() {
        checks::response(bytes, &raw, source, config)
    } else {
        checks::request(bytes, &raw, source, config)
    }
}

/// Answers the header section of a stream message whose body is too large to read
/// (see [`Frame::Oversized`]): 513 if it can be addressed.
pub fn parse_oversized(head: &[u8], source: Peer, config: &ParseConfig) -> Parsed {
    let raw = raw::scan(head, config.max_headers);
    checks::too_large(&raw, source)
}
