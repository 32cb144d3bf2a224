//! The groups ingestion keeps give the unprocessed list and the callbacks report exactly what
//! the pure functions give over the CDRs, on both databases: three months of random calls of
//! a few dozen clients (misses, callbacks answered or not, later answered calls, anonymous
//! misses, handlings by client and by group id), ingested shuffled, in small batches, with a
//! tenth of the events twice — and report windows that cut groups in two.

use dialtone_proto::v1 as pb;
use dialtone_reporter::call_metrics::unprocessed_backlog;
use dialtone_reporter::reports::{self, Filter, HandleReason, HandleTarget, Handling, View};
use dialtone_reporter::reports_service::convert;
use dialtone_reporter::time::to_proto_timestamp;
use dialtone_reporter::{Cdr, Policy};
use jiff::{SignedDuration, Timestamp};
use std::path::Path;

use crate::support::reporter::{TestReporter, call, demo_snapshot, publish_raw};
use crate::support::{inbound, outbound, t};

on_both!(stored_groups_match_the_pure_functions);

const START: &str = "2026-08-01T00:00:00Z";
const DAYS: i64 = 90;

fn at(base: Timestamp, secs: i64) -> String {
    (base + SignedDuration::from_secs(secs)).to_string()
}

/// Random calls over `DAYS` days; returns the events and the handlings (made in between).
fn history(seed: u64) -> (Vec<pb::IngestEvent>, Vec<Handling>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let base = t(START);
    let mut events = Vec::new();
    let mut handlings = Vec::new();
    for i in 0..600u32 {
        let client = format!("+38050000{:04}", rng.u32(..40));
        let start = rng.i64(0..DAYS * 86_400);
        let id = format!("g{i}");
        let anonymous = rng.u8(..20) == 0;
        let mut call = inbound(&id);
        call = if anonymous {
            call.anonymous()
        } else {
            call.from(&client)
        };
        let call = call.to("+380441234567").at(&at(base, start)).open("main");
        let (a, b) = ("anna", "bohdan");
        let roll = rng.u8(..100);
        let events_of = if roll < 45 {
            call.ring(&[a])
                .alert(a)
                .wait(3.0)
                .answer(a)
                .talk(60.0, pb::HangupParty::Client)
        } else {
            call.ring(&[a, b])
                .alert(a)
                .alert(b)
                .wait(15.0)
                .timeout()
                .caller_hangs_up()
        };
        events.extend(events_of.events().into_iter().map(call_envelope));
        if roll >= 45 && !anonymous && rng.u8(..10) < 6 {
            let reach = if rng.bool() { 500 } else { 5 * 86_400 };
            let later = start + 30 + rng.i64(0..reach);
            let cb = outbound(&format!("{id}-cb"))
                .from("+380441234567")
                .to(&client)
                .by(if rng.bool() { a } else { b })
                .at(&at(base, later))
                .dial_client()
                .alert("client")
                .wait(5.0);
            let cb = if rng.bool() {
                cb.answer("client").talk(30.0, pb::HangupParty::Agent)
            } else {
                cb.timeout()
                    .end(pb::HangupParty::System, pb::CallDisposition::NotAnswered, 0)
            };
            events.extend(cb.events().into_iter().map(call_envelope));
        }
        if roll >= 45 && rng.u8(..12) == 0 {
            let target = if anonymous || rng.bool() {
                HandleTarget::Group(id.clone())
            } else {
                HandleTarget::Client(client.clone())
            };
            handlings.push(Handling {
                target,
                reason: HandleReason::ResolvedElsewhere,
                note: None,
                by: "marta".into(),
                at: base + SignedDuration::from_secs(start + 60 + rng.i64(0..3 * 86_400)),
            });
        }
    }
    let again: Vec<pb::IngestEvent> = events
        .iter()
        .filter(|_| rng.u8(..10) == 0)
        .cloned()
        .collect();
    events.extend(again);
    rng.shuffle(&mut events);
    (events, handlings)
}

fn call_envelope(e: pb::CallEvent) -> pb::IngestEvent {
    call(e)
}

fn period(from: Timestamp, to: Timestamp, limit: u32) -> pb::ReportFilter {
    pb::ReportFilter {
        from: Some(to_proto_timestamp(from)),
        to: Some(to_proto_timestamp(to)),
        limit,
        ..Default::default()
    }
}

async fn stored_groups_match_the_pure_functions(url: &str, data: &Path) {
    let now = t(START) + SignedDuration::from_hours(24 * (DAYS + 8));
    let r = TestReporter::start(url, data, Some(now)).await;
    let (events, handlings) = history(11);
    // Handlings are made as time goes by: store each after the calls, as the product does.
    for chunk in events.chunks(400) {
        let (_, rejected) = publish_raw(r.addr, chunk.to_vec()).await;
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    for h in &handlings {
        r.store.add_handling(h).await.unwrap();
    }
    assert!(
        r.store.groups_usable(now).await.unwrap(),
        "the stored groups are complete and hold nothing after now: the fast path is taken"
    );
    assert!(
        !r.store.groups_usable(t(START)).await.unwrap(),
        "a report as of a time before the last fact cannot use the stored groups"
    );
    let cdrs: Vec<Cdr> = r
        .store
        .cdrs_between(Timestamp::MIN, Timestamp::MAX)
        .await
        .unwrap();
    let policy = Policy::from(&demo_snapshot().call_center.spec.missed_calls);
    let mut client = r.reports().await;

    // The unprocessed list (window: the last 30 days up to now, which cuts groups), each view.
    for (view, pb_view) in [
        (View::Open, pb::UnprocessedView::Open),
        (View::Processed, pb::UnprocessedView::Processed),
        (View::All, pb::UnprocessedView::All),
    ] {
        let want = reports::unprocessed(&cdrs, &handlings, &policy, now, &Filter::default(), view);
        assert!(!want.is_empty(), "{view:?}: the history has such groups");
        let got = client
            .unprocessed(pb::UnprocessedRequest {
                filter: None,
                view: pb_view as i32,
            })
            .await
            .unwrap()
            .into_inner();
        if view == View::Open {
            let backlog = unprocessed_backlog(&r.store, &policy, now).await.unwrap();
            assert_eq!(
                backlog,
                want.len(),
                "the backlog metric counts the open groups"
            );
        }
        let want: Vec<pb::UnprocessedGroup> = want.into_iter().map(convert::group).collect();
        assert_eq!(got.groups, want, "unprocessed, {view:?}");
    }
    // A limit: the oldest groups first, and the report says it truncated.
    let got = client
        .unprocessed(pb::UnprocessedRequest {
            filter: Some(pb::ReportFilter {
                limit: 3,
                ..Default::default()
            }),
            view: pb::UnprocessedView::All as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let all = reports::unprocessed(
        &cdrs,
        &handlings,
        &policy,
        now,
        &Filter::default(),
        View::All,
    );
    let want: Vec<pb::UnprocessedGroup> = all.into_iter().take(3).map(convert::group).collect();
    assert_eq!(got.groups, want);
    assert!(got.meta.unwrap().truncated);

    // The callbacks report over periods whose context window starts mid-history.
    let base = t(START);
    for (from_day, to_day) in [(0, DAYS + 1), (35, 50), (40, 75), (61, 62), (31, 90)] {
        let from = base + SignedDuration::from_hours(24 * from_day);
        let to = base + SignedDuration::from_hours(24 * to_day);
        let ctx_from = from - policy.unprocessed_window();
        // What the report reads without stored groups: the calls from the context's start.
        let window: Vec<Cdr> = cdrs
            .iter()
            .filter(|c| c.started_at >= ctx_from)
            .cloned()
            .collect();
        let filter = Filter {
            from: Some(from),
            to: Some(to),
            ..Filter::default()
        };
        let want = reports::callbacks(&window, &handlings, &policy, now, &filter);
        for limit in [0, 4] {
            let got = client
                .callbacks(pb::CallbacksRequest {
                    filter: Some(period(from, to, limit)),
                })
                .await
                .unwrap()
                .into_inner();
            let rows: Vec<pb::CallbackGroupRow> = want
                .groups
                .iter()
                .take(if limit == 0 { usize::MAX } else { 4 })
                .cloned()
                .map(convert::callback_group)
                .collect();
            assert!(
                !want.groups.is_empty(),
                "days {from_day}..{to_day}: groups exist"
            );
            assert_eq!(
                got.groups, rows,
                "callbacks rows, days {from_day}..{to_day}"
            );
            let agents: Vec<pb::CallbackAgentRow> = want
                .agents
                .iter()
                .cloned()
                .map(convert::callback_agent)
                .collect();
            assert_eq!(
                got.agents, agents,
                "callbacks agents, days {from_day}..{to_day}"
            );
            assert_eq!(
                got.total,
                Some(convert::callback_agent(want.total.clone())),
                "callbacks total, days {from_day}..{to_day}"
            );
        }
    }
}
