//! `dialtone route NUMBER --caller NUMBER --at TIME`: the plan the router would execute, so an
//! ops team can check a manifest change before a client hits it.

use std::path::PathBuf;
use std::process::ExitCode;

use dialtone_proto::v1 as pb;
use dialtone_router::plan::{self, AgentAvailability, AgentState, PlanRequest};

use super::time::TimeArg;
use crate::config_watch;

/// Flags of `dialtone route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// The dialled number (E.164; `00…` and spaces are accepted).
    pub number: String,
    /// The caller's number; left out: anonymous.
    #[arg(long, env = "DIALTONE_CALLER")]
    pub caller: Option<String>,
    /// The instant: RFC 3339 or a date (midnight UTC). Default: now.
    #[arg(long, env = "DIALTONE_AT")]
    pub at: Option<String>,
    /// Plan against this manifest folder instead of a running router (to try a change before
    /// applying it); agents' live availability is then unknown and taken as available.
    #[arg(long, env = "DIALTONE_ROUTE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The running Dialtone to ask.
    #[arg(
        long,
        env = "DIALTONE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// The internal token, to ask a router in a cluster (the router is an internal service);
    /// not needed on the machine that runs `dialtone up`.
    #[arg(long, env = "DIALTONE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
}

/// Prints the plan; exit 0 when the call would be planned, 1 when rejected (blocked, unknown
/// number, no forwarding scheme), 2 on usage errors.
pub async fn run(args: RouteArgs) -> anyhow::Result<ExitCode> {
    let at = match args.at.as_deref().map(TimeArg::parse).transpose() {
        Ok(at) => at.map(TimeArg::start),
        Err(e) => {
            eprintln!("dialtone route: --at: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(dir) = &args.config {
        let snapshot = match config_watch::load_dir(dir) {
            Ok(s) => s,
            Err(failure) => {
                for p in &failure.problems {
                    println!("{p}");
                }
                eprintln!("dialtone route: {} has errors", dir.display());
                return Ok(ExitCode::FAILURE);
            }
        };
        let req = PlanRequest {
            number: args.number.clone(),
            caller: args.caller.clone(),
            at: at.unwrap_or_else(jiff::Timestamp::now),
        };
        let assume = |_: &str| AgentAvailability::from_state(AgentState::Available);
        let outcome = plan::plan_call(&snapshot, &req, &assume);
        println!(
            "(checked against {}; live availability unknown, agents taken as available)",
            dir.display()
        );
        print!("{}", plan::explain(&outcome));
        return Ok(if matches!(outcome, plan::PlanOutcome::Plan(_)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let token = match dialtone_proto::internal::InternalToken::new(args.internal_token.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dialtone route: --internal-token: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let connected = match tonic::transport::Endpoint::from_shared(args.server.clone()) {
        Ok(endpoint) => endpoint.connect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut client = match connected {
        Ok(channel) => pb::router_client::RouterClient::new(token.channel(channel)),
        Err(e) => {
            eprintln!(
                "dialtone route: cannot reach Dialtone at {}: {e}. Start it (`dialtone up`), pass \
                 --server, or check a folder offline with --config DIR",
                args.server
            );
            return Ok(ExitCode::from(2));
        }
    };
    let resp = client
        .explain_route(pb::ExplainRouteRequest {
            number: args.number.clone(),
            caller: args.caller.clone().unwrap_or_default(),
            at: at.map(|t| prost_types::Timestamp {
                seconds: t.as_second(),
                nanos: t.subsec_nanosecond(),
            }),
        })
        .await?
        .into_inner();
    for line in &resp.notes {
        println!("{line}");
    }
    let planned = matches!(
        resp.result.and_then(|r| r.outcome),
        Some(pb::plan_call_response::Outcome::Plan(_))
    );
    Ok(if planned {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
