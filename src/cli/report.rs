//! `dialtone report <name>`: the reports of a running Dialtone, asked over gRPC
//! (`dialtone.v1.Reports`), printed as a table, JSON or CSV (see [`super::output`]).
//!
//! Each report maps its proto rows to JSON objects once (snake_case keys, times RFC 3339,
//! durations in seconds, rates from 0 to 1, raw codes); the formatter does the rest. Stdout
//! carries only the report; problems go to stderr. Exit codes: 0 success, 2 usage errors (a
//! bad time, a filter the server refuses), 1 when Dialtone cannot be reached or answers an
//! error.
//!
//! The connection pieces ([`Conn`], [`Failure`]) serve `dialtone handle` too.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use dialtone_proto::codes;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_client::ReportsClient;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::output::{self, Column, Format, Row};
use super::time::TimeArg;

/// Flags of `dialtone report`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Periods: --from/--to take RFC 3339 (2026-11-23T09:00:00Z) or a date \
    (2026-11-23, the whole day in UTC). Without --from a report covers today from 00:00 UTC \
    (the heat map: the last 7 days; the unprocessed list: the CallCenter's \
    unprocessedWindowDays).\n\
    Output: --format table (default), json (an array of objects, snake_case keys, times RFC \
    3339, durations in seconds, rates 0 to 1) or csv (a header row). Reason and status codes \
    are printed raw.\n\
    Exit: 0 success, 1 Dialtone unreachable or answering an error, 2 usage errors."
)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub report: Report,
}

/// The reports.
#[derive(Debug, clap::Subcommand)]
pub enum Report {
    /// Every missed call with its reason code, newest first.
    Missed(MissedArgs),
    /// The to-do list: missed calls grouped by client, not processed yet (or, with
    /// --processed, how each group was closed, by whom and when).
    Unprocessed(UnprocessedArgs),
    /// Per-agent figures (offered, answered, missed, declined, miss rate, time to answer,
    /// short calls, missed without callback) with a team total.
    Agents(AgentsArgs),
    /// Callback discipline: time to the first callback per missed group, within the SLA,
    /// late or never (--per-agent: per agent, with a team total).
    Callbacks(CallbacksArgs),
    /// The call log with statuses (missed, called_back, answered, ...), newest first.
    Calls(CallsArgs),
    /// Inbound and missed calls per weekday and hour, against open hours and agents available
    /// (default period: the last 7 days).
    Heatmap(HeatmapArgs),
    /// The live board now: every agent's state and since when (--queues: the queues).
    Live(LiveArgs),
    /// The agents with the highest miss rate.
    TopMissers(TopMissersArgs),
}

// ---- flags shared by the reports ----

/// Where Dialtone runs and the credential to show it.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The running Dialtone to ask (gRPC).
    #[arg(
        long,
        env = "DIALTONE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Bearer token; without it, `supervisor.token` in --data is used when it exists.
    #[arg(long, env = "DIALTONE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The data folder of a Dialtone on this machine (for its `supervisor.token`).
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    data: PathBuf,
}

/// The period of a report.
#[derive(Debug, Clone, clap::Args)]
pub struct Period {
    /// Start of the period: RFC 3339 (2026-11-23T09:00:00Z) or a date (2026-11-23: from its
    /// 00:00 UTC). Default: 00:00 UTC of the day the period ends in (today without --to);
    /// heatmap: 7 days before the end.
    #[arg(long, env = "DIALTONE_REPORT_FROM")]
    from: Option<String>,
    /// End of the period, exclusive: RFC 3339 or a date (the whole day included). Default:
    /// now.
    #[arg(long, env = "DIALTONE_REPORT_TO")]
    to: Option<String>,
}

/// Output format and connection.
#[derive(Debug, Clone, clap::Args)]
pub struct Out {
    /// Output: an aligned table, JSON (an array of objects, snake_case keys) or CSV (with a
    /// header row).
    #[arg(long, env = "DIALTONE_FORMAT", value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    conn: Conn,
}

/// `--number`.
#[derive(Debug, Clone, clap::Args)]
pub struct NumberArg {
    /// Only calls to this number (E.164, or the PhoneNumber's name).
    #[arg(long, env = "DIALTONE_REPORT_NUMBER")]
    number: Option<String>,
}

/// `--agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArg {
    /// Only rows concerning this agent (the Agent's name).
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    agent: Option<String>,
}

/// `--caller`.
#[derive(Debug, Clone, clap::Args)]
pub struct CallerArg {
    /// Only calls from (or callbacks to) this client number (E.164).
    #[arg(long, env = "DIALTONE_REPORT_CALLER")]
    caller: Option<String>,
}

/// `--reason`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArg {
    /// Only this missed reason.
    #[arg(long, env = "DIALTONE_REPORT_REASON",
          value_parser = PossibleValuesParser::new(codes::MISSED_REASONS))]
    reason: Option<String>,
}

/// `--limit`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArg {
    /// At most this many rows (default: the server's, 1000).
    #[arg(long, env = "DIALTONE_REPORT_LIMIT")]
    limit: Option<u32>,
}

// ---- each report's flags ----

/// Flags of `dialtone report missed`.
#[derive(Debug, Clone, clap::Args)]
pub struct MissedArgs {
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    /// Only calls that alerted this agent.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    agent: Option<String>,
    /// Only calls with this status: missed (no callback attempt yet) or called_back.
    #[arg(long, env = "DIALTONE_REPORT_STATUS",
          value_parser = PossibleValuesParser::new(["missed", "called_back"]))]
    status: Option<String>,
    #[command(flatten)]
    reason: ReasonArg,
    #[command(flatten)]
    caller: CallerArg,
    #[command(flatten)]
    limit: LimitArg,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report unprocessed`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Without --from/--to the list covers the CallCenter's unprocessedWindowDays \
                  up to now; --from/--to filter the groups by their last miss."
)]
pub struct UnprocessedArgs {
    /// Show the groups already processed, with how, by whom and when.
    #[arg(long, env = "DIALTONE_REPORT_PROCESSED", conflicts_with = "all")]
    processed: bool,
    /// Show open and processed groups.
    #[arg(long, env = "DIALTONE_REPORT_ALL")]
    all: bool,
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    /// Only groups this agent missed.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    agent: Option<String>,
    /// Only groups whose last miss had this reason.
    #[arg(long, env = "DIALTONE_REPORT_REASON",
          value_parser = PossibleValuesParser::new(codes::MISSED_REASONS))]
    reason: Option<String>,
    #[command(flatten)]
    caller: CallerArg,
    #[command(flatten)]
    limit: LimitArg,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report agents`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    #[command(flatten)]
    agent: AgentArg,
    #[command(flatten)]
    limit: LimitArg,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report callbacks`.
#[derive(Debug, Clone, clap::Args)]
pub struct CallbacksArgs {
    /// One row per agent (called back, within the SLA, late, never) with a team total,
    /// instead of one row per missed group.
    #[arg(long, env = "DIALTONE_REPORT_PER_AGENT")]
    per_agent: bool,
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    /// Only groups this agent called back first, or missed and nobody called back.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    agent: Option<String>,
    /// Only groups with this callback status.
    #[arg(long, env = "DIALTONE_REPORT_STATUS",
          value_parser = PossibleValuesParser::new(codes::CALLBACK_STATUSES))]
    status: Option<String>,
    #[command(flatten)]
    caller: CallerArg,
    #[command(flatten)]
    limit: LimitArg,
    #[command(flatten)]
    out: Out,
}

/// A call's direction (`--direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    /// From a carrier to one of our numbers.
    Inbound,
    /// Out through a carrier (agents dialling out, callbacks).
    Outbound,
}

/// Flags of `dialtone report calls`.
#[derive(Debug, Clone, clap::Args)]
pub struct CallsArgs {
    #[command(flatten)]
    period: Period,
    /// Only inbound or only outbound calls.
    #[arg(long, env = "DIALTONE_REPORT_DIRECTION", value_enum)]
    direction: Option<DirectionArg>,
    #[command(flatten)]
    number: NumberArg,
    #[command(flatten)]
    agent: AgentArg,
    /// Only calls with this status.
    #[arg(long, env = "DIALTONE_REPORT_STATUS", value_parser = PossibleValuesParser::new([
        "missed", "called_back", "answered", "not_answered", "blocked", "rejected", "in_progress",
    ]))]
    status: Option<String>,
    #[command(flatten)]
    reason: ReasonArg,
    #[command(flatten)]
    caller: CallerArg,
    #[command(flatten)]
    limit: LimitArg,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report heatmap`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Hours are local to each number's schedule time zone (the table names them). \
                  The table is one line per hour and one column per weekday; each cell reads \
                  `inbound/missed agents-available`, `*` marking an hour closed all period, \
                  `~` an hour open only part of the time."
)]
pub struct HeatmapArgs {
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report live`.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveArgs {
    /// The queues (waiting callers, longest wait, members available) instead of the agents.
    #[arg(long, env = "DIALTONE_REPORT_QUEUES")]
    queues: bool,
    #[command(flatten)]
    out: Out,
}

/// Flags of `dialtone report top-missers`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopMissersArgs {
    /// How many agents (N).
    #[arg(long, short = 'n', env = "DIALTONE_REPORT_LIMIT", default_value_t = 5)]
    limit: u32,
    /// Only agents offered at least this many calls in the period.
    #[arg(long, env = "DIALTONE_REPORT_MIN_OFFERED", default_value_t = 0)]
    min_offered: u32,
    #[command(flatten)]
    period: Period,
    #[command(flatten)]
    number: NumberArg,
    #[command(flatten)]
    out: Out,
}

// ---- failures and the connection ----

/// Why a client command stopped.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// Dialtone could not be reached or answered an error (exit 1).
    Server(String),
}

impl Failure {
    /// Prints the message on stderr; the exit code.
    pub fn exit(self, command: &str) -> ExitCode {
        let (message, code) = match self {
            Failure::Usage(m) => (m, 2),
            Failure::Server(m) => (m, 1),
        };
        eprintln!("dialtone {command}: {message}");
        ExitCode::from(code)
    }
}

/// Adds `authorization: Bearer <token>` to every request when a token was found.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A Reports client that shows the credential.
pub type Client = ReportsClient<InterceptedService<Channel, Bearer>>;

/// The innermost cause of an error: the useful part ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Conn {
    /// The server's URL (`http://` added when no scheme is given).
    pub fn url(&self) -> String {
        let s = self.server.trim();
        if s.contains("://") {
            s.to_owned()
        } else {
            format!("http://{s}")
        }
    }

    /// `--token`, else `supervisor.token` in `--data`, as a header value.
    fn credential(&self) -> Result<Option<MetadataValue<Ascii>>, Failure> {
        let token = match self.token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Some(t.to_owned()),
            _ => {
                let path = self.data.join("supervisor.token");
                match std::fs::read_to_string(&path) {
                    Ok(t) => Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        return Err(Failure::Usage(format!(
                            "cannot read the credential {}: {e}; pass --token",
                            path.display()
                        )));
                    }
                }
            }
        };
        token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    Failure::Usage("the token holds characters a gRPC header cannot carry".into())
                })
            })
            .transpose()
    }

    /// Connects (within 5 s) to the Reports service.
    ///
    /// # Errors
    ///
    /// [`Failure::Usage`] for a bad URL or token, [`Failure::Server`] when nothing answers.
    pub async fn connect(&self) -> Result<Client, Failure> {
        let (channel, bearer) = self.channel().await?;
        Ok(ReportsClient::with_interceptor(channel, bearer))
    }

    /// A channel to the server and the credential to send on it (for any client-facing
    /// service: Reports, CallControl).
    pub async fn channel(&self) -> Result<(tonic::transport::Channel, Bearer), Failure> {
        let url = self.url();
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Failure::Usage(format!("--server {url}: not a URL ({e})")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let bearer = Bearer(self.credential()?);
        let channel = endpoint.connect().await.map_err(|e| {
            Failure::Server(format!(
                "cannot reach Dialtone at {url} ({}): start it with `dialtone up` or pass \
                 --server (or set DIALTONE_SERVER)",
                root_cause(&e)
            ))
        })?;
        Ok((channel, bearer))
    }

    /// What to tell the user about an error status.
    pub fn failure(&self, status: &Status) -> Failure {
        let url = self.url();
        let message = status.message();
        match status.code() {
            Code::InvalidArgument => Failure::Usage(message.to_owned()),
            Code::Unavailable => Failure::Server(format!(
                "Dialtone at {url} is unavailable ({message}): check that it runs \
                 (`dialtone up`) or pass --server"
            )),
            Code::Unauthenticated => Failure::Server(format!(
                "Dialtone at {url} refused the credential ({message}): pass --token (or \
                 DIALTONE_TOKEN), or --data with the folder holding supervisor.token"
            )),
            Code::PermissionDenied => Failure::Server(format!(
                "the credential lacks the role for this ({message}): use a supervisor's token"
            )),
            Code::Unimplemented => Failure::Server(format!(
                "{url} does not serve reports (dialtone.v1.Reports): point --server at the \
                 reporter, or at `dialtone up`"
            )),
            Code::FailedPrecondition => Failure::Server(format!(
                "Dialtone at {url} cannot answer that now: {message}"
            )),
            code => Failure::Server(format!("Dialtone at {url} answered {code:?}: {message}")),
        }
    }
}

// ---- conversions ----

/// A protobuf timestamp from an instant.
fn proto_ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// An instant from a protobuf timestamp.
pub fn instant(t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    t.and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())
}

/// RFC 3339, or `null`.
pub fn time(t: Option<&prost_types::Timestamp>) -> Value {
    instant(t).map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// Seconds as a number, or `null`.
fn secs(d: Option<&prost_types::Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        Value::from(d.seconds as f64 + f64::from(d.nanos) / 1e9)
    })
}

/// A string, or `null` when empty (the proto's "none").
fn opt(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

fn obj(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => Row::new(),
    }
}

/// A phone number as the reports store it: `00…`, spaces and dashes normalised; anything that
/// does not look like a number (a PhoneNumber's name) as given.
pub fn phone(s: &str) -> String {
    let t = s.trim();
    if t.starts_with(['+', '('])
        || t.starts_with("tel:")
        || t.starts_with(|c: char| c.is_ascii_digit())
    {
        dialtone_router::plan::normalize_number(t)
    } else {
        t.to_owned()
    }
}

/// A number flag, normalised (empty when not given).
fn num(s: &Option<String>) -> String {
    phone(s.as_deref().unwrap_or_default())
}

fn text(s: &Option<String>) -> String {
    s.as_deref().map(str::trim).unwrap_or_default().to_owned()
}

/// How a report's period starts when `--from` is not given.
#[derive(Debug, Clone, Copy)]
enum DefaultStart {
    /// 00:00 UTC of the day the period ends in.
    Today,
    /// This many days before the end.
    Days(i64),
    /// The server's own (the unprocessed window).
    Server,
}

impl Period {
    fn resolve(
        &self,
        default: DefaultStart,
    ) -> Result<(Option<Timestamp>, Option<Timestamp>), Failure> {
        let parse = |flag: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(TimeArg::parse)
                .transpose()
                .map_err(|e| Failure::Usage(format!("{flag}: {e}")))
        };
        let from = parse("--from", &self.from)?.map(TimeArg::start);
        let to = parse("--to", &self.to)?.map(TimeArg::end);
        let end = || to.unwrap_or_else(Timestamp::now);
        let from = match (from, default) {
            (Some(from), _) => Some(from),
            (None, DefaultStart::Server) => None,
            (None, DefaultStart::Today) => {
                let last = end()
                    .checked_sub(SignedDuration::from_nanos(1))
                    .unwrap_or(Timestamp::MIN);
                Some(TimeArg::Day(jiff::tz::TimeZone::UTC.to_datetime(last).date()).start())
            }
            (None, DefaultStart::Days(n)) => Some(
                end()
                    .checked_sub(SignedDuration::from_hours(24 * n))
                    .unwrap_or(Timestamp::MIN),
            ),
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(Failure::Usage(format!(
                "--from ({f}) must be before --to ({t}; a date there includes the whole day)"
            )));
        }
        Ok((from, to))
    }

    fn filter(&self, default: DefaultStart) -> Result<pb::ReportFilter, Failure> {
        let (from, to) = self.resolve(default)?;
        Ok(pb::ReportFilter {
            from: from.map(proto_ts),
            to: to.map(proto_ts),
            ..Default::default()
        })
    }
}

// ---- printing ----

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// What a report prints.
struct Page<'a> {
    columns: &'a [Column],
    rows: Vec<Row>,
    footer: Vec<Row>,
    /// The table's last line: what was counted, over which period.
    summary: String,
    truncated: bool,
}

fn emit(format: Format, page: &Page<'_>) {
    let more = "more rows matched than shown: raise --limit or narrow the period";
    if format == Format::Table {
        if !page.rows.is_empty() {
            out(&output::render(
                format,
                page.columns,
                &page.rows,
                &page.footer,
            ));
        }
        let tail = if page.truncated {
            format!(" ({more})")
        } else {
            String::new()
        };
        out(&format!("{}{tail}\n", page.summary));
    } else {
        out(&output::render(
            format,
            page.columns,
            &page.rows,
            &page.footer,
        ));
        if page.truncated {
            eprintln!("dialtone report: {more}");
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn period_text(meta: Option<&pb::ReportMeta>) -> String {
    let show = |t: Option<&prost_types::Timestamp>| {
        instant(t).map_or_else(|| "?".to_owned(), |t| output::whole_seconds(&t.to_string()))
    };
    match meta {
        Some(m) => format!("from {} to {}", show(m.from.as_ref()), show(m.to.as_ref())),
        None => String::new(),
    }
}

fn truncated(meta: Option<&pb::ReportMeta>) -> bool {
    meta.is_some_and(|m| m.truncated)
}

// ---- the reports ----

/// Runs `dialtone report …`.
pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let result = match args.report {
        Report::Missed(a) => missed(a).await,
        Report::Unprocessed(a) => unprocessed(a).await,
        Report::Agents(a) => agents(a).await,
        Report::Callbacks(a) => callbacks(a).await,
        Report::Calls(a) => calls(a).await,
        Report::Heatmap(a) => heatmap(a).await,
        Report::Live(a) => live(a).await,
        Report::TopMissers(a) => top_missers(a).await,
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("report"),
    })
}

const MISSED: &[Column] = &[
    Column::text("call_id").hidden(),
    Column::time("started_at"),
    Column::text("caller"),
    Column::text("number"),
    Column::text("reason"),
    Column::text("agents_alerted"),
    Column::text("status"),
    Column::flag("voicemail"),
    Column::seconds("waited_seconds").title("waited"),
    Column::text("voicemail_url").hidden(),
    Column::time("ended_at").hidden(),
    Column::flag("anonymous").hidden(),
    Column::text("direction").hidden(),
    Column::text("number_name").hidden(),
    Column::text("trace_id").hidden(),
];

/// A missed call as a row.
pub fn missed_row(c: &pb::MissedCall) -> Row {
    obj(json!({
        "call_id": c.call_id,
        "started_at": time(c.started_at.as_ref()),
        "caller": opt(&c.caller),
        "number": opt(&c.number),
        "reason": c.reason,
        "agents_alerted": c.agents_alerted,
        "status": c.status,
        "voicemail": c.voicemail,
        "waited_seconds": secs(c.waited.as_ref()),
        "voicemail_url": opt(&c.voicemail_url),
        "ended_at": time(c.ended_at.as_ref()),
        "anonymous": c.anonymous,
        "direction": opt(c.direction().code()),
        "number_name": opt(&c.number_name),
        "trace_id": opt(&c.trace_id),
    }))
}

async fn missed(a: MissedArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        status: text(&a.status),
        reason: text(&a.reason.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .missed(pb::MissedRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.calls.iter().map(missed_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: MISSED,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "missed call", "missed calls"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}

const UNPROCESSED: &[Column] = &[
    Column::text("group_id").hidden(),
    Column::text("client"),
    Column::flag("anonymous").hidden(),
    Column::text("numbers"),
    Column::time("first_missed_at"),
    Column::time("last_missed_at"),
    Column::seconds("first_to_last_seconds").hidden(),
    Column::seconds("first_to_now_seconds").title("lost_for"),
    Column::count("missed_count").title("missed"),
    Column::count("callback_attempts").title("callbacks"),
    Column::time("last_callback_at").hidden(),
    Column::text("last_reason"),
    Column::text("agents"),
    Column::text("call_ids").hidden(),
    Column::text("processed_how").title("how"),
    Column::time("processed_at"),
    Column::text("processed_by").title("by"),
    Column::text("processed_reason").title("reason"),
    Column::text("processed_note").title("note"),
    Column::text("processed_call_id").hidden(),
];

/// Whether the unprocessed table shows a column in a view: the to-do list shows how long each
/// client has been lost; the processed view shows how, when and by whom groups were closed.
fn unprocessed_column(view: pb::UnprocessedView, key: &str) -> bool {
    let processing = key.starts_with("processed_");
    match view {
        pb::UnprocessedView::Processed => {
            processing
                || matches!(
                    key,
                    "client" | "last_missed_at" | "missed_count" | "last_reason"
                )
        }
        pb::UnprocessedView::All => {
            !processing || matches!(key, "processed_how" | "processed_by" | "processed_reason")
        }
        _ => !processing,
    }
}

fn processed_how(how: pb::ProcessedHow) -> &'static str {
    match how {
        pb::ProcessedHow::Unspecified => "",
        pb::ProcessedHow::CallbackAnswered => "callback_answered",
        pb::ProcessedHow::InboundAnswered => "inbound_answered",
        pb::ProcessedHow::Handled => "handled",
    }
}

/// An unprocessed group as a row (processing flattened into `processed_*`).
pub fn group_row(g: &pb::UnprocessedGroup) -> Row {
    let p = g.processed.as_ref();
    let field = |f: fn(&pb::Processing) -> &str| p.map_or(Value::Null, |p| opt(f(p)));
    obj(json!({
        "group_id": g.group_id,
        "client": opt(&g.client),
        "anonymous": g.anonymous,
        "numbers": g.numbers,
        "first_missed_at": time(g.first_missed_at.as_ref()),
        "last_missed_at": time(g.last_missed_at.as_ref()),
        "first_to_last_seconds": secs(g.first_to_last.as_ref()),
        "first_to_now_seconds": secs(g.first_to_now.as_ref()),
        "missed_count": g.missed_count,
        "callback_attempts": g.callback_attempts,
        "last_callback_at": time(g.last_callback_at.as_ref()),
        "last_reason": g.last_reason,
        "agents": g.agents,
        "call_ids": g.call_ids,
        "processed_how": p.map_or(Value::Null, |p| opt(processed_how(p.how()))),
        "processed_at": p.map_or(Value::Null, |p| time(p.at.as_ref())),
        "processed_by": field(|p| &p.by),
        "processed_reason": field(|p| &p.reason),
        "processed_note": field(|p| &p.note),
        "processed_call_id": field(|p| &p.call_id),
    }))
}

async fn unprocessed(a: UnprocessedArgs) -> Result<(), Failure> {
    let view = if a.all {
        pb::UnprocessedView::All
    } else if a.processed {
        pb::UnprocessedView::Processed
    } else {
        pb::UnprocessedView::Open
    };
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        reason: text(&a.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Server)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .unprocessed(pb::UnprocessedRequest {
            filter: Some(filter),
            view: view as i32,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let columns: Vec<Column> = UNPROCESSED
        .iter()
        .map(|c| {
            if unprocessed_column(view, c.key) {
                *c
            } else {
                c.hidden()
            }
        })
        .collect();
    let rows: Vec<Row> = report.groups.iter().map(group_row).collect();
    let what = match view {
        pb::UnprocessedView::Processed => ("processed group", "processed groups"),
        pb::UnprocessedView::All => ("group", "groups"),
        _ => ("unprocessed group", "unprocessed groups"),
    };
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: &columns,
            summary: format!(
                "{} (last miss {})",
                plural(rows.len(), what.0, what.1),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}

const AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::text("display_name").hidden(),
    Column::count("offered"),
    Column::count("answered"),
    Column::count("missed"),
    Column::count("declined"),
    Column::rate("miss_rate"),
    Column::seconds("avg_time_to_answer_seconds").title("avg_answer"),
    Column::count("short_calls").title("short"),
    Column::count("short_calls_agent_hung_up").title("short_agent"),
    Column::count("short_calls_client_hung_up").title("short_client"),
    Column::count("missed_without_callback").title("no_callback"),
];

/// An agents-table row.
pub fn agent_row(r: &pb::AgentRow) -> Row {
    obj(json!({
        "agent": r.agent,
        "display_name": opt(&r.display_name),
        "offered": r.offered,
        "answered": r.answered,
        "missed": r.missed,
        "declined": r.declined,
        "miss_rate": r.miss_rate,
        "avg_time_to_answer_seconds": r.avg_time_to_answer_seconds,
        "short_calls": r.short_calls,
        "short_calls_agent_hung_up": r.short_calls_agent_hung_up,
        "short_calls_client_hung_up": r.short_calls_client_hung_up,
        "missed_without_callback": r.missed_without_callback,
    }))
}

async fn agents(a: AgentsArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent.agent),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .agents(pb::AgentsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.agents.iter().map(agent_row).collect();
    let footer: Vec<Row> = report.total.iter().map(agent_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: AGENTS,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer,
            truncated: truncated(meta),
        },
    );
    Ok(())
}

async fn top_missers(a: TopMissersArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        limit: a.limit,
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .top_missers(pb::TopMissersRequest {
            filter: Some(filter),
            min_offered: a.min_offered,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.agents.iter().map(agent_row).collect();
    let meta = report.meta.as_ref();
    let floor = if a.min_offered > 0 {
        format!(" offered at least {}", a.min_offered)
    } else {
        String::new()
    };
    emit(
        a.out.format,
        &Page {
            columns: AGENTS,
            summary: format!(
                "top {} by miss rate{floor}, {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        },
    );
    Ok(())
}

const CALLBACK_GROUPS: &[Column] = &[
    Column::text("group_id").hidden(),
    Column::text("client"),
    Column::text("numbers"),
    Column::time("first_missed_at"),
    Column::time("first_callback_at"),
    Column::seconds("time_to_callback_seconds").title("time_to_callback"),
    Column::text("callback_agent"),
    Column::text("status"),
    Column::count("attempts"),
    Column::flag("reached"),
    Column::text("agents_missed"),
];

const CALLBACK_AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::count("called_back"),
    Column::count("within_sla"),
    Column::count("late"),
    Column::count("never"),
    Column::rate("share_within_sla"),
    Column::seconds("avg_time_to_callback_seconds").title("avg_to_callback"),
];

fn callback_agent_row(r: &pb::CallbackAgentRow) -> Row {
    obj(json!({
        "agent": r.agent,
        "called_back": r.called_back,
        "within_sla": r.within_sla,
        "late": r.late,
        "never": r.never,
        "share_within_sla": r.share_within_sla,
        "avg_time_to_callback_seconds": r.avg_time_to_callback_seconds,
    }))
}

async fn callbacks(a: CallbacksArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        status: text(&a.status),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .callbacks(pb::CallbacksRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let meta = report.meta.as_ref();
    let sla = match secs(report.sla.as_ref()) {
        Value::Number(n) => n.as_f64().map(output::human_seconds),
        _ => None,
    }
    .unwrap_or_else(|| "?".into());
    let page = if a.per_agent {
        let rows: Vec<Row> = report.agents.iter().map(callback_agent_row).collect();
        Page {
            columns: CALLBACK_AGENTS,
            summary: format!(
                "{}, SLA {sla}, first miss {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer: report.total.iter().map(callback_agent_row).collect(),
            truncated: false,
        }
    } else {
        let rows: Vec<Row> = report
            .groups
            .iter()
            .map(|g| {
                obj(json!({
                    "group_id": g.group_id,
                    "client": opt(&g.client),
                    "numbers": g.numbers,
                    "first_missed_at": time(g.first_missed_at.as_ref()),
                    "first_callback_at": time(g.first_callback_at.as_ref()),
                    "time_to_callback_seconds": secs(g.time_to_callback.as_ref()),
                    "callback_agent": opt(&g.callback_agent),
                    "status": g.status,
                    "attempts": g.attempts,
                    "reached": g.reached,
                    "agents_missed": g.agents_missed,
                }))
            })
            .collect();
        let count = |s: &str| report.groups.iter().filter(|g| g.status == s).count();
        Page {
            columns: CALLBACK_GROUPS,
            summary: format!(
                "{}: {} within the SLA ({sla}), {} late, {} never; first miss {}",
                plural(rows.len(), "missed group", "missed groups"),
                count("within_sla"),
                count("late"),
                count("never"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        }
    };
    emit(a.out.format, &page);
    Ok(())
}

const CALLS: &[Column] = &[
    Column::text("call_id").hidden(),
    Column::time("started_at"),
    Column::time("ended_at").hidden(),
    Column::text("direction"),
    Column::text("caller"),
    Column::text("number"),
    Column::text("status"),
    Column::text("reason"),
    Column::text("agents"),
    Column::text("answered_by"),
    Column::seconds("wait_seconds").title("wait"),
    Column::seconds("talk_seconds").title("talk"),
    Column::text("hangup_party").title("hung_up"),
    Column::text("recording_url").hidden(),
    Column::flag("voicemail").hidden(),
    Column::text("voicemail_url").hidden(),
    Column::flag("callback").hidden(),
    Column::text("carrier").hidden(),
    Column::text("trace_id").hidden(),
];

fn call_row(c: &pb::CallRow) -> Row {
    obj(json!({
        "call_id": c.call_id,
        "started_at": time(c.started_at.as_ref()),
        "ended_at": time(c.ended_at.as_ref()),
        "direction": opt(c.direction().code()),
        "caller": opt(&c.caller),
        "number": opt(&c.number),
        "status": c.status,
        "reason": opt(&c.reason),
        "agents": c.agents,
        "answered_by": opt(&c.answered_by),
        "wait_seconds": secs(c.wait.as_ref()),
        "talk_seconds": secs(c.talk.as_ref()),
        "hangup_party": opt(c.hangup_party().code()),
        "recording_url": opt(&c.recording_url),
        "voicemail": c.voicemail,
        "voicemail_url": opt(&c.voicemail_url),
        "callback": c.callback,
        "carrier": opt(&c.carrier),
        "trace_id": opt(&c.trace_id),
    }))
}

async fn calls(a: CallsArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent.agent),
        status: text(&a.status),
        reason: text(&a.reason.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let direction = match a.direction {
        None => pb::Direction::Unspecified,
        Some(DirectionArg::Inbound) => pb::Direction::Inbound,
        Some(DirectionArg::Outbound) => pb::Direction::Outbound,
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .calls(pb::CallsRequest {
            filter: Some(filter),
            direction: direction as i32,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.calls.iter().map(call_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: CALLS,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "call", "calls"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}

const HEAT: &[Column] = &[
    Column::count("weekday"),
    Column::count("hour"),
    Column::count("inbound"),
    Column::count("missed"),
    Column::rate("open_share"),
    Column::count("available_agents"),
    Column::count("days"),
];

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The heat map for a terminal: one line per hour, one column per weekday.
fn heat_grid(report: &pb::HeatmapReport) -> String {
    let mut grid: [[Option<&pb::HeatmapCell>; 7]; 24] = [[None; 7]; 24];
    for c in &report.cells {
        if let (Some(row), Some(slot)) = (
            grid.get_mut(c.hour as usize),
            (c.weekday as usize).checked_sub(1),
        ) && let Some(cell) = row.get_mut(slot)
        {
            *cell = Some(c);
        }
    }
    let text = |c: Option<&pb::HeatmapCell>| -> String {
        let Some(c) = c.filter(|c| c.days > 0) else {
            return String::new();
        };
        let calls = if c.inbound == 0 && c.missed == 0 {
            "-".to_owned()
        } else {
            format!("{}/{}", c.inbound, c.missed)
        };
        let mark = if c.open_share <= 0.0 {
            "*"
        } else if c.open_share < 1.0 {
            "~"
        } else {
            ""
        };
        format!("{calls} {:.1}{mark}", c.available_agents)
    };
    let mut lines: Vec<Vec<String>> = vec![
        std::iter::once("hour".to_owned())
            .chain(WEEKDAYS.iter().map(|d| (*d).to_owned()))
            .collect(),
    ];
    for (hour, row) in grid.iter().enumerate() {
        lines.push(
            std::iter::once(format!("{hour:02}"))
                .chain(row.iter().map(|c| text(*c)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let (inbound, missed) = report.cells.iter().fold((0u64, 0u64), |(i, m), c| {
        (i + u64::from(c.inbound), m + u64::from(c.missed))
    });
    let blind: Vec<String> = report
        .cells
        .iter()
        .filter(|c| c.missed > 0 && c.available_agents < 0.5)
        .map(|c| {
            let day = WEEKDAYS
                .get((c.weekday as usize).saturating_sub(1))
                .unwrap_or(&"?");
            format!("{day} {:02}h ({} missed)", c.hour, c.missed)
        })
        .collect();
    out.push_str(
        "cell: inbound/missed calls, then agents available on average; * closed all period, \
         ~ open part of it\n",
    );
    if !blind.is_empty() {
        out.push_str(&format!(
            "blind zones (missed calls, nobody available): {}\n",
            blind.join(", ")
        ));
    }
    let zones = if report.time_zones.is_empty() {
        "UTC".to_owned()
    } else {
        report.time_zones.join(", ")
    };
    out.push_str(&format!(
        "total: {inbound} inbound, {missed} missed; local time {zones}; {}\n",
        period_text(report.meta.as_ref())
    ));
    out
}

async fn heatmap(a: HeatmapArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        ..a.period.filter(DefaultStart::Days(7))?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .heatmap(pb::HeatmapRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    if a.out.format == Format::Table {
        out(&heat_grid(&report));
        return Ok(());
    }
    let rows: Vec<Row> = report
        .cells
        .iter()
        .map(|c| {
            obj(json!({
                "weekday": c.weekday,
                "hour": c.hour,
                "inbound": c.inbound,
                "missed": c.missed,
                "open_share": c.open_share,
                "available_agents": c.available_agents,
                "days": c.days,
            }))
        })
        .collect();
    out(&output::render(a.out.format, HEAT, &rows, &[]));
    Ok(())
}

const LIVE_AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::text("display_name").hidden(),
    Column::text("extension").hidden(),
    Column::text("state"),
    Column::text("away_label").title("label"),
    Column::time("since"),
    Column::count("active_calls").title("calls"),
    Column::count("max_concurrent_calls").title("max"),
    Column::count("answered_today"),
    Column::flag("reachable"),
    Column::time("wrap_up_until").hidden(),
    Column::time("last_call_ended_at").hidden(),
    Column::text("call_ids").hidden(),
    Column::text("labels").hidden(),
];

const LIVE_QUEUES: &[Column] = &[
    Column::text("queue"),
    Column::text("strategy"),
    Column::count("waiting"),
    Column::seconds("longest_wait_seconds").title("longest_wait"),
    Column::time("oldest_joined_at").hidden(),
    Column::count("members"),
    Column::count("available"),
    Column::text("callers").hidden(),
];

async fn live(a: LiveArgs) -> Result<(), Failure> {
    let conn = &a.out.conn;
    let board = conn
        .connect()
        .await?
        .live(pb::LiveRequest {
            omit_contacts: true,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let at = time(board.at.as_ref());
    let at = at
        .as_str()
        .map_or_else(|| "now".to_owned(), output::whole_seconds);
    let page = if a.queues {
        let rows: Vec<Row> = board
            .queues
            .iter()
            .map(|q| {
                let callers: Vec<Value> = q
                    .callers
                    .iter()
                    .map(|c| {
                        json!({
                            "call_id": c.call_id,
                            "caller": opt(&c.caller),
                            "position": c.position,
                            "joined_at": time(c.joined_at.as_ref()),
                            "callback": c.callback,
                        })
                    })
                    .collect();
                obj(json!({
                    "queue": q.queue,
                    "strategy": opt(q.strategy().code()),
                    "waiting": q.waiting,
                    "longest_wait_seconds": secs(q.longest_wait.as_ref()),
                    "oldest_joined_at": time(q.oldest_joined_at.as_ref()),
                    "members": q.members,
                    "available": q.available,
                    "callers": callers,
                }))
            })
            .collect();
        let waiting: u32 = board.queues.iter().map(|q| q.waiting).sum();
        Page {
            columns: LIVE_QUEUES,
            summary: format!(
                "{}, {waiting} waiting, at {at}",
                plural(rows.len(), "queue", "queues")
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        }
    } else {
        let rows: Vec<Row> = board
            .agents
            .iter()
            .map(|p| {
                obj(json!({
                    "agent": p.agent,
                    "display_name": opt(&p.display_name),
                    "extension": opt(&p.extension),
                    "state": opt(p.state().code()),
                    "away_label": opt(&p.away_label),
                    "since": time(p.since.as_ref()),
                    "active_calls": p.active_calls,
                    "max_concurrent_calls": p.max_concurrent_calls,
                    "answered_today": p.answered_today,
                    "reachable": p.reachable,
                    "wrap_up_until": time(p.wrap_up_until.as_ref()),
                    "last_call_ended_at": time(p.last_call_ended_at.as_ref()),
                    "call_ids": p.call_ids,
                    "labels": p.labels,
                }))
            })
            .collect();
        let mut states: Vec<(&str, usize)> = Vec::new();
        for p in &board.agents {
            let s = p.state().code();
            match states.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => states.push((s, 1)),
            }
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let queues: Vec<String> = board
            .queues
            .iter()
            .filter(|q| q.waiting > 0)
            .map(|q| {
                let longest = match secs(q.longest_wait.as_ref()) {
                    Value::Number(n) => n.as_f64().map(output::human_seconds),
                    _ => None,
                };
                format!(
                    "{} {} waiting{}",
                    q.queue,
                    q.waiting,
                    longest
                        .map(|l| format!(" (longest {l})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let queues = if queues.is_empty() {
            "nobody waiting in a queue".to_owned()
        } else {
            format!("queues: {}", queues.join(", "))
        };
        Page {
            columns: LIVE_AGENTS,
            summary: format!(
                "{} ({}); {queues}; at {at}",
                plural(rows.len(), "agent", "agents"),
                states.join(", ")
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        }
    };
    emit(a.out.format, &page);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(from: Option<&str>, to: Option<&str>) -> Period {
        Period {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("an instant")
    }

    #[test]
    fn the_default_period_is_the_day_the_period_ends_in() {
        let p = period(None, Some("2026-11-23"));
        assert_eq!(
            p.resolve(DefaultStart::Today).ok(),
            Some((
                Some(t("2026-11-23T00:00:00Z")),
                Some(t("2026-11-24T00:00:00Z"))
            ))
        );
        let p = period(None, Some("2026-11-23T15:00:00Z"));
        assert_eq!(
            p.resolve(DefaultStart::Days(7)).ok(),
            Some((
                Some(t("2026-11-16T15:00:00Z")),
                Some(t("2026-11-23T15:00:00Z"))
            ))
        );
        assert_eq!(
            p.resolve(DefaultStart::Server).ok(),
            Some((None, Some(t("2026-11-23T15:00:00Z"))))
        );
        let (from, to) = period(None, None)
            .resolve(DefaultStart::Today)
            .expect("defaults");
        assert_eq!(to, None);
        let from = from.expect("a start");
        assert!(from <= Timestamp::now());
        assert_eq!(from.as_second() % 86_400, 0);
    }

    #[test]
    fn bad_periods_are_usage_errors() {
        let bad = |p: Period| matches!(p.resolve(DefaultStart::Today), Err(Failure::Usage(_)));
        assert!(bad(period(Some("yesterday"), None)));
        assert!(bad(period(None, Some("2026-13-01"))));
        assert!(bad(period(Some("2026-11-24"), Some("2026-11-23"))));
    }

    #[test]
    fn numbers_are_normalised_and_names_kept() {
        assert_eq!(phone("00380 44 123-45-67"), "+380441234567");
        assert_eq!(phone("+380441234567"), "+380441234567");
        assert_eq!(phone("ads-landing"), "ads-landing");
        assert_eq!(phone(""), "");
    }
}
