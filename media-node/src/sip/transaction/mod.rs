//! The RFC 3261 §17 transaction layer (with the RFC 6026 Accepted states), sans-IO.
//!
//! # How the edge drives it
//!
//! The [`TransactionLayer`] owns every transaction. The edge (socket tasks) calls
//!
//! - [`TransactionLayer::on_datagram`] for each UDP datagram and
//!   [`TransactionLayer::on_frame`] for each frame cut by the
//!   [`StreamFramer`](crate::sip::message::StreamFramer) of a TCP connection,
//! - [`TransactionLayer::on_timer`] when the instant returned by
//!   [`TransactionLayer::next_timer`] has come (sleep until then, or until new input),
//! - [`TransactionLayer::on_transport_error`] when sending for a transaction failed,
//!
//! and the TU (the B2BUA) calls [`TransactionLayer::send_request`],
//! [`TransactionLayer::send_response`], [`TransactionLayer::cancel`] and
//! [`TransactionLayer::send_ack`]. Every call takes `now` and returns [`Action`]s: bytes to
//! send to a [`Peer`] and [`TuEvent`]s for the TU. Time is only what the
//! caller says it is, so tests run whole timer schedules in microseconds.
//!
//! Every state of every transaction has a deadline that ends it (RFC timers, plus guard
//! timers where the RFC leaves a state open-ended), so no transaction can hang.

mod client;
mod key;
mod layer;
mod outgoing;
mod server;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod test_support;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests_client;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests_layer;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests_server;

pub use layer::TransactionLayer;

use std::fmt;
use std::time::Duration;

use rsipstack::sip::{Request, Response};
use thiserror::Error;

use crate::sip::Peer;
use crate::sip::message::ParseConfig;

/// Identifies one transaction for the life of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// RFC 3261 timer values (Table 4), injectable so tests and deployments can change them.
/// Over a reliable transport the retransmission timers are not used and the "wait"
/// timers (D, I, J, K) are zero, as the RFC says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (5 s).
    pub t4: Duration,
    /// Timer D for unreliable transports (at least 32 s).
    pub d: Duration,
    /// Guard for an INVITE client transaction in Proceeding: RFC 3261 has no timer there
    /// (a proxy's Timer C is > 3 min). When it fires the TU is told [`Timeout::NoFinal`].
    pub invite_client_guard: Duration,
    /// Guard for an INVITE server transaction whose TU never answers: 408 is sent.
    pub invite_server_guard: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            invite_client_guard: Duration::from_secs(180),
            invite_server_guard: Duration::from_secs(300),
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Configuration of a [`TransactionLayer`].
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// Timer values.
    pub timers: Timers,
    /// Parsing limits and local policy.
    pub parse: ParseConfig,
    /// `host[:port]` written as sent-by in our Vias.
    pub sent_by: String,
    /// A token unique to this node, part of every branch we generate: seeing it in a
    /// received request means the request looped back to us (482).
    pub node_token: String,
    /// Seed of the generator for branches and tags (fixed in tests).
    pub seed: u64,
}

impl LayerConfig {
    /// A configuration with default timers and policy.
    pub fn new(sent_by: impl Into<String>, node_token: impl Into<String>, seed: u64) -> Self {
        LayerConfig {
            timers: Timers::default(),
            parse: ParseConfig::default(),
            sent_by: sent_by.into(),
            node_token: node_token.into(),
            seed,
        }
    }
}

/// What the edge must do after a call into the layer.
#[derive(Debug)]
pub enum Action {
    /// Send these bytes to this peer (for TCP: on the connection to that address).
    Send {
        /// Destination.
        to: Peer,
        /// The serialised message.
        bytes: Vec<u8>,
        /// The transaction the message belongs to, if any: report a failure to send with
        /// [`TransactionLayer::on_transport_error`].
        tx: Option<TxId>,
    },
    /// Tell the TU.
    Tu(TuEvent),
}

/// Why a transaction timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Client: no final response (Timer B / F, or the INVITE Proceeding guard). Treat as
    /// 408 Request Timeout.
    NoFinal,
    /// Server: no ACK for a non-2xx final response (Timer H).
    NoAck,
    /// Server: no ACK for a 2xx (Timer L, RFC 3261 §13.3.1.4): the TU should end the
    /// session with BYE.
    NoAck2xx,
    /// Server: the TU never answered (guard); for INVITE a 408 was sent.
    TuSilent,
}

/// Notifications for the TU.
#[derive(Debug)]
pub enum TuEvent {
    /// A new request, with the server transaction created for it.
    Request {
        /// The server transaction: answer with [`TransactionLayer::send_response`].
        tx: TxId,
        /// The parsed request (its top Via carries received / rport).
        request: Box<Request>,
        /// Where it came from.
        source: Peer,
    },
    /// An ACK for a 2xx (a transaction of its own, RFC 3261 §17.1.1.3). `tx` is the INVITE
    /// server transaction whose 2xx it acknowledges, if it is still known.
    Ack {
        /// The INVITE server transaction, if matched.
        tx: Option<TxId>,
        /// The ACK.
        request: Box<Request>,
        /// Where it came from.
        source: Peer,
    },
    /// A CANCEL matched this INVITE server transaction: 200 was sent to the CANCEL and,
    /// if the INVITE was still pending, 487 to the INVITE.
    Cancelled {
        /// The INVITE server transaction.
        tx: TxId,
        /// Whether the 487 was sent (false if a final response had gone already).
        terminated: bool,
    },
    /// A response for a client transaction (provisional, final, and 2xx retransmissions
    /// of an INVITE in the Accepted state).
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Box<Response>,
    },
    /// A response that matches no transaction (e.g. a 2xx retransmitted after Timer M):
    /// the dialog layer may still need to ACK it.
    StrayResponse {
        /// The response.
        response: Box<Response>,
        /// Where it came from.
        source: Peer,
    },
    /// The core answered a request itself (syntax, policy, or a CANCEL without INVITE):
    /// for metrics and logs.
    Rejected {
        /// Status sent.
        status: u16,
        /// Method of the request, if it could be read.
        method: Option<String>,
        /// Where the request came from.
        source: Peer,
    },
    /// A message was dropped without answer: for metrics and logs.
    Discarded {
        /// Why.
        reason: &'static str,
        /// From where.
        source: Peer,
    },
    /// A transaction timed out.
    Timeout {
        /// The transaction.
        tx: TxId,
        /// Which timer.
        kind: Timeout,
    },
    /// Sending failed for this transaction (reported by the edge).
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// The transaction is gone; its id will not appear again.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
}

/// Misuse of the layer API by the TU.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayerError {
    /// No transaction with this id (it may have terminated).
    #[error("unknown transaction {0}")]
    UnknownTransaction(TxId),
    /// The transaction is not of the kind the call needs.
    #[error("transaction {0} is not {1}")]
    WrongKind(TxId, &'static str),
    /// The request cannot be sent as given.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Status codes are 100..=699.
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
    /// The transaction can no longer take this response.
    #[error("transaction {0} already sent a final response")]
    AlreadyFinal(TxId),
}
