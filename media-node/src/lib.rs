//! Dialtone media node: the SIP B2BUA and the RTP media plane.
//!
//! [`sip`] is the sans-IO SIP core: message parsing with the checks that protect the node
//! from hostile traffic, the RFC 3261 transaction layer and dialog state. It owns no socket
//! and no clock; the transports (UDP/TCP) and the B2BUA wrap it by feeding it bytes and
//! instants and executing the actions it returns.

pub mod carrier;
pub mod guard;
pub mod media;
pub mod node;
pub mod registrar;
pub mod sip;
pub mod spool;
