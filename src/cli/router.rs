//! `dialtone router`: the routing service on its own (in a cluster, or for trying it locally).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use dialtone_reporter::auth::{Auth, AuthConfig, TokenStore};
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{CallControlService, RouterCore, RouterService, SystemClock};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::ingest_client::IngestClient;

use crate::agent_events;
use crate::cluster_config;
use crate::grpc_server::{self, Services};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, LogFormat, Metrics, Readiness, TelemetryConfig};

/// Flags of `dialtone router`.
#[derive(Debug, clap::Args)]
pub struct RouterArgs {
    /// The manifest folder (standalone) or the mounted configuration snapshot (cluster).
    #[arg(long, env = "DIALTONE_CONFIG", default_value = "examples/demo")]
    pub config: PathBuf,
    /// In a cluster: the snapshot ConfigMap/Secret watched through the API (`<name>` in
    /// DIALTONE_NAMESPACE, `<ns>/<name>` or `configmap:<ns>/<name>`); unset: the --config folder.
    #[arg(long, env = "DIALTONE_SNAPSHOT")]
    pub snapshot: Option<String>,
    /// The namespace the snapshot lives in (the pod's, from the downward API).
    #[arg(long, env = "DIALTONE_NAMESPACE")]
    pub namespace: Option<String>,
    /// gRPC listen address.
    #[arg(long, env = "DIALTONE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc: SocketAddr,
    /// Ops listen address: `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "DIALTONE_OPS_ADDR", default_value = "127.0.0.1:9090")]
    pub ops: SocketAddr,
    /// The reporter's ingestion endpoint: every agent state change is sent there (reports count
    /// agents available per hour from them). Left out: not sent.
    #[arg(long, env = "DIALTONE_REPORTER_URL")]
    pub reporter: Option<String>,
    /// Where agents' choices, registrations and client owners are kept across restarts.
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Credentials for `dialtone.v1.CallControl` (callbacks, hang-ups): a file of
    /// `name:role:token` lines, e.g. a mounted Secret's `tokens` key. Without it CallControl
    /// is not served (the router's other service is for media nodes only).
    #[arg(long, env = "DIALTONE_TOKENS_FILE")]
    pub tokens: Option<PathBuf>,
    /// The internal token Dialtone's components show each other (in a cluster, from the
    /// CallCenter's Secret). Without it the internal services take loopback peers only.
    #[arg(long, env = "DIALTONE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// Log level (an `EnvFilter` directive); `RUST_LOG` overrides it.
    #[arg(long, env = "DIALTONE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: auto (JSON unless stderr is a terminal), json or text.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// Runs the router until SIGTERM or Ctrl-C.
pub async fn run(args: RouterArgs) -> anyhow::Result<ExitCode> {
    let guard = telemetry::init(&TelemetryConfig {
        service_name: "dialtone-router".into(),
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
            eprintln!("dialtone router: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (config_rx, _status) = match cluster_config::open(&source, shutdown.receiver()).await {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("dialtone router: {source} has errors; fix them and start again");
            return Ok(ExitCode::FAILURE);
        }
    };
    let state_changes = match &args.reporter {
        Some(url) => {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())?.connect_lazy();
            let token =
                dialtone_proto::internal::InternalToken::new(args.internal_token.as_deref())?;
            let client = IngestClient::new(token.channel(channel));
            let deliver: agent_events::Deliver = Box::new(move |batch| {
                let mut client = client.clone();
                Box::pin(async move {
                    client
                        .publish_batch(pb::IngestBatch { events: batch })
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            });
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(agent_events::forward(
                rx,
                agent_events::source_name(
                    &std::env::var("DIALTONE_POD_NAME").unwrap_or_else(|_| "router".to_owned()),
                ),
                deliver,
                shutdown.receiver(),
            ));
            Some(tx)
        }
        None => {
            tracing::warn!("no --reporter: agent state changes are not recorded for reports");
            None
        }
    };
    let core = RouterCore::with_state_file(
        config_rx,
        Arc::new(SystemClock),
        Arc::new(HttpOwnerSource::new()?),
        state_changes,
        args.data.join("router-state.json"),
    );
    tokio::spawn(core.clone().run_timers(shutdown.receiver()));
    tokio::spawn(core.clone().run_queue_callbacks(shutdown.receiver()));
    let persister = tokio::spawn(core.clone().run_persister(shutdown.receiver()));

    let readiness = Readiness::new();
    let metrics = Metrics::new();
    let ops = tokio::net::TcpListener::bind(args.ops).await?;
    let grpc = tokio::net::TcpListener::bind(args.grpc).await?;
    eprintln!(
        "dialtone router: gRPC on {}, ops on http://{}",
        grpc.local_addr()?,
        ops.local_addr()?
    );
    let ops_shutdown = shutdown.clone();
    // Ready as soon as the listeners are bound: the configuration is already loaded.
    readiness.set_ready();
    let ops_task = tokio::spawn(async move {
        axum::serve(ops, telemetry::ops_router(metrics, readiness))
            .with_graceful_shutdown(async move { ops_shutdown.fired().await })
            .await
    });
    // Client-facing call control only with credentials to check.
    let (call_control, auth) = match &args.tokens {
        Some(path) => {
            let mut tokens = TokenStore::new();
            tokens.add_tokens_file(path)?;
            let auth = Auth::new(tokens, AuthConfig::default());
            (Some(CallControlService::new(core.clone())), Some(auth))
        }
        None => {
            tracing::info!("no --tokens: CallControl (callbacks) is not served by this router");
            (None, None)
        }
    };
    if args.internal_token.is_none() {
        tracing::warn!(
            "no --internal-token (DIALTONE_INTERNAL_TOKEN): the internal services take loopback peers only"
        );
    }
    let services = Services {
        router: Some(RouterService::new(core)),
        call_control,
        auth,
        internal_token: args.internal_token.clone(),
        ..Services::default()
    };
    let result = grpc_server::serve(grpc, services, shutdown.clone()).await;
    shutdown.fire();
    let _ = ops_task.await;
    let _ = persister.await;
    guard.shutdown_async().await?;
    result?;
    Ok(ExitCode::SUCCESS)
}
