//! How Dialtone's own components recognise each other on the internal services (`Router`,
//! `Ingest`): every request carries the shared internal token in [`HEADER`]. In a cluster the
//! operator gives every component the same token (from a Secret); standalone mode runs
//! everything in one process on loopback and needs none. The server-side check lives with the
//! server; this is the client side and the comparison both use.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The metadata key of the internal token.
pub const HEADER: &str = "x-dialtone-internal-token";

/// A channel that shows the internal token (when there is one) on every request.
pub type InternalChannel = InterceptedService<Channel, InternalToken>;

/// Adds the internal token to every request; adds nothing when there is none.
#[derive(Clone, Default)]
pub struct InternalToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_tuple("InternalToken")
            .field(&self.0.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The token is not usable as a gRPC metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadToken;

impl std::fmt::Display for BadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the internal token must be visible ASCII without spaces")
    }
}

impl std::error::Error for BadToken {}

impl InternalToken {
    /// The token to show; `None` or empty shows nothing (standalone mode).
    ///
    /// # Errors
    ///
    /// [`BadToken`] when it cannot travel as gRPC metadata.
    pub fn new(token: Option<&str>) -> Result<Self, BadToken> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(InternalToken(None)),
            Some(t) if t.bytes().all(|b| b.is_ascii_graphic()) => t
                .parse()
                .map(|v| InternalToken(Some(v)))
                .map_err(|_| BadToken),
            Some(_) => Err(BadToken),
        }
    }

    /// Wraps a channel.
    pub fn channel(self, channel: Channel) -> InternalChannel {
        InterceptedService::new(channel, self)
    }
}

impl Interceptor for InternalToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert(HEADER, v.clone());
        }
        Ok(request)
    }
}

/// Compares a presented token with the expected one in time that depends on the lengths only.
pub fn matches(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(InternalToken::new(None).is_ok_and(|t| t.0.is_none()));
        assert!(InternalToken::new(Some("  ")).is_ok_and(|t| t.0.is_none()));
        assert!(InternalToken::new(Some("abc-123")).is_ok_and(|t| t.0.is_some()));
        assert_eq!(InternalToken::new(Some("a b")).err(), Some(BadToken));
        assert!(matches(b"secret", b"secret"));
        assert!(!matches(b"secreT", b"secret"));
        assert!(!matches(b"secret1", b"secret"));
    }

    #[test]
    fn the_header_is_added() {
        let mut t = InternalToken::new(Some("tok")).unwrap_or_default();
        let r = t
            .call(Request::new(()))
            .unwrap_or_else(|_| Request::new(()));
        assert_eq!(
            r.metadata().get(HEADER).and_then(|v| v.to_str().ok()),
            Some("tok")
        );
    }
}
