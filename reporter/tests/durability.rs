//! Durability (issue 8): nothing is lost and nothing is counted twice.
//!
//! - PostgreSQL is stopped while calls keep coming (60 s by default; set
//!   `DIALTONE_TEST_OUTAGE_SECONDS` and `DIALTONE_TEST_CALLS` to change it, as `scripts/soak`
//!   does): every event is acknowledged from the
//!   reporter's journal, and after the restart every call appears exactly once.
//! - The reporter is killed with SIGKILL in the middle of ingestion (a real separate process:
//!   this test binary re-run as `reporter_child`), restarted on the same data folder, and the
//!   sender resends what was not acknowledged: same CDRs, nothing twice — on SQLite, and on
//!   PostgreSQL with acknowledged events waiting in the journal at the moment of the kill.
//!
//! Each test checks the counts: stored events = events sent, CDRs = calls, rows of the call
//! log = calls (each id once), missed rows = the missed calls of the in-memory reference.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test with the error

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_reporter::reports::{self, Filter};
use dialtone_reporter::store::Store;
use dialtone_reporter::time::to_proto_timestamp;
use dialtone_reporter::{CallAssembler, Cdr, Policy};
use jiff::Timestamp;

use support::pg::PgServer;
use support::reporter::{Spool, TestReporter, call, sqlite_url};
use support::{t, traffic};

const CHILD_URL: &str = "DIALTONE_TEST_CHILD_URL";
const CHILD_DATA: &str = "DIALTONE_TEST_CHILD_DATA";

/// Not a test: the reporter process the SIGKILL tests start and kill. Without its
/// environment (e.g. `cargo test -- --ignored`) it returns at once.
#[test]
#[ignore = "a reporter process for the SIGKILL tests"]
fn reporter_child() {
    let (Ok(url), Ok(data)) = (std::env::var(CHILD_URL), std::env::var(CHILD_DATA)) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reporter = TestReporter::start(&url, Path::new(&data), None).await;
        println!("LISTENING {}", reporter.addr);
        std::future::pending::<()>().await;
    });
}

/// A reporter in its own process.
struct ChildReporter {
    process: std::process::Child,
    addr: String,
}

impl ChildReporter {
    fn spawn(url: &str, data: &Path) -> ChildReporter {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "reporter_child", "--ignored", "--nocapture"])
            .env(CHILD_URL, url)
            .env(CHILD_DATA, data)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("LISTENING ") {
                        break addr.to_owned();
                    }
                }
                _ => panic!("the reporter process exited before listening"),
            }
        };
        // Keep reading so that the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ChildReporter { process, addr }
    }

    /// SIGKILL: no destructor, no flush, no goodbye.
    fn kill(mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }
}

impl Drop for ChildReporter {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The traffic's events in the order they happen (calls interleave), as envelopes, and the
/// reference CDRs.
fn day_of_traffic(calls: usize) -> (Vec<pb::IngestEvent>, Vec<Cdr>) {
    let mut events: Vec<pb::CallEvent> = traffic(calls).into_iter().flatten().collect();
    events.sort_by_key(|e| {
        (
            e.at.as_ref().map(|a| (a.seconds, a.nanos)),
            e.event_id.clone(),
        )
    });
    let mut assembler = CallAssembler::new(&Policy::default());
    for e in &events {
        assembler.add(e.clone()).unwrap();
    }
    (events.into_iter().map(call).collect(), assembler.cdrs())
}

/// Every check, against a reporter started on the same database and data folder.
async fn check_counts(url: &str, data: &Path, events: usize, reference: &[Cdr]) {
    let store = Store::open(url).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.events, events as u64, "stored events = events sent");
    assert_eq!(counts.cdrs, reference.len() as u64, "one CDR per call");
    let stored = store
        .cdrs_between(Timestamp::MIN, Timestamp::MAX)
        .await
        .unwrap();
    assert!(stored == reference, "the CDRs are the reference's");
    store.close().await;

    let r = TestReporter::start(url, data, Some(t("2026-11-24T00:00:00Z"))).await;
    let period = pb::ReportFilter {
        from: Some(to_proto_timestamp(t("2026-11-23T00:00:00Z"))),
        to: Some(to_proto_timestamp(t("2026-11-24T00:00:00Z"))),
        limit: 1_000_000,
        ..Default::default()
    };
    let mut client = r.reports().await;
    let calls = client
        .calls(pb::CallsRequest {
            filter: Some(period.clone()),
            direction: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    let ids: BTreeSet<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(calls.len(), reference.len(), "every call in the call log");
    assert_eq!(ids.len(), calls.len(), "each call once");
    let missed = client
        .missed(pb::MissedRequest {
            filter: Some(period),
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    let expected = reports::missed(reference, &Filter::default());
    assert!(!expected.is_empty());
    assert_eq!(missed.len(), expected.len(), "every missed call once");
    r.abort();
}

fn outage() -> Duration {
    let secs = std::env::var("DIALTONE_TEST_OUTAGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_loses_nothing_and_counts_nothing_twice() {
    let pg = PgServer::start();
    let data = tempfile::tempdir().unwrap();
    let url = pg.url();
    // `scripts/soak` raises both: a ten-minute outage with thousands of calls.
    let calls = std::env::var("DIALTONE_TEST_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    let (events, reference) = day_of_traffic(calls);
    let r = TestReporter::start(&url, data.path(), None).await;
    let addr = r.addr.to_string();
    let mut spool = Spool::default();
    let (a, b) = (events.len() / 4, events.len() * 3 / 4);

    for chunk in events[..a].chunks(50) {
        spool.push(chunk.to_vec());
        spool.flush_all(&addr, Duration::from_secs(30)).await;
    }
    assert_eq!(r.store.counts().await.unwrap().events, a as u64);

    // The database goes away while calls keep coming.
    pg.stop();
    let started = Instant::now();
    let chunks: Vec<&[pb::IngestEvent]> = events[a..b].chunks(25).collect();
    let pause = outage() / u32::try_from(chunks.len()).unwrap();
    for chunk in &chunks {
        spool.push(chunk.to_vec());
        spool.flush_all(&addr, Duration::from_secs(30)).await;
        tokio::time::sleep(pause).await;
    }
    assert_eq!(
        spool.pending(),
        0,
        "everything acknowledged during the outage"
    );
    assert_eq!(spool.failures, 0, "no sender had to keep anything");
    assert!(r.ingestor.is_degraded());
    let journal = r.ingestor.journal_stats().unwrap();
    assert!(
        journal.bytes > 0,
        "the acknowledged events wait in the journal"
    );
    eprintln!(
        "outage of {:.0?}: {} events acknowledged from the journal ({} segments, {} bytes)",
        started.elapsed(),
        b - a,
        journal.segments,
        journal.bytes
    );

    pg.start_again();
    for chunk in events[b..].chunks(50) {
        spool.push(chunk.to_vec());
        spool.flush_all(&addr, Duration::from_secs(30)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.ingestor.is_degraded() || r.ingestor.journal_stats().unwrap().segments > 0 {
        assert!(Instant::now() < deadline, "the journal did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spool.acked.len(), events.len());
    r.abort();
    check_counts(&url, data.path(), events.len(), &reference).await;
}

/// Sends `events` in chunks of `size`, each flushed before the next.
async fn send(spool: &mut Spool, addr: &str, events: &[pb::IngestEvent], size: usize) {
    for chunk in events.chunks(size) {
        spool.push(chunk.to_vec());
        spool.flush_all(addr, Duration::from_secs(30)).await;
    }
}

/// Streams `events` and kills the reporter as soon as the first of them are acknowledged,
/// while it is storing the rest.
async fn kill_mid_ingestion(spool: &mut Spool, child: ChildReporter, events: &[pb::IngestEvent]) {
    spool.push(events.to_vec());
    let before = spool.pending();
    spool.flush_until_first_ack(&child.addr).await.unwrap();
    child.kill();
    eprintln!(
        "killed with {} of {before} events of the last flush unacknowledged",
        spool.pending()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingestion_on_sqlite_then_restart() {
    let data = tempfile::tempdir().unwrap();
    let url = sqlite_url(data.path());
    let (events, reference) = day_of_traffic(600);
    let third = events.len() / 3;
    let mut spool = Spool::default();

    let child = ChildReporter::spawn(&url, data.path());
    send(&mut spool, &child.addr, &events[..third], 100).await;
    kill_mid_ingestion(&mut spool, child, &events[third..2 * third]).await;

    // Restarted on the same folder; the sender resends what was not acknowledged.
    let child = ChildReporter::spawn(&url, data.path());
    spool.flush_all(&child.addr, Duration::from_secs(30)).await;
    send(&mut spool, &child.addr, &events[2 * third..], 100).await;
    assert_eq!(spool.acked.len(), events.len());
    child.kill();
    check_counts(&url, data.path(), events.len(), &reference).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_journal_then_postgres_returns() {
    let pg = PgServer::start();
    let data = tempfile::tempdir().unwrap();
    let url = pg.url();
    let (events, reference) = day_of_traffic(300);
    let third = events.len() / 3;
    let mut spool = Spool::default();

    let child = ChildReporter::spawn(&url, data.path());
    send(&mut spool, &child.addr, &events[..third], 100).await;
    pg.stop();
    send(&mut spool, &child.addr, &events[third..2 * third], 50).await;
    assert_eq!(spool.failures, 0, "acknowledged from the journal");
    let segments = || {
        std::fs::read_dir(data.path().join("journal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".journal"))
            })
            .count()
    };
    assert!(segments() > 0, "the journal holds the acknowledged events");
    child.kill();

    // The database comes back; a new reporter replays the journal left by the killed one.
    pg.start_again();
    let child = ChildReporter::spawn(&url, data.path());
    send(&mut spool, &child.addr, &events[2 * third..], 100).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while segments() > 0 {
        assert!(Instant::now() < deadline, "the journal was not replayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill();
    check_counts(&url, data.path(), events.len(), &reference).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_and_reconnects() {
    use dialtone_reporter::store::{OpenOptions, StoreError};
    let quick = OpenOptions {
        acquire_timeout: Duration::from_millis(500),
        ..OpenOptions::default()
    };
    // Nothing listens: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused =
        Store::open_with(&format!("postgres://postgres@127.0.0.1:{port}/x"), &quick).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable { .. })),
        "{refused:?}"
    );

    let pg = PgServer::start();
    let store = Store::open_with(&pg.url(), &quick).await.unwrap();
    store.ping().await.unwrap();
    pg.stop();
    let down = store.ping().await.unwrap_err();
    assert_eq!(down.kind(), "unavailable", "{down}");
    assert!(down.is_transient());
    pg.start_again();
    store.ping().await.unwrap();
    assert_eq!(store.counts().await.unwrap().events, 0);
}
