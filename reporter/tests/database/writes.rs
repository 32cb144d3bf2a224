//! Writes on both databases: delivery order and repeats change nothing, bad events are
//! refused one by one, retention deletes the old records only.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::IngestBatch;
use dialtone_proto::v1::ingest_client::IngestClient;
use dialtone_reporter::time::to_proto_timestamp;
use dialtone_reporter::{CallAssembler, MissedReason, Policy};
use jiff::Timestamp;

use crate::support::reporter::{TestReporter, call, demo_snapshot, id_of, publish_raw};
use crate::support::{ADS, inbound, t};
use crate::{NOW, day, day_cdrs, day_events, load_day};

on_both!(order_repeats_and_bad_events_change_nothing);
on_both!(concurrent_senders_of_one_call_agree);
on_both!(retention_deletes_old_records);
on_both!(a_new_short_abandon_threshold_rejudges_stored_calls);

/// c05's caller hung up 8 s in, with agents alerted: `abandoned_short` under the default 10 s,
/// `not_answered` once the CallCenter says 5 s; the reporter re-assembles stored calls.
async fn a_new_short_abandon_threshold_rejudges_stored_calls(url: &str, data: &Path) {
    let r = TestReporter::start(url, data, Some(t(NOW))).await;
    load_day(&r).await;
    let reason = |cdr: Option<dialtone_reporter::Cdr>| cdr.unwrap().missed.unwrap();
    assert_eq!(
        reason(r.store.cdr("c05").await.unwrap()),
        MissedReason::AbandonedShort
    );
    let mut snapshot = demo_snapshot();
    snapshot.call_center.spec.missed_calls.short_abandon_seconds = 5;
    r.config.send(Arc::new(snapshot)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reason(r.store.cdr("c05").await.unwrap()) != MissedReason::NotAnswered {
        assert!(
            Instant::now() < deadline,
            "the stored calls were not re-judged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let policy = Policy {
        short_abandon_seconds: 5,
        ..Policy::default()
    };
    let mut assembler = CallAssembler::new(&policy);
    for event in day::calls().into_iter().flatten() {
        assembler.add(event).unwrap();
    }
    assert_eq!(
        r.store
            .cdrs_between(Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap(),
        assembler.cdrs()
    );
}

/// Each call's events split between two senders (odd and even sequence numbers) publishing at
/// the same time in batches of two: transactions that add events to the same call overlap, and
/// each must rebuild the CDR from the other's events too (PostgreSQL: the per-call lock).
async fn concurrent_senders_of_one_call_agree(url: &str, data: &Path) {
    let r = TestReporter::start(url, data, Some(t(NOW))).await;
    let (odd, even): (Vec<pb::CallEvent>, Vec<pb::CallEvent>) = day::calls()
        .into_iter()
        .flatten()
        .partition(|e| e.sequence % 2 == 1);
    let sender = |events: Vec<pb::CallEvent>| {
        let addr = r.addr;
        tokio::spawn(async move {
            let mut client = IngestClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            for pair in events.chunks(2) {
                let ack = client
                    .publish_batch(IngestBatch {
                        events: pair.iter().cloned().map(call).collect(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(ack.event_ids.len(), pair.len());
            }
        })
    };
    let (a, b) = (sender(odd), sender(even));
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(
        r.store
            .cdrs_between(Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap(),
        day_cdrs()
    );
}

async fn order_repeats_and_bad_events_change_nothing(url: &str, data: &Path) {
    let r = TestReporter::start(url, data, Some(t(NOW))).await;
    let mut client = r.ingest().await;
    // Newest first, in small batches, then everything again in one batch.
    let mut events: Vec<pb::IngestEvent> = day_events();
    events.reverse();
    for chunk in events.chunks(7) {
        let ack = client
            .publish_batch(IngestBatch {
                events: chunk.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        let sent: Vec<String> = chunk.iter().map(id_of).collect();
        let mut acked = ack.event_ids.clone();
        acked.sort();
        let mut expected = sent.clone();
        expected.sort();
        assert_eq!(acked, expected);
        assert!(ack.rejected.is_empty());
    }
    let ack = client
        .publish_batch(IngestBatch {
            events: events.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ack.event_ids.len(),
        events.len(),
        "repeats are acknowledged again"
    );
    assert_eq!(
        r.store
            .cdrs_between(Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap(),
        day_cdrs()
    );
    let before = r.store.counts().await.unwrap();
    assert_eq!(
        before.events,
        day::calls().into_iter().flatten().count() as u64
    );
    // The summaries the agents report reads (kept at ingestion, several calls per statement)
    // are those of the CDRs, whatever the delivery order and chunking.
    let (from, to) = (t("2026-11-23T00:00:00Z"), t("2026-11-24T00:00:00Z"));
    let snapshot = demo_snapshot();
    let policy = Policy::from(&snapshot.call_center.spec.missed_calls);
    let filter = dialtone_reporter::reports::Filter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let names = dialtone_reporter::reports_service::convert::display_names(&snapshot);
    let want: Vec<pb::AgentRow> = dialtone_reporter::reports::agents(&day_cdrs(), &policy, &filter)
        .agents
        .into_iter()
        .map(|row| dialtone_reporter::reports_service::convert::agent_row(row, &names))
        .collect();
    let got = r
        .reports()
        .await
        .agents(pb::AgentsRequest {
            filter: Some(pb::ReportFilter {
                from: Some(to_proto_timestamp(from)),
                to: Some(to_proto_timestamp(to)),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!want.is_empty());
    assert_eq!(got.agents, want);

    // An id reused with other content is refused (the first copy stays); so are malformed
    // events; the rest of the batch is stored.
    let first = day::calls().remove(0).remove(0);
    let mut reused = first.clone();
    reused.node_id = "media-node-7".into();
    let fresh = inbound("late")
        .from("+380501230000")
        .to(ADS)
        .at("2026-11-23T17:00:00Z")
        .closed()
        .wait(5.0)
        .system_hangs_up()
        .events();
    let mut batch: Vec<pb::IngestEvent> = fresh.iter().cloned().map(call).collect();
    batch.push(call(reused));
    batch.push(pb::IngestEvent { event: None });
    batch.push(call(pb::CallEvent {
        event_id: "no-call".into(),
        ..Default::default()
    }));
    let ack = client
        .publish_batch(IngestBatch { events: batch })
        .await
        .unwrap()
        .into_inner();
    let refused: BTreeSet<&str> = ack.rejected.iter().map(|x| x.event_id.as_str()).collect();
    assert_eq!(
        refused,
        BTreeSet::from(["", "no-call", first.event_id.as_str()])
    );
    let reason = &ack
        .rejected
        .iter()
        .find(|x| x.event_id == first.event_id)
        .unwrap()
        .reason;
    assert!(reason.contains("different content"), "{reason}");
    assert_eq!(ack.event_ids.len(), fresh.len());
    let kept = r.store.call_events(&first.call_id).await.unwrap();
    assert!(kept.contains(&first), "the first copy is kept");
    let after = r.store.counts().await.unwrap();
    assert_eq!(after.events, before.events + fresh.len() as u64);
    assert_eq!(after.cdrs, before.cdrs + 1);
}

async fn retention_deletes_old_records(url: &str, data: &Path) {
    let r = TestReporter::start(url, data, Some(t("2026-12-25T00:00:00Z"))).await;
    load_day(&r).await;
    let late = inbound("late")
        .from("+380501230000")
        .to(ADS)
        .at("2026-12-20T10:00:00Z")
        .closed()
        .wait(5.0)
        .system_hangs_up()
        .events();
    let late_events = late.len() as u64;
    publish_raw(r.addr, late.into_iter().map(call).collect()).await;
    let before = r.store.counts().await.unwrap();

    // The demo's retentionDays (400): nothing is that old.
    let none = dialtone_reporter::retention::apply(
        &r.store,
        &r.config.subscribe(),
        t("2026-12-25T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(none, Default::default());
    // 20 days before Christmas: the corpus day goes, the late call stays; each agent keeps
    // its last state.
    let gone = r
        .store
        .delete_older_than(20, t("2026-12-25T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(gone.cdrs, before.cdrs - 1);
    assert_eq!(gone.events, before.events - late_events);
    assert_eq!(gone.agent_states, 11 - 3);
    assert_eq!(gone.handlings, 2);
    let after = r.store.counts().await.unwrap();
    assert_eq!(
        (
            after.cdrs,
            after.events,
            after.agent_states,
            after.handlings
        ),
        (1, late_events, 3, 0)
    );
    let mut client = r.reports().await;
    let calls = client
        .calls(pb::CallsRequest {
            filter: Some(pb::ReportFilter {
                from: Some(to_proto_timestamp(t("2026-11-01T00:00:00Z"))),
                ..Default::default()
            }),
            direction: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    let ids: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["late"]);
}
