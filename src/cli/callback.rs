//! `dialtone callback --agent NAME --to NUMBER`: ring the agent, then dial the client through
//! the carriers (`dialtone.v1.CallControl/OrderCallback`). The client sees the number they
//! called before; the attempt counts in the reports like any call back.

use std::process::ExitCode;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_control_client::CallControlClient;
use tonic::Code;

use super::report::{self, Conn, Failure};

/// Flags of `dialtone callback`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints one line once a media node has taken the order: the callback's id, \
                  the call's id and the caller ID shown. Follow the call with `dialtone report \
                  calls`. Exit 0 when ordered, 1 when Dialtone refused or cannot be reached \
                  (agent busy, no media node…), 2 on usage errors."
)]
pub struct CallbackArgs {
    /// The agent to ring first (the Agent's name).
    #[arg(long, env = "DIALTONE_CALLBACK_AGENT")]
    pub agent: String,
    /// The client's number (E.164; `00…` and spaces are accepted).
    #[arg(long, env = "DIALTONE_CALLBACK_TO")]
    pub to: String,
    /// The caller ID to show the client: one of our numbers. Default: the number the client
    /// last called.
    #[arg(long, env = "DIALTONE_CALLBACK_CALLER_ID")]
    pub caller_id: Option<String>,
    /// How long the agent's phones ring, in seconds, before the callback is given up.
    #[arg(long, env = "DIALTONE_CALLBACK_RING_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub ring_seconds: u32,
    /// Who orders it (default: the credential's name).
    #[arg(long, env = "DIALTONE_CALLBACK_BY")]
    pub by: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// Runs `dialtone callback`.
pub async fn run(args: CallbackArgs) -> anyhow::Result<ExitCode> {
    Ok(match order(&args).await {
        Ok(line) => {
            report::out(&format!("{line}\n"));
            ExitCode::SUCCESS
        }
        Err(f) => f.exit("callback"),
    })
}

async fn order(a: &CallbackArgs) -> Result<String, Failure> {
    let agent = a.agent.trim();
    if agent.is_empty() {
        return Err(Failure::Usage(
            "--agent names the Agent to ring first".into(),
        ));
    }
    let to = report::phone(&a.to);
    let caller_id = a
        .caller_id
        .as_deref()
        .map(report::phone)
        .unwrap_or_default();
    let request = pb::OrderCallbackRequest {
        agent: agent.to_owned(),
        to: to.clone(),
        caller_id,
        agent_ring_timeout: Some(prost_types::Duration {
            seconds: i64::from(a.ring_seconds),
            nanos: 0,
        }),
        ordered_by: a.by.clone().unwrap_or_default(),
    };
    let (channel, bearer) = a.conn.channel().await?;
    let response = CallControlClient::with_interceptor(channel, bearer)
        .order_callback(request)
        .await
        .map_err(|status| match status.code() {
            Code::Unimplemented => Failure::Server(
                "the server does not take callbacks (dialtone.v1.CallControl): point --server at \
                 the router, or at `dialtone up`"
                    .into(),
            ),
            Code::NotFound | Code::FailedPrecondition => {
                Failure::Server(status.message().to_owned())
            }
            _ => a.conn.failure(&status),
        })?
        .into_inner();
    Ok(format!(
        "callback {} ordered: ringing {agent}, then {to} from {} (call {} on {})",
        response.callback_id, response.caller_id, response.call_id, response.node_id
    ))
}
