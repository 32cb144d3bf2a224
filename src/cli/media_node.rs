//! `dialtone media-node`: the SIP B2BUA and RTP relay on its own (in a cluster).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dialtone_media_node::node::{self, Health, MediaNode, NodeConfig, SpoolSink};
use dialtone_media_node::spool::{self, Spool};

use crate::cluster_config;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, LogFormat, TelemetryConfig};

/// Flags of `dialtone media-node` (the operator sets them through the environment).
#[derive(Debug, clap::Args)]
pub struct MediaNodeArgs {
    /// The configuration snapshot folder.
    #[arg(long, env = "DIALTONE_CONFIG", default_value = "examples/demo")]
    pub config: PathBuf,
    /// In a cluster: the snapshot ConfigMap/Secret watched through the API (`<name>` in
    /// DIALTONE_NAMESPACE, `<ns>/<name>` or `configmap:<ns>/<name>`); unset: the --config folder.
    #[arg(long, env = "DIALTONE_SNAPSHOT")]
    pub snapshot: Option<String>,
    /// The namespace the snapshot lives in (the pod's, from the downward API).
    #[arg(long, env = "DIALTONE_NAMESPACE")]
    pub namespace: Option<String>,
    /// SIP address (UDP and TCP).
    #[arg(long, env = "DIALTONE_SIP_ADDR", default_value = "0.0.0.0:5060")]
    pub sip: SocketAddr,
    /// The address put in Contact, Via and SDP (the pod or node IP).
    #[arg(long, env = "DIALTONE_ADVERTISE_ADDR")]
    pub advertise: Option<IpAddr>,
    /// RTP ports, `low-high`.
    #[arg(long, env = "DIALTONE_RTP_PORTS", default_value = "20000-30000")]
    pub rtp_ports: String,
    /// The router.
    #[arg(
        long,
        env = "DIALTONE_ROUTER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub router: String,
    /// The reporter's ingestion endpoint.
    #[arg(
        long,
        env = "DIALTONE_REPORTER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub reporter: String,
    /// The prompts folder (`<name>.wav`; the mounted prompts ConfigMap in a cluster).
    #[arg(
        long,
        env = "DIALTONE_PROMPTS",
        default_value = "examples/demo/prompts"
    )]
    pub prompts: PathBuf,
    /// Where voicemails and call recordings are written.
    #[arg(long, env = "DIALTONE_RECORDINGS", default_value = "./data/recordings")]
    pub recordings: PathBuf,
    /// Where undelivered call events wait (survives restarts).
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Seconds a draining node waits for its calls.
    #[arg(long, env = "DIALTONE_DRAIN_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub drain_timeout: u64,
    /// Shared secret for digest nonces, so any node verifies another's (hex or text).
    #[arg(long, env = "DIALTONE_NONCE_SECRET")]
    pub nonce_secret: Option<String>,
    /// Ops address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "DIALTONE_OPS_ADDR", default_value = "0.0.0.0:9090")]
    pub ops: SocketAddr,
    /// The internal token Dialtone's components show each other (in a cluster, from the
    /// CallCenter's Secret). Without it the internal services take loopback peers only.
    #[arg(long, env = "DIALTONE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// Log level; `RUST_LOG` overrides it.
    #[arg(long, env = "DIALTONE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: auto, json or text.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// Runs the node until SIGTERM, then drains: new INVITEs get 503, active calls finish.
pub async fn run(args: MediaNodeArgs) -> anyhow::Result<ExitCode> {
    let guard = telemetry::init(&TelemetryConfig {
        service_name: "dialtone-media-node".into(),
        log_level: args.log_level.clone(),
        log_format: args.log_format,
    })?;
    let Some((lo, hi)) = args
        .rtp_ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
    else {
        eprintln!("dialtone media-node: --rtp-ports must be low-high, e.g. 20000-30000");
        return Ok(ExitCode::from(2));
    };
    let shutdown = Shutdown::new();
    shutdown.fire_on_signals();
    let source = match cluster_config::ConfigSource::select(
        &args.config,
        args.snapshot.as_deref(),
        args.namespace.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dialtone media-node: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (config_rx, _status) = match cluster_config::open(&source, shutdown.receiver()).await {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("dialtone media-node: {source} has errors; fix them and start again");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut cfg = NodeConfig::new(
        std::env::var("DIALTONE_POD_NAME")
            .unwrap_or_else(|_| format!("node-{}", std::process::id())),
        args.router.clone(),
    );
    cfg.udp = vec![args.sip];
    cfg.tcp = vec![args.sip];
    cfg.advertised_ip = args.advertise;
    cfg.rtp_ports = (lo, hi);
    cfg.drain_timeout = Duration::from_secs(args.drain_timeout);
    cfg.prompts_dir = Some(args.prompts.clone());
    cfg.recordings_dir = Some(args.recordings.clone());
    if let Some(secret) = &args.nonce_secret {
        cfg.registrar.nonce_secret = secret.as_bytes().to_vec();
    } else {
        tracing::warn!("no DIALTONE_NONCE_SECRET: digest nonces verify on this node only");
    }
    std::fs::create_dir_all(&args.data)?;
    let spool = Arc::new(std::sync::Mutex::new(Spool::open(args.data.join("spool"))?));
    let notify = Arc::new(tokio::sync::Notify::new());
    let deliver = tokio::spawn(spool::deliver_with(
        spool::DeliverConfig {
            internal_token: dialtone_proto::internal::InternalToken::new(
                args.internal_token.as_deref(),
            )?,
            ..spool::DeliverConfig::default()
        },
        spool.clone(),
        args.reporter.clone(),
        notify.clone(),
        shutdown.receiver(),
    ));
    let health = Health::standalone();
    let ops = tokio::net::TcpListener::bind(args.ops).await?;
    let routes = health.routes();
    let ops_shutdown = shutdown.clone();
    let ops_task = tokio::spawn(async move {
        axum::serve(ops, routes)
            .with_graceful_shutdown(async move { ops_shutdown.fired().await })
            .await
    });
    let node = MediaNode::start(
        cfg,
        config_rx,
        node::connect_router(&args.router, args.internal_token.as_deref())?,
        Arc::new(SpoolSink::new(spool, notify)),
        health,
        shutdown.receiver(),
    )
    .await?;
    eprintln!(
        "dialtone media-node: SIP on {:?} (UDP) and {:?} (TCP)",
        node.udp_addrs(),
        node.tcp_addrs()
    );
    let result = node.join().await;
    shutdown.fire();
    let _ = ops_task.await;
    let _ = deliver.await;
    guard.shutdown_async().await?;
    result?;
    Ok(ExitCode::SUCCESS)
}
