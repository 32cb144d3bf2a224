//! The sans-IO SIP core of the media node.
//!
//! Nothing in here touches a socket, a runtime or the wall clock. The edge (UDP/TCP
//! transports) feeds bytes and [`std::time::Instant`]s in and executes the returned
//! [`transaction::Action`]s: this keeps every protocol rule testable with simulated time
//! and makes hostile input a pure function of bytes.
//!
//! - [`message`]: datagram / stream-frame parsing on top of `rsipstack::sip`, with our own
//!   checks for everything the parser gets wrong or lets through (RFC 3261 §7, §8.2,
//!   RFC 4475, RFC 5118), and the TCP framer.
//! - [`transaction`]: the RFC 3261 §17 transaction layer (+ RFC 6026), driven by
//!   `on_datagram` / `on_frame` / `on_timer` / `send_request` / `send_response`.
//! - [`dialog`]: dialog state and in-dialog request building (RFC 3261 §12).

pub mod dialog;
pub mod message;
pub mod transaction;

use std::fmt;
use std::net::SocketAddr;

/// The transports the node speaks. TLS/WS can be added later; the core only cares
/// whether a transport is reliable (it changes the RFC 3261 timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams: retransmissions and the full timer set apply.
    Udp,
    /// Reliable stream: no retransmissions, "wait" timers are zero (RFC 3261 §17).
    Tcp,
}

impl Transport {
    /// Whether the transport is reliable (RFC 3261 §17: no retransmission timers).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The transport token used in Via (RFC 3261 §20.42).
    pub fn as_via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_via_token())
    }
}

/// A remote transport address: where a message came from or goes to. For TCP the edge
/// maps it to the connection (responses go back on the connection the request used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport used with this peer.
    pub transport: Transport,
    /// The peer's socket address (source of a request, destination of a send).
    pub addr: SocketAddr,
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Self {
        Peer {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP peer.
    pub fn tcp(addr: SocketAddr) -> Self {
        Peer {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}
