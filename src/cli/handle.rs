//! `dialtone handle <client> --reason … [--note …] --by NAME`: process an unprocessed group
//! manually (`dialtone.v1.Reports/HandleGroup`), so the to-do list can be emptied of calls
//! that need no callback.

use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use dialtone_proto::codes;
use dialtone_proto::v1 as pb;
use tonic::Code;

use super::report::{self, Conn, Failure};

/// Flags of `dialtone handle`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints one line: the group closed. Exit 0 when handled, 1 when there \
                        is no open group for the client (or Dialtone cannot be reached), 2 on \
                        usage errors."
)]
pub struct HandleArgs {
    /// The client's number (E.164; `00…` and spaces are accepted): its open group is handled.
    #[arg(required_unless_present = "group")]
    pub client: Option<String>,
    /// Or the group's id (`group_id` in `dialtone report unprocessed --format json`); needed
    /// for anonymous callers.
    #[arg(long, env = "DIALTONE_HANDLE_GROUP", conflicts_with = "client")]
    pub group: Option<String>,
    /// Why the group needs no callback (`other` needs --note).
    #[arg(long, env = "DIALTONE_HANDLE_REASON",
          value_parser = PossibleValuesParser::new(codes::HANDLE_REASONS))]
    pub reason: String,
    /// Free text kept with the handling; required with `--reason other`.
    #[arg(long, env = "DIALTONE_HANDLE_NOTE", required_if_eq("reason", "other"))]
    pub note: Option<String>,
    /// Who handles it (kept with the group).
    #[arg(long, env = "DIALTONE_HANDLE_BY")]
    pub by: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// Runs `dialtone handle`.
pub async fn run(args: HandleArgs) -> anyhow::Result<ExitCode> {
    Ok(match handle(&args).await {
        Ok(line) => {
            report::out(&format!("{line}\n"));
            ExitCode::SUCCESS
        }
        Err(f) => f.exit("handle"),
    })
}

async fn handle(a: &HandleArgs) -> Result<String, Failure> {
    let note = a.note.as_deref().map(str::trim).unwrap_or_default();
    if a.reason == "other" && note.is_empty() {
        return Err(Failure::Usage(
            "--reason other needs --note TEXT: say what happened".into(),
        ));
    }
    let by = a.by.trim();
    if by.is_empty() {
        return Err(Failure::Usage("--by names who handles the group".into()));
    }
    let client = a.client.as_deref().map(report::phone).unwrap_or_default();
    let group_id = a.group.as_deref().map(str::trim).unwrap_or_default();
    let what = if client.is_empty() {
        format!("group {group_id}")
    } else {
        client.clone()
    };
    let request = pb::HandleGroupRequest {
        client: client.clone(),
        group_id: group_id.to_owned(),
        reason: a.reason.clone(),
        note: note.to_owned(),
        by: by.to_owned(),
    };
    let response = a
        .conn
        .connect()
        .await?
        .handle_group(request)
        .await
        .map_err(|status| {
            if status.code() == Code::NotFound {
                Failure::Server(format!(
                    "no unprocessed group for {what}: no missed call in the unprocessed window, \
                     or already processed (see `dialtone report unprocessed --all`)"
                ))
            } else {
                a.conn.failure(&status)
            }
        })?
        .into_inner();
    let Some(group) = response.group else {
        return Ok(format!("handled {what} as {}", a.reason));
    };
    Ok(describe(&group, &what))
}

/// `handled +380… (2 missed calls, 2026-11-23T09:00:00Z to …, last reason …): spam by ann at …`.
fn describe(g: &pb::UnprocessedGroup, what: &str) -> String {
    let time = |t: Option<&prost_types::Timestamp>| {
        report::instant(t).map_or_else(|| "?".to_owned(), |t| t.to_string())
    };
    let (first, last) = (
        time(g.first_missed_at.as_ref()),
        time(g.last_missed_at.as_ref()),
    );
    let span = if first == last {
        first
    } else {
        format!("{first} to {last}")
    };
    let calls = if g.missed_count == 1 {
        "1 missed call".to_owned()
    } else {
        format!("{} missed calls", g.missed_count)
    };
    let how = match &g.processed {
        Some(p) => {
            let note = if p.note.is_empty() {
                String::new()
            } else {
                format!(" ({:?})", p.note)
            };
            format!("{}{note} by {} at {}", p.reason, p.by, time(p.at.as_ref()))
        }
        None => "handled".to_owned(),
    };
    format!(
        "handled {what}: {calls}, {span}, last reason {}; closed as {how} (group {})",
        g.last_reason, g.group_id
    )
}
