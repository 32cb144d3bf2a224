//! `dialtone up`: standalone mode — the whole platform in one process on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::shutdown::Shutdown;
use crate::standalone::{self, Settings, StartError};
use crate::telemetry::{self, LogFormat, TelemetryConfig};

/// Flags of `dialtone up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The manifest folder (re-read when it changes; errors keep the last good configuration).
    #[arg(long, env = "DIALTONE_CONFIG", default_value = "examples/demo")]
    pub config: PathBuf,
    /// The data folder: SQLite database, ingestion journal, router state, supervisor.token.
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// PostgreSQL URL for call records instead of SQLite under --data.
    #[arg(long, env = "DIALTONE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// SIP address (UDP and TCP) of the media node.
    #[arg(long, env = "DIALTONE_SIP_ADDR", default_value = "0.0.0.0:5060")]
    pub sip: SocketAddr,
    /// gRPC address (routing, ingestion, reports; health and reflection).
    #[arg(long, env = "DIALTONE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc: SocketAddr,
    /// HTTP address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "DIALTONE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Log level (an `EnvFilter` directive); `RUST_LOG` overrides it.
    #[arg(long, env = "DIALTONE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: auto, json or text.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// Runs until SIGTERM or Ctrl-C. Refuses to start on manifest errors, printing every one.
pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let guard = telemetry::init(&TelemetryConfig {
        service_name: "dialtone".into(),
        log_level: args.log_level.clone(),
        log_format: args.log_format,
    })?;
    let shutdown = Shutdown::new();
    shutdown.fire_on_signals();
    let settings = Settings {
        config: args.config.clone(),
        data: args.data.clone(),
        database_url: args.database_url.clone(),
        grpc: args.grpc,
        http: args.http,
        sip: Some(args.sip),
    };
    let running = match standalone::start(&settings, shutdown.clone()).await {
        Ok(r) => r,
        Err(StartError::Config(failure)) => {
            for p in &failure.problems {
                eprintln!("{p}");
            }
            eprintln!(
                "dialtone up: {} has errors; fix them (`dialtone validate {}`) and start again",
                args.config.display(),
                args.config.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!("dialtone up: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("dialtone is up");
    println!("  manifests  {} (re-read on change)", args.config.display());
    println!("  data       {}", args.data.display());
    for a in &running.sip_udp {
        println!("  SIP/UDP    {a}");
    }
    for a in &running.sip_tcp {
        println!("  SIP/TCP    {a}");
    }
    println!("  gRPC       {}", running.grpc);
    println!("  HTTP       http://{}", running.http);
    println!("  token      {}", running.token_file.display());
    shutdown.fired().await;
    running.join().await;
    guard.shutdown_async().await?;
    Ok(ExitCode::SUCCESS)
}
