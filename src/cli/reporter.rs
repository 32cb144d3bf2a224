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
use tokio::sync::watch;

use crate::config_watch::{self, ReloadStatus};
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
    let since = config_watch::fingerprint(&args.config);
    let snapshot = match config_watch::load_dir(&args.config) {
        Ok(s) => s,
        Err(failure) => {
            for p in &failure.problems {
                eprintln!("{p}");
            }
            eprintln!("dialtone reporter: {} has errors", args.config.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let shutdown = Shutdown::new();
    shutdown.fire_on_signals();
    let (config_tx, config_rx) = watch::channel(snapshot);
    let (status_tx, _status) = watch::channel(ReloadStatus::default());
    tokio::spawn(config_watch::watch_dir(
        args.config.clone(),
        since,
        Duration::from_secs(1),
        config_tx,
        status_tx,
        shutdown.receiver(),
    ));
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
        dialtone_reporter::webhooks::Options::default(),
    );
    metrics.with_registry(|r| dispatcher.metrics().register(r));
    let webhooks_task = tokio::spawn(dispatcher.run(
        dialtone_reporter::webhooks::http_client()?,
        shutdown.receiver(),
    ));
    let config_rx_dash = config_rx.clone();
    let mut reports = ReportsService::new(store.clone(), config_rx);
    if let Some(url) = &args.router {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?.connect_lazy();
        reports = reports.with_live(Arc::new(RemoteRouter(RouterClient::new(channel))));
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
    let dashboard = dashboard::router(DashboardState::new(
        reports.clone(),
        config_rx_dash.clone(),
        auth.clone(),
    ));
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
            ops,
            telemetry::ops_router(metrics, readiness)
                .merge(dashboard)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { ops_shutdown.fired().await })
        .await
    });
    let services = Services {
        ingest: Some(ingestor.service()),
        reports: Some(reports),
        auth: Some(auth),
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
