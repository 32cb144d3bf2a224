//! Calls through a real media node with real SIP peers: SIPp as the carrier and as the
//! agents' softphones, a real router in-process. Every SIPp run must exit 0 (all its calls
//! successful); the node's call events are checked in order.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::time::Duration;

use dialtone_proto::v1 as pb;
use node_support::*;

const LIMIT: Duration = Duration::from_secs(40);

fn carrier_args(h: &Harness, number: &str) -> Vec<String> {
    vec![
        "-s".into(),
        number.into(),
        format!("{}:{}", h.sip.ip(), h.sip.port()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_is_bridged_and_ended_by_the_caller() {
    ensure_sipp();
    let mut h = start(32000).await;
    let mut anna = sipp("anna", "agent_answer.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_ring.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_call.xml",
        "127.0.0.1",
        &carrier_args(&h, RING_ALL),
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier");
    assert_ok(&a, "anna (answers)");
    assert_ok(&b, "bohdan (rings, gets CANCEL)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "route_selected",
                "step_entered",
                "leg_created",
                "leg_alerting",
                "leg_answered",
                "bridged",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"leg_cancelled"),
        "the colleague's leg is cancelled: {kinds:?}"
    );
    let cancelled = events.iter().find_map(|e| match &e.kind {
        Some(pb::call_event::Kind::LegCancelled(c)) => Some(c.cause),
        _ => None,
    });
    assert_eq!(
        cancelled,
        Some(pb::LegCancelCause::ColleagueAnswered as i32)
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as u64 + 1, "sequence without gaps");
        assert_eq!(e.event_id, format!("{}-{}", e.call_id, e.sequence));
        assert_eq!(e.node_id, "node-test");
        assert_eq!(e.trace_id, events[0].trace_id);
    }
    let Some(pb::call_event::Kind::CallEnded(end)) = &events.last().unwrap().kind else {
        panic!("last event is call_ended");
    };
    assert_eq!(end.hangup_party, pb::HangupParty::Client as i32);
    assert_eq!(end.disposition, pb::CallDisposition::Answered as i32);
    let metrics = h.health.render();
    assert!(metrics.contains("dialtone_active_calls 0"), "{metrics}");
    assert!(metrics.contains("dialtone_calls_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_from_a_stranger_gets_403() {
    ensure_sipp();
    let mut h = start(32200).await;
    let stranger = sipp(
        "stranger",
        "carrier_rejected.xml",
        "127.0.0.2",
        &carrier_args(&h, RING_ALL),
    );
    let r = stranger.wait(LIMIT).await;
    assert_ok(&r, "stranger (expects 403)");
    assert!(
        h.events.try_recv().is_err(),
        "no call events for a rejected stranger"
    );
    assert!(
        h.health
            .render()
            .contains("dialtone_security_rejections_total 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_agent_moves_the_plan_to_the_next_step() {
    ensure_sipp();
    let mut h = start(32400).await;
    let mut anna = sipp("anna", "agent_busy.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_answer.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_call.xml",
        "127.0.0.1",
        &carrier_args(&h, BUSY_THEN_NEXT),
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier");
    assert_ok(&a, "anna (486)");
    assert_ok(&b, "bohdan (answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "step_entered",
                "leg_created",
                "leg_failed",
                "step_entered",
                "leg_created",
                "leg_answered",
                "bridged",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    let failed = events.iter().find_map(|e| match &e.kind {
        Some(pb::call_event::Kind::LegFailed(f)) => Some(f.sip_code),
        _ => None,
    });
    assert_eq!(failed, Some(486));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hanging_up_cancels_every_ringing_leg() {
    ensure_sipp();
    let mut h = start(32600).await;
    let mut anna = sipp("anna", "agent_ring.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_ring.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_cancel.xml",
        "127.0.0.1",
        &carrier_args(&h, RING_ALL),
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier (CANCEL)");
    assert_ok(&a, "anna (gets CANCEL)");
    assert_ok(&b, "bohdan (gets CANCEL)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "leg_alerting",
                "caller_hung_up",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    let causes: Vec<i32> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::call_event::Kind::LegCancelled(c)) => Some(c.cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes, vec![pb::LegCancelCause::CallerHungUp as i32; 2]);
    let Some(pb::call_event::Kind::CallEnded(end)) = &events.last().unwrap().kind else {
        panic!("last event is call_ended");
    };
    assert_eq!(end.disposition, pb::CallDisposition::Abandoned as i32);
    assert_eq!(end.sip_code, 487);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_ring_falls_back_after_the_timeout() {
    ensure_sipp();
    let mut h = start(32800).await;
    let mut anna = sipp("anna", "agent_ring.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_answer.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_call.xml",
        "127.0.0.1",
        &carrier_args(&h, SEQUENTIAL),
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier");
    assert_ok(&a, "anna (rings 2 s, then CANCEL)");
    assert_ok(&b, "bohdan (answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "leg_created",
                "leg_alerting",
                "leg_cancelled",
                "leg_created",
                "leg_answered",
                "bridged",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    let cause = events.iter().find_map(|e| match &e.kind {
        Some(pb::call_event::Kind::LegCancelled(c)) => Some(c.cause),
        _ => None,
    });
    assert_eq!(cause, Some(pb::LegCancelCause::Timeout as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_re_invite_passes_through_to_the_agent() {
    ensure_sipp();
    let mut h = start(33900).await;
    let mut anna = sipp("anna", "agent_hold.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_ring.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_hold.xml",
        "127.0.0.1",
        &carrier_args(&h, RING_ALL),
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier (re-INVITE sendonly, expects recvonly)");
    assert_ok(&a, "anna (gets the re-INVITE sendonly)");
    assert_ok(&b, "bohdan");
    let events = call_events(&mut h.events, LIMIT).await;
    assert!(in_order(&events, &["bridged", "call_ended"]));
}
