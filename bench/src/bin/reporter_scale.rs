//! The reporter at scale: ingest rate and every report's latency over a synthetic but realistic
//! call history (200 agents in 20 teams, 50 numbers, two years; calls answered, missed for
//! every common reason, called back or not), on SQLite and on PostgreSQL — each report beside
//! a naive `GROUP BY` over the raw `cdrs` rows of the same window, in the same run.
//!
//! The history is built as call-event streams (the media node's events) and stored through
//! the reporter's own ingestion (`Store::ingest`, 10,000 events per call); reports are asked
//! over real gRPC on loopback. The database is kept under `--data` and reused by later runs
//! with the same `--cdrs` (generation is the slow part).
//!
//! `cargo run --release -p dialtone-bench --bin reporter_scale -- --cdrs 200000`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use dialtone_bench::call_events::{inbound, outbound};
use dialtone_bench::synth;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_client::ReportsClient;
use dialtone_reporter::Policy;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_reporter::store::{OpenOptions, Store};
use dialtone_reporter::time::to_proto_timestamp;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Calls in the history (inbound and callbacks).
    #[arg(long, default_value_t = 10_000_000)]
    cdrs: u64,
    /// Calls in PostgreSQL's history when it differs from `--cdrs` (the store takes about
    /// 7 KB per call there: 10 million calls need ~70 GB of disk).
    #[arg(long)]
    pg_cdrs: Option<u64>,
    /// Where the databases are kept between runs.
    #[arg(long, default_value = "target/reporter-scale")]
    data: PathBuf,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Repetitions of each report (median reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const AGENTS: usize = 200;
const NUMBERS: usize = 50;
const TEAMS: usize = 20;
const DAYS: i64 = 730;

/// The end of the synthetic history (and the reports' "now").
fn end() -> Timestamp {
    "2026-11-01T00:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn agent_name(team: usize, rng: &mut fastrand::Rng) -> String {
    format!("agent-{}", team + TEAMS * rng.usize(..AGENTS / TEAMS))
}

/// One call (and maybe its callback) as event streams.
fn one_call(i: u64, at: Timestamp, rng: &mut fastrand::Rng) -> Vec<Vec<pb::CallEvent>> {
    let n = rng.usize(..NUMBERS);
    let team = n % TEAMS;
    let client = format!("+38050{:07}", rng.u64(..2_000_000));
    let id = format!("c{i}");
    let call = inbound(&id)
        .from(&client)
        .to(&synth::number(n))
        .at_instant(at);
    let (a, b) = (agent_name(team, rng), agent_name(team, rng));
    let roll = rng.u8(..100);
    let mut out = Vec::new();
    let events = match roll {
        0..=77 => {
            let c = call
                .open("team")
                .ring(&[&a])
                .alert(&a)
                .wait(rng.f64() * 12.0);
            c.answer(&a)
                .talk(
                    3.0 + rng.f64() * 300.0,
                    if rng.bool() {
                        pb::HangupParty::Client
                    } else {
                        pb::HangupParty::Agent
                    },
                )
                .events()
        }
        78..=89 => {
            let c = call
                .open("team")
                .ring(&[&a, &b])
                .alert(&a)
                .alert(&b)
                .wait(15.0);
            let c = if rng.bool() {
                c.timeout().caller_hangs_up()
            } else {
                c.fail(&b, 486).wait(5.0).caller_hangs_up()
            };
            // Most misses are called back, some late, some never.
            if rng.u8(..10) < 7 {
                let late = if rng.bool() { 540 } else { 7200 };
                let back =
                    Timestamp::from_second(at.as_second() + 60 + rng.i64(0..late)).unwrap_or(at);
                let cb = outbound(&format!("{id}-cb"))
                    .from(&synth::number(n))
                    .to(&client)
                    .by(&a)
                    .at_instant(back)
                    .dial_client()
                    .alert("client")
                    .wait(8.0);
                let cb = if rng.bool() {
                    cb.answer("client").talk(60.0, pb::HangupParty::Agent)
                } else {
                    cb.timeout()
                        .end(pb::HangupParty::System, pb::CallDisposition::NotAnswered, 0)
                };
                out.push(cb.events());
            }
            c.events()
        }
        90..=93 => call.welcome_starts().wait(4.0).caller_hangs_up().events(),
        94..=96 => call.closed().system_hangs_up().events(),
        _ => call
            .open("team")
            .ring(&[&a])
            .fail(&a, 480)
            .wait(20.0)
            .caller_hangs_up()
            .events(),
    };
    out.push(events);
    out
}

/// Call starts: business hours in Kyiv (08–20, UTC+2/3) weighted, the rest of the day thin.
fn start_of(i: u64, total: u64, rng: &mut fastrand::Rng) -> Timestamp {
    let span = DAYS * 86_400;
    let base = end().as_second() - span;
    let day = i128::from(i) * i128::from(DAYS) / i128::from(total.max(1));
    let day = i64::try_from(day).unwrap_or(0);
    let second = if rng.u8(..10) < 9 {
        6 * 3600 + rng.i64(0..12 * 3600)
    } else {
        rng.i64(0..86_400)
    };
    Timestamp::from_second(base + day * 86_400 + second).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn agent_states(day: i64) -> Vec<pb::IngestEvent> {
    let base = end().as_second() - DAYS * 86_400 + day * 86_400;
    let mut out = Vec::new();
    for a in 0..AGENTS {
        for (k, (secs, state)) in [
            (6 * 3600 + (a as i64 % 4) * 900, pb::AgentState::Available),
            (18 * 3600, pb::AgentState::Offline),
        ]
        .into_iter()
        .enumerate()
        {
            let at = Timestamp::from_second(base + secs).unwrap_or(Timestamp::UNIX_EPOCH);
            out.push(pb::IngestEvent {
                event: Some(pb::ingest_event::Event::AgentState(pb::AgentStateEvent {
                    event_id: format!("s{day}-{a}-{k}"),
                    agent: format!("agent-{a}"),
                    state: state as i32,
                    away_label: String::new(),
                    at: Some(to_proto_timestamp(at)),
                    source: "router-0".into(),
                    sequence: u64::try_from(day * 2).unwrap_or(0) + k as u64,
                    ..Default::default()
                })),
            });
        }
    }
    out
}

/// Generates and ingests the history; returns (events, seconds) of ingestion.
async fn fill(store: &Store, total: u64) -> anyhow::Result<(u64, f64)> {
    let policy = Policy::default();
    let mut rng = fastrand::Rng::with_seed(8);
    let mut batch: Vec<pb::IngestEvent> = Vec::with_capacity(6000);
    let mut events = 0u64;
    let mut spent = Duration::ZERO;
    let mut last_day = -1i64;
    let per_day = (total / DAYS as u64).max(1);
    for i in 0..total {
        let day = i64::try_from(i / per_day).unwrap_or(0);
        if day != last_day && day < DAYS {
            batch.extend(agent_states(day));
            last_day = day;
        }
        let at = start_of(i, total, &mut rng);
        for call in one_call(i, at, &mut rng) {
            batch.extend(call.into_iter().map(|e| pb::IngestEvent {
                event: Some(pb::ingest_event::Event::Call(e)),
            }));
        }
        if batch.len() >= 10_000 || i + 1 == total {
            let t0 = Instant::now();
            let out = store.ingest(&batch, &policy).await?;
            spent += t0.elapsed();
            if !out.rejected.is_empty() {
                bail!("events rejected: {:?}", out.rejected.first());
            }
            events += batch.len() as u64;
            batch.clear();
            if i % 200_000 < 600 {
                eprintln!(
                    "  {i} calls, {events} events, {:.0} events/s",
                    events as f64 / spent.as_secs_f64()
                );
            }
        }
    }
    Ok((events, spent.as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn period(days: i64) -> pb::ReportFilter {
    let to = end();
    let from = to - SignedDuration::from_hours(days * 24);
    pb::ReportFilter {
        from: Some(to_proto_timestamp(from)),
        to: Some(to_proto_timestamp(to)),
        ..Default::default()
    }
}

async fn time<F, Fut, T>(rounds: usize, mut f: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        f().await?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(times))
}

/// A naive aggregate over the raw rows of the window: what a report would cost as one plain
/// `GROUP BY` scan, without summaries.
async fn naive(url: &str, sql: &str, from: i64, to: i64) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(from)
            .bind(to)
            .fetch_all(&mut c)
            .await?;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(from)
            .bind(to)
            .fetch_all(&mut c)
            .await?;
    }
    Ok(())
}

/// The token the benchmark's dashboard accepts.
const DASHBOARD_TOKEN: &str = "bench-dashboard-token";

async fn serve(store: Store) -> anyhow::Result<(SocketAddr, ReportsClient<Channel>)> {
    let snapshot = Arc::new(synth::call_center(NUMBERS, AGENTS, TEAMS)?);
    let (_tx, rx) = watch::channel(snapshot);
    std::mem::forget(_tx);
    // "Now" is a day after the history ends, so that its last callbacks are in the past.
    let service =
        ReportsService::new(store, rx).with_clock(|| end() + SignedDuration::from_hours(24));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // `Server::tcp_nodelay` only applies to listeners the server binds itself: an incoming
    // stream must set it, or Nagle + delayed ACKs add ~40 ms to every reply (as in
    // `dialtone up`'s server, which does the same).
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server().max_decoding_message_size(64 << 20))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    let client = ReportsClient::connect(format!("http://{addr}"))
        .await?
        .max_decoding_message_size(64 << 20);
    Ok((addr, client))
}

/// The dashboard over the same store, as `dialtone up` serves it (TCP_NODELAY, bearer token).
async fn serve_dashboard(store: Store) -> anyhow::Result<SocketAddr> {
    use dialtone_reporter::auth::{Auth, AuthConfig, Role, TokenStore};
    use dialtone_reporter::dashboard::{self, DashboardState};
    let snapshot = Arc::new(synth::call_center(NUMBERS, AGENTS, TEAMS)?);
    let (tx, rx) = watch::channel(snapshot);
    std::mem::forget(tx);
    let service = ReportsService::new(store, rx.clone())
        .with_clock(|| end() + SignedDuration::from_hours(24));
    let mut tokens = TokenStore::new();
    tokens
        .add("bench", Role::Supervisor, DASHBOARD_TOKEN)
        .map_err(anyhow::Error::msg)?;
    let auth = Auth::new(tokens, AuthConfig::default());
    let app = dashboard::router(DashboardState::new(service, rx, auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = {
        use axum::serve::ListenerExt;
        listener.tap_io(|s: &mut tokio::net::TcpStream| {
            let _ = s.set_nodelay(true);
        })
    };
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

/// One dashboard page, fetched whole; fails on anything but 200.
async fn page_once(http: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let r = http.get(url).bearer_auth(DASHBOARD_TOKEN).send().await?;
    if r.status() != 200 {
        bail!("{url} answered {}", r.status());
    }
    Ok(r.bytes().await?.len())
}

/// Each dashboard page at the 30-day range beside the gRPC report it shows (the overview
/// beside the three reports it draws: unprocessed, agents, heat map).
async fn dashboard_pages(
    name: &str,
    store: Store,
    client: &ReportsClient<Channel>,
    rounds: usize,
) -> anyhow::Result<()> {
    let addr = serve_dashboard(store).await?;
    // reqwest is built without a default TLS provider (plain HTTP here, but it wants one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let to = end();
    let from = to - SignedDuration::from_hours(30 * 24);
    let query = format!("from={from}&to={to}");
    println!(
        "| {name} dashboard page | 30 d server time (median ms) | gRPC report(s) (median ms) | ratio |"
    );
    let pages: [(&str, &[&str]); 7] = [
        ("/", &["unprocessed", "agents", "heatmap"]),
        ("/missed", &["missed"]),
        ("/unprocessed", &["unprocessed"]),
        ("/agents", &["agents"]),
        ("/callbacks", &["callbacks"]),
        ("/calls", &["calls"]),
        ("/heatmap", &["heatmap"]),
    ];
    let f = period(30);
    for (path, reports) in pages {
        let url = format!("http://{addr}{path}?{query}");
        let page = time(rounds, || page_once(&http, &url))
            .await
            .with_context(|| format!("dashboard {path}"))?;
        let mut grpc = 0.0;
        for report in reports {
            let c = client.clone();
            let f2 = f.clone();
            grpc += time(rounds, move || {
                let mut c = c.clone();
                let f = f2.clone();
                async move { report_once(&mut c, report, f).await }
            })
            .await?;
        }
        println!("| {path} | {page:.1} | {grpc:.1} | {:.2} |", page / grpc);
    }
    Ok(())
}

/// Runs the benchmark on one database of `cdrs` calls; `done` is written once the history is
/// stored, so that a failure in the reports does not throw an hour of ingestion away.
async fn run(
    name: &str,
    url: &str,
    (fresh, done, cdrs): (bool, &Path, u64),
    args: &Args,
) -> anyhow::Result<()> {
    let store = Store::open_with(
        url,
        &OpenOptions {
            acquire_timeout: Duration::from_secs(60),
            ..OpenOptions::default()
        },
    )
    .await?;
    if fresh {
        eprintln!("{name}: generating {cdrs} calls");
        let (events, secs) = fill(&store, cdrs).await?;
        println!(
            "{name}: ingested {events} events in {secs:.1} s: {:.0} events/s",
            events as f64 / secs
        );
        std::fs::write(done, b"")?;
    }
    let counts = store.counts().await?;
    println!("{name}: {} CDRs, {} events", counts.cdrs, counts.events);
    let (_addr, client) = serve(store.clone()).await?;
    dashboard_pages(name, store, &client, args.rounds).await?;
    println!("| {name} | window | Dialtone (median ms) | naive GROUP BY (median ms) | ratio |");
    let naive_sql: [(&str, &str); 7] = [
        (
            "missed",
            "SELECT missed_reason, COUNT(*) FROM cdrs WHERE started_at >= $1 AND started_at < $2 AND missed_reason IS NOT NULL GROUP BY missed_reason",
        ),
        (
            "unprocessed",
            "SELECT client, COUNT(*), MIN(started_at), MAX(started_at) FROM cdrs WHERE started_at >= $1 AND started_at < $2 AND missed_reason IS NOT NULL GROUP BY client",
        ),
        (
            "agents",
            "SELECT answered_by, COUNT(*) FROM cdrs WHERE started_at >= $1 AND started_at < $2 GROUP BY answered_by",
        ),
        (
            "callbacks",
            "SELECT agent, COUNT(*) FROM cdrs WHERE started_at >= $1 AND started_at < $2 AND direction = 'outbound' GROUP BY agent",
        ),
        (
            "calls",
            "SELECT status, COUNT(*) FROM cdrs WHERE started_at >= $1 AND started_at < $2 GROUP BY status",
        ),
        (
            "heatmap",
            "SELECT started_at / 3600000000000, COUNT(*), SUM(CASE WHEN missed_reason IS NULL THEN 0 ELSE 1 END) FROM cdrs WHERE started_at >= $1 AND started_at < $2 GROUP BY started_at / 3600000000000",
        ),
        (
            "top-missers",
            "SELECT agent, COUNT(*) FROM cdrs WHERE started_at >= $1 AND started_at < $2 AND missed_reason IS NOT NULL GROUP BY agent",
        ),
    ];
    for days in [30i64, 365] {
        let f = period(days);
        let to_ns = end().as_nanosecond() as i64;
        let from_ns = to_ns - days * 86_400_000_000_000;
        for (report, sql) in naive_sql {
            let c = client.clone();
            let f2 = f.clone();
            let ours = time(args.rounds, move || {
                let mut c = c.clone();
                let f = f2.clone();
                async move { report_once(&mut c, report, f).await }
            })
            .await
            .with_context(|| format!("{report} over {days} days"))?;
            let theirs = time(args.rounds, || naive(url, sql, from_ns, to_ns)).await?;
            println!(
                "| {report} | {days} d | {ours:.1} | {theirs:.1} | {:.2} |",
                ours / theirs
            );
        }
    }
    Ok(())
}

async fn report_once(
    c: &mut ReportsClient<Channel>,
    report: &str,
    f: pb::ReportFilter,
) -> anyhow::Result<()> {
    let filter = Some(f);
    match report {
        "missed" => {
            let r = c.missed(pb::MissedRequest { filter }).await?.into_inner();
            if r.calls.is_empty() {
                bail!("the missed report is empty: the window holds no data");
            }
        }
        "unprocessed" => drop(
            c.unprocessed(pb::UnprocessedRequest {
                filter,
                ..Default::default()
            })
            .await?,
        ),
        "agents" => drop(c.agents(pb::AgentsRequest { filter }).await?),
        "callbacks" => drop(c.callbacks(pb::CallbacksRequest { filter }).await?),
        "calls" => drop(
            c.calls(pb::CallsRequest {
                filter,
                ..Default::default()
            })
            .await?,
        ),
        "heatmap" => drop(c.heatmap(pb::HeatmapRequest { filter }).await?),
        _ => drop(
            c.top_missers(pb::TopMissersRequest {
                filter,
                ..Default::default()
            })
            .await?,
        ),
    }
    Ok(())
}

/// A PostgreSQL 15 server kept under `dir` (created on first use), on a free loopback port.
struct Pg {
    dir: PathBuf,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let root = Command::new("id").arg("-u").output()?.stdout == b"0\n";
    let status = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/{cmd}")])
            .args(args)
            .status()?
    } else {
        Command::new(format!("{PG_BIN}/{cmd}"))
            .args(args)
            .status()?
    };
    if !status.success() {
        bail!("{cmd} {args:?} failed");
    }
    Ok(())
}

impl Pg {
    fn start(dir: &Path) -> anyhow::Result<(Pg, bool)> {
        let fresh = !dir.join("PG_VERSION").exists();
        std::fs::create_dir_all(dir)?;
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status();
        let d = dir.to_string_lossy().to_string();
        if fresh {
            as_postgres(
                "initdb",
                &["-D", &d, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            )?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=on -c shared_buffers=512MB"
        );
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                &d,
                "-o",
                &opts,
                "-w",
                "-l",
                &format!("{d}/log"),
                "start",
            ],
        )?;
        if fresh {
            as_postgres(
                "createdb",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "dialtone",
                ],
            )?;
        }
        Ok((
            Pg {
                dir: dir.to_owned(),
                port,
            },
            fresh,
        ))
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/dialtone", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().to_string();
        let _ = as_postgres("pg_ctl", &["-D", &d, "-m", "fast", "-w", "stop"]);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.data)?;
    let data = std::fs::canonicalize(&args.data)?;
    if matches!(args.backend.as_str(), "sqlite" | "both") {
        let file = data.join(format!("sqlite-{}.db", args.cdrs));
        let done = data.join(format!("sqlite-{}.done", args.cdrs));
        let fresh = !done.exists();
        if fresh {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", file.display()));
            }
        }
        let url = format!("sqlite://{}?mode=rwc", file.display());
        run("SQLite", &url, (fresh, &done, args.cdrs), &args).await?;
    }
    if matches!(args.backend.as_str(), "postgres" | "both") {
        let cdrs = args.pg_cdrs.unwrap_or(args.cdrs);
        let dir = data.join(format!("pg-{cdrs}"));
        let done = data.join(format!("pg-{cdrs}.done"));
        if !done.exists() && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let (pg, fresh) = Pg::start(&dir)?;
        run("PostgreSQL", &pg.url(), (fresh, &done, cdrs), &args).await?;
    }
    Ok(())
}
