//! `dialtone operator`: the Kubernetes controller (leader-elected), with its ops endpoints.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr as _;

use dialtone_operator::{OperatorOptions, SipServiceType};

use crate::shutdown::Shutdown;
use crate::telemetry::{self, LogFormat, Metrics, Readiness, TelemetryConfig};

/// Flags of `dialtone operator` (the Helm chart sets them through the environment).
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Namespaces to reconcile, comma-separated; empty: all.
    #[arg(long, env = "DIALTONE_WATCH_NAMESPACES", default_value = "")]
    pub watch_namespaces: String,
    /// The operator's own namespace (where its leader-election Lease lives).
    #[arg(
        long,
        env = "DIALTONE_OPERATOR_NAMESPACE",
        default_value = "dialtone-system"
    )]
    pub operator_namespace: String,
    /// This replica's name, the Lease holder identity.
    #[arg(long, env = "DIALTONE_POD_NAME", default_value = "dialtone-operator")]
    pub pod_name: String,
    /// The leader-election Lease.
    #[arg(
        long,
        env = "DIALTONE_LEADER_LEASE",
        default_value = "dialtone-operator-leader"
    )]
    pub lease: String,
    /// The image the components run.
    #[arg(long, env = "DIALTONE_IMAGE")]
    pub image: Option<String>,
    /// The components' image pull policy.
    #[arg(
        long,
        env = "DIALTONE_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub image_pull_policy: String,
    /// Default type of the SIP Services: LoadBalancer, NodePort or ClusterIP.
    #[arg(
        long,
        env = "DIALTONE_SIP_SERVICE_TYPE",
        default_value = "LoadBalancer"
    )]
    pub sip_service_type: String,
    /// Ops address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "DIALTONE_OPS_ADDR", default_value = "0.0.0.0:9090")]
    pub ops: SocketAddr,
    /// Log level; `RUST_LOG` overrides it (and is passed to the components).
    #[arg(long, env = "DIALTONE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: auto, json or text.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// Runs the operator until SIGTERM (releasing the Lease so a standby takes over at once).
pub async fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    let guard = telemetry::init(&TelemetryConfig {
        service_name: "dialtone-operator".into(),
        log_level: args.log_level.clone(),
        log_format: args.log_format,
    })?;
    let sip_service_type = match SipServiceType::from_str(&args.sip_service_type) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dialtone operator: --sip-service-type: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let defaults = OperatorOptions::default();
    let opts = OperatorOptions {
        watch_namespaces: args
            .watch_namespaces
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        operator_namespace: args.operator_namespace,
        pod_name: args.pod_name,
        lease_name: args.lease,
        image: args.image.unwrap_or(defaults.image.clone()),
        image_pull_policy: args.image_pull_policy,
        sip_service_type,
        log_level: args.log_level,
        otlp_endpoint: std::env::var(telemetry::OTLP_ENDPOINT_ENV)
            .ok()
            .filter(|s| !s.is_empty()),
        ..defaults
    };
    let shutdown = Shutdown::new();
    shutdown.fire_on_signals();
    // A standby replica is healthy and ready: it is waiting for the Lease, as designed.
    let readiness = Readiness::new();
    readiness.set_ready();
    let ops = tokio::net::TcpListener::bind(args.ops).await?;
    eprintln!("dialtone operator: ops on http://{}", ops.local_addr()?);
    let ops_shutdown = shutdown.clone();
    let ops_task = tokio::spawn(async move {
        axum::serve(ops, telemetry::ops_router(Metrics::new(), readiness))
            .with_graceful_shutdown(async move { ops_shutdown.fired().await })
            .await
    });
    let result = dialtone_operator::run(opts, shutdown.receiver()).await;
    shutdown.fire();
    let _ = ops_task.await;
    guard.shutdown_async().await?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("dialtone operator: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
