//! One gRPC server for whichever parts run in this process, with standard health checking and
//! server reflection, so `grpcurl` and any gRPC client work without the `.proto` files.

use std::time::Duration;

use dialtone_proto::FILE_DESCRIPTOR_SET;
use dialtone_proto::v1::ingest_server::IngestServer;
use dialtone_reporter::auth::Auth;
use dialtone_reporter::ingest::IngestService;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_router::service::{CallControlService, RouterService};
use tokio::net::TcpListener;

use crate::internal_auth::InternalGuard;
use crate::shutdown::Shutdown;

/// How long in-flight calls (and open streams such as a live-board watch) get after shutdown
/// before the server stops anyway.
pub const GRACE: Duration = Duration::from_secs(5);

/// The gRPC services this process serves.
#[derive(Default)]
pub struct Services {
    /// `dialtone.v1.Router`.
    pub router: Option<RouterService>,
    /// `dialtone.v1.Ingest`.
    pub ingest: Option<IngestServer<IngestService>>,
    /// `dialtone.v1.Reports`, behind the credential check when `auth` is set.
    pub reports: Option<ReportsService>,
    /// `dialtone.v1.CallControl` (callbacks, hang-ups), behind the credential check when
    /// `auth` is set.
    pub call_control: Option<CallControlService>,
    /// Client-facing services (Reports) require a bearer token with a role; `None` leaves them
    /// open (for components reached only by their own peers).
    pub auth: Option<Auth>,
    /// The internal services (Router, Ingest) take requests showing this token; `None` takes
    /// loopback peers only (standalone mode).
    pub internal_token: Option<String>,
}

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum GrpcServerError {
    /// Reflection could not read the descriptors (a build problem).
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `services` on `listener` until `shutdown` fires, then lets in-flight calls finish
/// for at most [`GRACE`].
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: Shutdown,
) -> Result<(), GrpcServerError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    for (present, name) in [
        (
            services.router.is_some(),
            dialtone_proto::service_names::ROUTER,
        ),
        (
            services.ingest.is_some(),
            dialtone_proto::service_names::INGEST,
        ),
        (
            services.reports.is_some(),
            dialtone_proto::service_names::REPORTS,
        ),
        (
            services.call_control.is_some(),
            dialtone_proto::service_names::CALL_CONTROL,
        ),
    ] {
        if present {
            health
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
    }
    let graceful = shutdown.clone();
    let internal = services.internal_token.as_deref();
    // Nagle's algorithm with delayed ACKs adds ~40 ms to small request/response exchanges;
    // gRPC wants every message on the wire at once.
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(
            services
                .router
                .map(|r| InternalGuard::new(internal, r.into_server())),
        )
        .add_optional_service(services.ingest.map(|i| InternalGuard::new(internal, i)))
        .add_optional_service(match &services.auth {
            Some(_) => None,
            None => services.reports.clone().map(ReportsService::into_server),
        })
        .add_optional_service(match &services.auth {
            Some(auth) => services
                .reports
                .clone()
                .map(|r| auth.grpc_guard(r.into_server())),
            None => None,
        })
        .add_optional_service(match &services.auth {
            Some(_) => None,
            None => services
                .call_control
                .clone()
                .map(CallControlService::into_server),
        })
        .add_optional_service(match &services.auth {
            Some(auth) => services
                .call_control
                .clone()
                .map(|c| auth.grpc_guard(c.into_server())),
            None => None,
        })
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move { graceful.fired().await },
        );
    tokio::select! {
        result = server => result?,
        _ = async { shutdown.fired().await; tokio::time::sleep(GRACE).await } => {
            tracing::warn!("gRPC calls still open {GRACE:?} after shutdown; stopping anyway");
        }
    }
    Ok(())
}
