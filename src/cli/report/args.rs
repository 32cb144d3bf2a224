//! The flags of `dialtone report` and of each report (clap).

use super::*;

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
    pub(super) server: String,
    /// Bearer token; without it, `supervisor.token` in --data is used when it exists.
    #[arg(long, env = "DIALTONE_TOKEN", hide_env_values = true)]
    pub(super) token: Option<String>,
    /// The data folder of a Dialtone on this machine (for its `supervisor.token`).
    #[arg(long, env = "DIALTONE_DATA", default_value = "./data")]
    pub(super) data: PathBuf,
}

/// The period of a report.
#[derive(Debug, Clone, clap::Args)]
pub struct Period {
    /// Start of the period: RFC 3339 (2026-11-23T09:00:00Z) or a date (2026-11-23: from its
    /// 00:00 UTC). Default: 00:00 UTC of the day the period ends in (today without --to);
    /// heatmap: 7 days before the end.
    #[arg(long, env = "DIALTONE_REPORT_FROM")]
    pub(super) from: Option<String>,
    /// End of the period, exclusive: RFC 3339 or a date (the whole day included). Default:
    /// now.
    #[arg(long, env = "DIALTONE_REPORT_TO")]
    pub(super) to: Option<String>,
}

/// Output format and connection.
#[derive(Debug, Clone, clap::Args)]
pub struct Out {
    /// Output: an aligned table, JSON (an array of objects, snake_case keys) or CSV (with a
    /// header row).
    #[arg(long, env = "DIALTONE_FORMAT", value_enum, default_value_t = Format::Table)]
    pub(super) format: Format,
    #[command(flatten)]
    pub(super) conn: Conn,
}

/// `--number`.
#[derive(Debug, Clone, clap::Args)]
pub struct NumberArg {
    /// Only calls to this number (E.164, or the PhoneNumber's name).
    #[arg(long, env = "DIALTONE_REPORT_NUMBER")]
    pub(super) number: Option<String>,
}

/// `--agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArg {
    /// Only rows concerning this agent (the Agent's name).
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    pub(super) agent: Option<String>,
}

/// `--caller`.
#[derive(Debug, Clone, clap::Args)]
pub struct CallerArg {
    /// Only calls from (or callbacks to) this client number (E.164).
    #[arg(long, env = "DIALTONE_REPORT_CALLER")]
    pub(super) caller: Option<String>,
}

/// `--reason`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArg {
    /// Only this missed reason.
    #[arg(long, env = "DIALTONE_REPORT_REASON",
          value_parser = PossibleValuesParser::new(codes::MISSED_REASONS))]
    pub(super) reason: Option<String>,
}

/// `--limit`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArg {
    /// At most this many rows (default: the server's, 1000).
    #[arg(long, env = "DIALTONE_REPORT_LIMIT")]
    pub(super) limit: Option<u32>,
}

// ---- each report's flags ----

/// Flags of `dialtone report missed`.
#[derive(Debug, Clone, clap::Args)]
pub struct MissedArgs {
    #[command(flatten)]
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    /// Only calls that alerted this agent.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    pub(super) agent: Option<String>,
    /// Only calls with this status: missed (no callback attempt yet) or called_back.
    #[arg(long, env = "DIALTONE_REPORT_STATUS",
          value_parser = PossibleValuesParser::new(["missed", "called_back"]))]
    pub(super) status: Option<String>,
    #[command(flatten)]
    pub(super) reason: ReasonArg,
    #[command(flatten)]
    pub(super) caller: CallerArg,
    #[command(flatten)]
    pub(super) limit: LimitArg,
    #[command(flatten)]
    pub(super) out: Out,
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
    pub(super) processed: bool,
    /// Show open and processed groups.
    #[arg(long, env = "DIALTONE_REPORT_ALL")]
    pub(super) all: bool,
    #[command(flatten)]
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    /// Only groups this agent missed.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    pub(super) agent: Option<String>,
    /// Only groups whose last miss had this reason.
    #[arg(long, env = "DIALTONE_REPORT_REASON",
          value_parser = PossibleValuesParser::new(codes::MISSED_REASONS))]
    pub(super) reason: Option<String>,
    #[command(flatten)]
    pub(super) caller: CallerArg,
    #[command(flatten)]
    pub(super) limit: LimitArg,
    #[command(flatten)]
    pub(super) out: Out,
}

/// Flags of `dialtone report agents`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    #[command(flatten)]
    pub(super) agent: AgentArg,
    #[command(flatten)]
    pub(super) limit: LimitArg,
    #[command(flatten)]
    pub(super) out: Out,
}

/// Flags of `dialtone report callbacks`.
#[derive(Debug, Clone, clap::Args)]
pub struct CallbacksArgs {
    /// One row per agent (called back, within the SLA, late, never) with a team total,
    /// instead of one row per missed group.
    #[arg(long, env = "DIALTONE_REPORT_PER_AGENT")]
    pub(super) per_agent: bool,
    #[command(flatten)]
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    /// Only groups this agent called back first, or missed and nobody called back.
    #[arg(long, env = "DIALTONE_REPORT_AGENT")]
    pub(super) agent: Option<String>,
    /// Only groups with this callback status.
    #[arg(long, env = "DIALTONE_REPORT_STATUS",
          value_parser = PossibleValuesParser::new(codes::CALLBACK_STATUSES))]
    pub(super) status: Option<String>,
    #[command(flatten)]
    pub(super) caller: CallerArg,
    #[command(flatten)]
    pub(super) limit: LimitArg,
    #[command(flatten)]
    pub(super) out: Out,
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
    pub(super) period: Period,
    /// Only inbound or only outbound calls.
    #[arg(long, env = "DIALTONE_REPORT_DIRECTION", value_enum)]
    pub(super) direction: Option<DirectionArg>,
    #[command(flatten)]
    pub(super) number: NumberArg,
    #[command(flatten)]
    pub(super) agent: AgentArg,
    /// Only calls with this status.
    #[arg(long, env = "DIALTONE_REPORT_STATUS", value_parser = PossibleValuesParser::new([
        "missed", "called_back", "answered", "not_answered", "blocked", "rejected", "in_progress",
    ]))]
    pub(super) status: Option<String>,
    #[command(flatten)]
    pub(super) reason: ReasonArg,
    #[command(flatten)]
    pub(super) caller: CallerArg,
    #[command(flatten)]
    pub(super) limit: LimitArg,
    #[command(flatten)]
    pub(super) out: Out,
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
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    #[command(flatten)]
    pub(super) out: Out,
}

/// Flags of `dialtone report live`.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveArgs {
    /// The queues (waiting callers, longest wait, members available) instead of the agents.
    #[arg(long, env = "DIALTONE_REPORT_QUEUES")]
    pub(super) queues: bool,
    #[command(flatten)]
    pub(super) out: Out,
}

/// Flags of `dialtone report top-missers`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopMissersArgs {
    /// How many agents (N).
    #[arg(long, short = 'n', env = "DIALTONE_REPORT_LIMIT", default_value_t = 5)]
    pub(super) limit: u32,
    /// Only agents offered at least this many calls in the period.
    #[arg(long, env = "DIALTONE_REPORT_MIN_OFFERED", default_value_t = 0)]
    pub(super) min_offered: u32,
    #[command(flatten)]
    pub(super) period: Period,
    #[command(flatten)]
    pub(super) number: NumberArg,
    #[command(flatten)]
    pub(super) out: Out,
}

// ---- failures and the connection ----
