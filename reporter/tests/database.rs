//! The store and the gRPC services on both databases — SQLite in a temporary file and a real
//! PostgreSQL 15 started by `support/pg.rs` — each scenario once per database:
//!
//! - `database/reports.rs`: the corpus day (`corpus/day.rs`), published over real gRPC on
//!   loopback, shuffled and with a third of its events twice, gives exactly the CDRs of the
//!   in-memory assembler and the same report rows (whole proto messages) as the pure report
//!   functions;
//! - `database/writes.rs`: out-of-order batches, repeats, a reused event id and malformed
//!   events change nothing; retention deletes what is older than the cutoff and nothing else;
//! - `database/groups.rs`: the groups ingestion keeps give the unprocessed list and the
//!   callbacks report the pure functions' rows over three months of random calls;
//! - `database/heat_zones.rs`: the heat map counts each number's calls in its schedule's zone;
//! - `database/handling.rs`: `HandleGroup` moves a group to the processed view with its reason
//!   and who, and refuses what it should.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test with the error

mod support;

#[path = "corpus/day.rs"]
mod day;

/// Runs the scenario `$name` (an `async fn(url, data_dir)` of the enclosing module) on SQLite
/// and on PostgreSQL, as the tests `$name::sqlite` and `$name::postgres`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = crate::support::reporter::sqlite_url(dir.path());
                super::$name(&url, dir.path()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let pg = crate::support::pg::PgServer::start();
                let dir = tempfile::tempdir().unwrap();
                super::$name(&pg.url(), dir.path()).await;
            }
        }
    };
}

#[path = "database/groups.rs"]
mod groups;
#[path = "database/handling.rs"]
mod handling;
#[path = "database/heat_zones.rs"]
mod heat_zones;
#[path = "database/reports.rs"]
mod reports_match;
#[path = "database/writes.rs"]
mod writes;

use std::collections::BTreeSet;

use dialtone_proto::v1 as pb;
use dialtone_reporter::{CallAssembler, Cdr, Policy};

use support::reporter::{TestReporter, agent, call, id_of, publish_raw};

/// The reports' "now": 20:00 in Kyiv, after the office closed.
const NOW: &str = "2026-11-23T18:00:00Z";

/// The corpus day's CDRs, assembled in memory: the reference.
fn day_cdrs() -> Vec<Cdr> {
    let mut assembler = CallAssembler::new(&Policy::default());
    for event in day::calls().into_iter().flatten() {
        assembler.add(event).unwrap();
    }
    assembler.cdrs()
}

/// The corpus day's call events and agent state changes, in envelopes.
fn day_events() -> Vec<pb::IngestEvent> {
    day::calls()
        .into_iter()
        .flatten()
        .map(call)
        .chain(day::agent_states().into_iter().map(agent))
        .collect()
}

/// The corpus day stored through gRPC (shuffled, a third twice) plus marta's handlings.
async fn load_day(r: &TestReporter) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut events = day_events();
    let unique: BTreeSet<String> = events.iter().map(id_of).collect();
    let again: Vec<pb::IngestEvent> = events
        .iter()
        .filter(|_| rng.u8(..3) == 0)
        .cloned()
        .collect();
    events.extend(again);
    rng.shuffle(&mut events);
    let (acked, rejected) = publish_raw(r.addr, events).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(acked, unique, "every event acknowledged");
    for h in day::handlings() {
        r.store.add_handling(&h).await.unwrap();
    }
}
