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

mod args;

pub use args::*;

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

mod board;
mod tables;

use board::{heatmap, live};
use tables::{agents, callbacks, calls, missed, top_missers, unprocessed};

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
