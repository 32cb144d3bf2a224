//! The request the registrar reads and the outcome it returns: what the edge sends and
//! which router calls it makes.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::Contacts;

/// What the registrar needs of a REGISTER. The edge handles the method, Via, To-tag and
/// transaction; this is the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The Request-URI as on the wire (compared with the digest `uri`).
    pub request_uri: String,
    /// The To URI: the address-of-record being registered.
    pub to_uri: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// The Contact header fields.
    pub contacts: Contacts,
    /// The Expires header.
    pub expires: Option<u32>,
    /// The Authorization header's value.
    pub authorization: Option<String>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
    /// Where it came from.
    pub source: SocketAddr,
}

/// Why a REGISTER gets 403 (for logs and metrics; the wire says only "Forbidden").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenCause {
    /// Too many failures from this address; refused until then.
    RateLimited {
        /// When the block ends.
        until: SystemTime,
    },
    /// Authenticated, but the AOR is not this agent's, or the agent has no softphone.
    NotAllowed,
}

/// A contact of a 200 OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The Contact URI.
    pub uri: String,
    /// Seconds left.
    pub expires: u32,
}

/// A call the edge makes to the router after a successful REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterCall {
    /// `Router.RegisterContact`: a new binding, or a refresh of an existing one.
    Register {
        /// Canonical AOR.
        aor: String,
        /// The agent.
        agent: String,
        /// Contact URI.
        uri: String,
        /// Granted expiry from now.
        expires: Duration,
        /// Source of the REGISTER.
        source: SocketAddr,
        /// `+sip.instance`.
        instance_id: Option<String>,
        /// User-Agent.
        user_agent: Option<String>,
        /// Whether the binding existed already.
        refresh: bool,
    },
    /// `Router.RemoveContact`: one contact, or every contact of the AOR (`uri: None`).
    Remove {
        /// Canonical AOR.
        aor: String,
        /// The contact, or `None` for all.
        uri: Option<String>,
    },
}

/// A successful REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The agent authenticated.
    pub agent: String,
    /// Canonical AOR, `sip:<username>@<realm>`.
    pub aor: String,
    /// The AOR's bindings on this node after the change, for the 200 OK. When the router
    /// answers `RegisterContact` with the AOR's contacts across all nodes, the edge may
    /// list those instead.
    pub contacts: Vec<ContactEntry>,
    /// Router calls to make, in order.
    pub router: Vec<RouterCall>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 401 with these WWW-Authenticate values (one per algorithm).
    Challenge {
        /// Header values.
        www_authenticate: Vec<String>,
    },
    /// 403.
    Forbidden {
        /// Why (not sent).
        cause: ForbiddenCause,
    },
    /// 423 Interval Too Brief with Min-Expires.
    IntervalTooBrief {
        /// The shortest accepted.
        min_expires: u32,
    },
    /// 400: the request is malformed.
    BadRequest {
        /// What is wrong (for logs).
        detail: &'static str,
    },
    /// 500: an older REGISTER of the same Call-ID arrived after a newer one (RFC 3261
    /// §10.3 step 7); nothing changed.
    OutOfOrder,
    /// 200 OK.
    Registered(Registered),
}

impl RegisterOutcome {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            RegisterOutcome::Challenge { .. } => 401,
            RegisterOutcome::Forbidden { .. } => 403,
            RegisterOutcome::IntervalTooBrief { .. } => 423,
            RegisterOutcome::BadRequest { .. } => 400,
            RegisterOutcome::OutOfOrder => 500,
            RegisterOutcome::Registered(_) => 200,
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            RegisterOutcome::Challenge { .. } => "Unauthorized",
            RegisterOutcome::Forbidden { .. } => "Forbidden",
            RegisterOutcome::IntervalTooBrief { .. } => "Interval Too Brief",
            RegisterOutcome::BadRequest { .. } => "Bad Request",
            RegisterOutcome::OutOfOrder => "Server Internal Error",
            RegisterOutcome::Registered(_) => "OK",
        }
    }

    /// Header fields the response carries besides the ones echoed from the request.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            RegisterOutcome::Challenge { www_authenticate } => www_authenticate
                .iter()
                .map(|v| ("WWW-Authenticate", v.clone()))
                .collect(),
            RegisterOutcome::IntervalTooBrief { min_expires } => {
                vec![("Min-Expires", min_expires.to_string())]
            }
            RegisterOutcome::Registered(r) => r
                .contacts
                .iter()
                .map(|c| ("Contact", format!("<{}>;expires={}", c.uri, c.expires)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Counters for metrics (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrarCounters {
    /// 401 challenges sent (first contact, stale nonces and failures alike).
    pub challenges: u64,
    /// Failed authentications (unknown user and wrong password alike).
    pub auth_failures: u64,
    /// Addresses blocked for too many failures.
    pub rate_limited: u64,
    /// REGISTERs refused because their address is blocked.
    pub blocked_requests: u64,
    /// Correct answers with a stale (or replayed) nonce.
    pub stale_nonces: u64,
    /// Authenticated REGISTERs refused (AOR not theirs, no softphone).
    pub not_allowed: u64,
    /// 423 answers.
    pub interval_too_brief: u64,
    /// 400 answers.
    pub bad_requests: u64,
    /// 500 answers for out-of-order REGISTERs.
    pub out_of_order: u64,
    /// 200 answers.
    pub registered: u64,
}
