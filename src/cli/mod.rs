//! The `dialtone` command line: flags (each also an environment variable) and subcommands.

mod callback;
mod handle;
mod media_node;
mod operator;
mod output;
mod report;
mod reporter;
mod route;
mod router;
pub mod time;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Dialtone: a Kubernetes-native call center that loses no call without a trace.
#[derive(Debug, Parser)]
#[command(name = "dialtone", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a folder of manifests: prints every problem as `path:line: Kind/name: message`.
    Validate {
        /// The folder with the manifests (and `prompts/*.wav`).
        #[arg(env = "DIALTONE_CONFIG", default_value = "examples/demo")]
        dir: PathBuf,
    },
    /// Show the plan the router would execute for a call: schedule state and why, scheme,
    /// steps with the concrete agents and their availability, backup.
    Route(route::RouteArgs),
    /// Run the router (routing, presence, queues) on its own.
    Router(router::RouterArgs),
    /// Run a media node (SIP B2BUA, RTP relay) on its own.
    MediaNode(media_node::MediaNodeArgs),
    /// Run the Kubernetes operator (validates the resources, reconciles them into workloads).
    Operator(operator::OperatorArgs),
    /// Run the reporter (call records, reports) on its own.
    Reporter(reporter::ReporterArgs),
    /// Reports from a running Dialtone (over gRPC) as a table, JSON or CSV.
    Report(report::ReportArgs),
    /// Process an unprocessed group manually: the client needs no callback (spam, wrong
    /// number, resolved elsewhere, duplicate, or other with a note).
    Handle(handle::HandleArgs),
    /// Order a callback: ring an agent, then dial the client through the carriers, showing
    /// the number the client called.
    Callback(callback::CallbackArgs),
    /// Standalone mode: the whole platform in one process, on the manifests of a folder.
    Up(up::UpArgs),
    /// Standalone mode on the demo manifests, driven by simulated carriers and agents over
    /// real SIP, then the missed-calls report, the to-do list and the agents table.
    Demo {
        /// The demo manifests.
        #[arg(long, env = "DIALTONE_DEMO_CONFIG", default_value = "examples/demo")]
        config: PathBuf,
    },
    /// Print the CustomResourceDefinitions, or check or write the `crds/` folder.
    Crds {
        /// Compare the generated CRDs with this folder; exit 1 on any difference.
        #[arg(long, env = "DIALTONE_CRDS_CHECK", conflicts_with = "write")]
        check: Option<PathBuf>,
        /// Write the generated CRDs into this folder.
        #[arg(long, env = "DIALTONE_CRDS_WRITE")]
        write: Option<PathBuf>,
    },
}

/// Runs a parsed command line; the exit code follows the command's outcome.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { dir } => validate::run(&dir),
        Command::Crds { check, write } => crds(check, write),
        Command::Route(args) => route::run(args).await,
        Command::Router(args) => router::run(args).await,
        Command::Reporter(args) => reporter::run(args).await,
        Command::Operator(args) => operator::run(args).await,
        Command::MediaNode(args) => media_node::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Handle(args) => handle::run(args).await,
        Command::Callback(args) => callback::run(args).await,
        Command::Up(args) => up::run(args).await,
        Command::Demo { config } => {
            crate::demo::run(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn crds(check: Option<PathBuf>, write: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if let Some(dir) = check {
        let drift = crate::crds::drift(&dir)?;
        if drift.is_empty() {
            eprintln!("{}: CRDs are up to date", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        for line in &drift {
            println!("{line}");
        }
        eprintln!(
            "CRDs differ from the types: run `dialtone crds --write {}`",
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(dir) = write {
        for path in crate::crds::write(&dir)? {
            eprintln!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", crate::crds::render_stream()?);
    Ok(ExitCode::SUCCESS)
}
