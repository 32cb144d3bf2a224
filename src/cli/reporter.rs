//! `dialtone reporter`: the reporter on its own (in a cluster): ingestion, reports, retention.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dialtone_proto::v1::router_client::RouterClient;
use dialtone_reporter::auth::{Auth, AuthConfig, TokenStore};
use dialtone_reporter::dashboard::{self, DashboardState};
use dialtone_reporter::ingest::Ingestor;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_reporter::retention;
use dialtone_reporter::store::{OpenOptions, Store};

use crate::cluster_config;
use crate::grpc_server::{self, Services};
use crate::live::RemoteRouter;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, LogFormat, Metrics, Readiness, TelemetryConfig};

/// Flags of `dialtone reporter`.
#[derive(Debug, clap::Args)]
pub struct ReporterArgs {
    /// The configuration snapshot folder (the missed-call policy and schedules come from it).
    #[arg(long, env = "DIALTONE_CONFIG", default_value = "examples/demo")]
    pub config: PathBuf,
    /// In a cluster: the snapshot ConfigMap/Secret watched through the API (`<name>` in
    /// DIALTONE_NAMESPACE, `<ns>/<name>` or `configmap:<ns>/<name>`); unset: the --config folder.
    #[arg(long, env = "DIALTONE_SNAPSHOT")]
    pub snapshot: Option<String>,
    /// The namespace the snapshot lives in (the pod's, from the downward API).
    #[arg(long, env = "DIALTONE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Data folder: SQLite (when no database URL is given) and the ingestion journal.
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// PostgreSQL URL; SQLite under --data when absent.
    #[arg(long, env = "DIALTONE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// gRPC address (ingest, reports).
    #[arg(long, env = "DIALTONE_GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc: SocketAddr,
    /// Ops address (`/metrics`, `/healthz`, `/readyz`) and the supervisor dashboard.
    #[arg(long, env = "DIALTONE_OPS_ADDR", default_value = "127.0.0.1:9091")]
    pub ops: SocketAddr,
    /// Credentials for the dashboard and the client gRPC API: a file of `name:role:token`
    /// lines (role `viewer` or `supervisor`), e.g. a mounted Secret's `tokens` key.
    #[arg(long, env = "DIALTONE_TOKENS_FILE")]
    pub tokens: Option<PathBuf>,
    /// Mark the session cookie `Secure` (behind an https Ingress).
    #[arg(long, env = "DIALTONE_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// The router, for the live board.
    #[arg(long, env = "DIALTONE_ROUTER_URL")]
    pub router: Option<String>,
    /// The internal token Dialtone's components show each other (in a cluster, from the
    /// CallCenter's Secret). Without it the internal services take loopback peers only.
    #[arg(long, env = "DIALTONE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// The recordings folder the media nodes write (in a cluster, their shared volume, mounted
    /// read-only): served to signed-in users under `/media/`.
    #[arg(long, env = "DIALTONE_RECORDINGS")]
    pub recordings: Option<PathBuf>,
    /// The address users and CRMs reach the dashboard at (`https://dialtone.example.com`):
    /// recording links in webhooks are absolute under it. Without it webhooks carry the
    /// recordings' paths.
    #[arg(long, env = "DIALTONE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log level; `RUST_LOG` overrides it.
    #[arg(long, env = "DIALTONE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: auto, json or text.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// Runs the reporter until SIGTERM or Ctrl-C.
pub async fn run(args: ReporterArgs) -> anyhow::Result<ExitCode> {
    let guard = telemetry::init(&TelemetryConfig {
        service_name: "dialtone-reporter".into(),
        log_level: args.log_level.clone(),
        log_format: args.log_format,
    })?;
    let shutdown = Shutdown::new();
    shutdown.fire_on_signals();
    let source = match cluster_config::ConfigSource::select(
        &args.config,
        args.snapshot.as_deref(),
        args.namespace.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dialtone reporter: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (config_rx, _status) = match cluster_config::open(&source, shutdown.receiver()).await {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("dialtone reporter: {source} has errors; fix them and start again");
            return Ok(ExitCode::FAILURE);
        }
    };
    std::fs::create_dir_all(&args.data)?;
    let store = match &args.database_url {
        Some(url) => Store::open(url).await?,
        None => {
            Store::open_sqlite_file(&args.data.join("dialtone.db"), &OpenOptions::default()).await?
        }
    };
    let ingestor = Arc::new(Ingestor::open(
        store.clone(),
        &args.data,
        config_rx.clone(),
    )?);
    let ingest_task = tokio::spawn(ingestor.clone().run(shutdown.receiver()));
    tokio::spawn(retention::run(
        store.clone(),
        config_rx.clone(),
        Duration::from_secs(3600),
        shutdown.receiver(),
    ));
    let metrics = Metrics::new();
    let dispatcher = dialtone_reporter::webhooks::Dispatcher::with_options(
        store.clone(),
        config_rx.clone(),
        dialtone_reporter::webhooks::Options {
            media_base_url: args
                .public_url
                .as_deref()
                .map(|u| format!("{}/media", u.trim_end_matches('/'))),
            ..dialtone_reporter::webhooks::Options::default()
        },
    );
    metrics.with_registry(|r| dispatcher.metrics().register(r));
    telemetry::serve_reporter_metrics(&metrics, &ingestor, shutdown.receiver());
    let webhooks_task = tokio::spawn(dispatcher.run(
        dialtone_reporter::webhooks::http_client()?,
        shutdown.receiver(),
    ));
    let config_rx_dash = config_rx.clone();
    let mut reports = ReportsService::new(store.clone(), config_rx);
    if args.recordings.is_some() {
        // Links on the dashboard's own site: its media route serves them.
        reports = reports.with_media_base_url("/media");
    }
    if let Some(url) = &args.router {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?.connect_lazy();
        let token = dialtone_proto::internal::InternalToken::new(args.internal_token.as_deref())?;
        reports = reports.with_live(Arc::new(RemoteRouter(RouterClient::new(
            token.channel(channel),
        ))));
    }
    let mut tokens = TokenStore::new();
    if let Some(path) = &args.tokens {
        tokens.add_tokens_file(path)?;
    }
    let supervisor = args.data.join("supervisor.token");
    if supervisor.exists() {
        tokens.add_supervisor_file(&supervisor)?;
    }
    if tokens.is_empty() {
        tracing::warn!(
            "no credentials configured (--tokens): the dashboard and reports refuse everyone"
        );
    }
    let auth = Auth::new(
        tokens,
        AuthConfig {
            secure_cookie: args.secure_cookie,
            ..AuthConfig::default()
        },
    );
    let mut dashboard_state =
        DashboardState::new(reports.clone(), config_rx_dash.clone(), auth.clone());
    if let Some(root) = &args.recordings {
        dashboard_state = dashboard_state.with_media_root(root);
    }
    let dashboard = dashboard::router(dashboard_state);
    let grpc = tokio::net::TcpListener::bind(args.grpc).await?;
    let ops = tokio::net::TcpListener::bind(args.ops).await?;
    eprintln!(
        "dialtone reporter: gRPC on {}, ops on http://{}",
        grpc.local_addr()?,
        ops.local_addr()?
    );
    let readiness = Readiness::new();
    readiness.set_ready();
    let ops_shutdown = shutdown.clone();
    let ops_task = tokio::spawn(async move {
        axum::serve(
            telemetry::nodelay(ops),
            telemetry::ops_router(metrics, readiness)
                .merge(dashboard)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { ops_shutdown.fired().await })
        .await
    });
    if args.internal_token.is_none() {
        tracing::warn!(
            "no --internal-token (DIALTONE_INTERNAL_TOKEN): the internal services take loopback peers only"
        );
    }
    let services = Services {
        ingest: Some(ingestor.service()),
        reports: Some(reports),
        auth: Some(auth),
        internal_token: args.internal_token.clone(),
        ..Services::default()
    };
    let result = grpc_server::serve(grpc, services, shutdown.clone()).await;
    shutdown.fire();
    let _ = ops_task.await;
    let _ = ingest_task.await;
    let _ = webhooks_task.await;
    store.close().await;
    guard.shutdown_async().await?;
    result?;
    Ok(ExitCode::SUCCESS)
}
