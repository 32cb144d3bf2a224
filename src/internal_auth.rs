//! The internal services' door (`dialtone.v1.Router`, `dialtone.v1.Ingest`): only Dialtone's
//! own components may use them. In a cluster every component has the shared internal token
//! (from the Secret the CallCenter names, or the one the operator generates) and shows it on
//! every request; a request without it, or with another, gets `UNAUTHENTICATED`. Without a
//! token (standalone mode, everything in one process) only loopback peers are let in, so a
//! `--grpc 0.0.0.0:…` does not open the router to the network.
//!
//! Health checking and reflection are not behind this door; the client-facing services
//! (Reports, CallControl) have their own (bearer tokens with roles).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use dialtone_proto::internal::{HEADER, matches};
use tonic::Status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

/// Whether a request may use an internal service.
pub fn admit(expected: Option<&str>, presented: Option<&[u8]>, peer: Option<IpAddr>) -> bool {
    match expected {
        Some(token) => presented.is_some_and(|p| matches(p, token.as_bytes())),
        None => peer.is_some_and(|ip| ip.is_loopback()),
    }
}

/// A tonic service behind the internal door.
#[derive(Debug, Clone)]
pub struct InternalGuard<S> {
    token: Option<Arc<str>>,
    inner: S,
}

impl<S> InternalGuard<S> {
    /// `inner` behind the door; `token` the shared internal token, `None` for loopback only.
    pub fn new(token: Option<&str>, inner: S) -> Self {
        InternalGuard {
            token: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            inner,
        }
    }
}

impl<S: NamedService> NamedService for InternalGuard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for InternalGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        let presented = req.headers().get(HEADER).map(http::HeaderValue::as_bytes);
        if admit(self.token.as_deref(), presented, peer) {
            // The clone made ready answers this call (tower's rule for cloned services).
            let clone = self.inner.clone();
            let mut ready = std::mem::replace(&mut self.inner, clone);
            Box::pin(ready.call(req))
        } else {
            let why = if self.token.is_some() {
                "this service is for Dialtone's own components: the internal token is missing or wrong"
            } else {
                "this service is for Dialtone's own components: without an internal token it only takes loopback connections"
            };
            tracing::warn!(target: "security", ?peer, path = %req.uri().path(), "internal service refused");
            Box::pin(async move { Ok(Status::unauthenticated(why).into_http()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_token_only_the_token_counts() {
        let lo = Some(IpAddr::from([127, 0, 0, 1]));
        let far = Some(IpAddr::from([10, 0, 0, 7]));
        assert!(admit(Some("s3cret"), Some(b"s3cret"), far));
        assert!(!admit(Some("s3cret"), Some(b"s3creT"), far));
        assert!(!admit(Some("s3cret"), None, lo), "loopback is no token");
    }

    #[test]
    fn without_a_token_only_loopback() {
        assert!(admit(None, None, Some(IpAddr::from([127, 0, 0, 1]))));
        assert!(admit(
            None,
            None,
            Some("::1".parse().unwrap_or(IpAddr::from([0u8; 4])))
        ));
        assert!(!admit(
            None,
            Some(b"x"),
            Some(IpAddr::from([192, 168, 1, 2]))
        ));
        assert!(!admit(None, None, None));
    }
}
