//! The client-facing gRPC API's credential check.
//!
//! [`GrpcGuard`] wraps a tonic service (`ReportsServer`, `CallControlServer`): it reads the
//! bearer token of the `authorization` metadata, checks it like the dashboard does (same
//! throttle, same single answer for every wrong credential: `UNAUTHENTICATED "missing or
//! invalid credential"`), checks the method's [`required_role`], and hands the caller's name
//! to the service as a [`Caller`] extension — the default `by` of `HandleGroup`.
//!
//! A guard rather than a tonic interceptor because an interceptor does not see which method
//! is called, and the role depends on it.

use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

use super::{Auth, Denied, Principal, Role, bearer_token};
use crate::reports_service::Caller;

/// The one answer to a missing, unknown or wrong credential.
const UNAUTHENTICATED: &str = "missing or invalid credential";

/// The role a gRPC method needs, by its path (`/dialtone.v1.Reports/HandleGroup`); `None` for
/// what needs no credential (health checking and reflection, so standard tools work).
///
/// Handling a group, ordering a callback and hanging up a call change things: supervisor.
/// Everything else of the client-facing services reads: viewer.
pub fn required_role(path: &str) -> Option<Role> {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
        return None;
    }
    match path {
        "/dialtone.v1.Reports/HandleGroup"
        | "/dialtone.v1.CallControl/OrderCallback"
        | "/dialtone.v1.CallControl/HangUp" => Some(Role::Supervisor),
        _ => Some(Role::Viewer),
    }
}

fn denied_status(d: Denied) -> Status {
    match d {
        Denied::Unauthenticated => Status::unauthenticated(UNAUTHENTICATED),
        Denied::Throttled(after) => Status::resource_exhausted(format!(
            "too many failed attempts from this address; retry in {} s",
            after.as_secs()
        )),
    }
}

impl Auth {
    /// Checks the bearer token in gRPC `metadata` (`authorization: Bearer <token>`) from
    /// `peer`. Only authenticates: compare the principal's role with [`required_role`], or
    /// use [`GrpcGuard`], which does both.
    ///
    /// # Errors
    ///
    /// `UNAUTHENTICATED "missing or invalid credential"` whatever was wrong;
    /// `RESOURCE_EXHAUSTED` while the address is throttled.
    pub fn check_grpc(
        &self,
        metadata: &MetadataMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let peer = self.client_address(peer, None);
        self.authenticate(peer, token).map_err(denied_status)
    }

    /// Wraps a tonic service so that every call needs a credential with the method's role.
    pub fn grpc_guard<S>(&self, inner: S) -> GrpcGuard<S> {
        GrpcGuard {
            auth: self.clone(),
            inner,
        }
    }

    /// The whole check of one gRPC request: credential, then role.
    fn check_request(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<Principal>, Status> {
        let Some(needed) = required_role(path) else {
            return Ok(None);
        };
        let metadata = MetadataMap::from_headers(headers.clone());
        let principal = self.check_grpc(&metadata, peer)?;
        if !principal.role.allows(needed) {
            return Err(Status::permission_denied(format!(
                "{path} needs the {needed} role; {} has the {} role",
                principal.name, principal.role
            )));
        }
        Ok(Some(principal))
    }
}

/// A tonic service behind a credential check (see the module docs). Add it to the server in
/// place of the service it wraps: `.add_service(auth.grpc_guard(reports.into_server()))`.
#[derive(Debug, Clone)]
pub struct GrpcGuard<S> {
    auth: Auth,
    inner: S,
}

impl<S: NamedService> NamedService for GrpcGuard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for GrpcGuard<S>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        match self
            .auth
            .check_request(req.uri().path(), req.headers(), peer)
        {
            Ok(principal) => {
                if let Some(p) = principal {
                    req.extensions_mut().insert(Caller(p.name.clone()));
                    req.extensions_mut()
                        .insert(dialtone_proto::Authenticated(p.name.clone()));
                    req.extensions_mut().insert(p);
                }
                // The clone that was made ready answers this call; the fresh clone waits for
                // the next poll_ready (tower's rule for services that are cloned per call).
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(req))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_method() {
        assert_eq!(
            required_role("/dialtone.v1.Reports/HandleGroup"),
            Some(Role::Supervisor)
        );
        assert_eq!(
            required_role("/dialtone.v1.Reports/Missed"),
            Some(Role::Viewer)
        );
        assert_eq!(required_role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            required_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
    }
}
