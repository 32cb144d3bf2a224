//! Agents dialling out from their softphones through Dialtone, end to end on `dialtone up`:
//! a client's call is missed; anna's softphone (SIPp) registers with digest authentication
//! and dials the client; Dialtone challenges the INVITE (407), checks the answer against
//! anna's Secret, asks the router for the caller ID (the number the client called) and the
//! carriers, and dials the client through the carrier (SIPp), which sees that caller ID,
//! answers and hangs up; anna's softphone gets the answer and the BYE. The reports then count
//! the call as anna's callback attempt and the client's missed group as processed by it.
//!
//! And the refusals: a wrong password is challenged again, a stranger gets 403, and neither
//! reaches the carrier.
//!
//! The softphone talks to Dialtone through a relay that hides the SHA-256 challenges SIPp
//! cannot answer (see `support::agent_dial`); the other paths (cancel, hang-up, failover,
//! refusals) are in `agent_dial_paths.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dialtone_proto::v1 as pb;

mod support;
use support::agent_dial::{
    CLIENT, LINE, Relay, config, dial_through, lines_with, logs, metric, register_through,
};
use support::reports_client;
use support::sipp::{ensure_sipp, sipp, sipp_at};
use support::up::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_a_missed_client_from_the_softphone_and_the_group_is_processed() {
    ensure_sipp();
    let mut carrier = sipp("tests/sipp/agent_dial_client.xml", &[]);
    carrier.ready().await;
    let config = config(carrier.port);
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let sip = running.sip_udp[0];
    let url = format!("http://{}", running.grpc);

    // 1. The client calls the line while nobody is signed in: a missed call.
    let missed = sipp(
        "media-node/tests/sipp/carrier_unanswered.xml",
        &["-s".into(), LINE.into(), sip.to_string()],
    );
    missed
        .outcome()
        .await
        .expect("the unanswered call got its 480");
    let mut reports = reports_client(&url, data.path()).await;
    let view = |view: pb::UnprocessedView| pb::UnprocessedRequest {
        filter: None,
        view: view as i32,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let groups = reports
            .unprocessed(view(pb::UnprocessedView::Open))
            .await
            .expect("unprocessed report")
            .into_inner()
            .groups;
        if let Some(g) = groups.iter().find(|g| g.client == CLIENT) {
            assert_eq!(g.callback_attempts, 0, "{g:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the missed call never reached the to-do list"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 2. anna's softphone registers and dials the client; the carrier sees the line as
    //    caller ID (its scenario checks From and the Request-URI), answers and hangs up.
    //    Meanwhile anna's state on the live board is watched: on a call while she talks.
    let router = running.router.clone();
    let watching = Arc::new(AtomicBool::new(true));
    let watch = {
        let watching = watching.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while watching.load(Ordering::Relaxed) {
                let state = router
                    .live_board(false)
                    .agents
                    .iter()
                    .find(|a| a.agent == "anna")
                    .map(|a| a.state);
                if let Some(state) = state
                    && seen.last() != Some(&state)
                {
                    seen.push(state);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let relay = Relay::start(sip);
    register_through(&relay).await;
    let softphone = dial_through(&relay, "tests/sipp/agent_dial_softphone.xml");
    let (s, c) = tokio::join!(softphone.outcome(), carrier.outcome());
    c.expect("the carrier got the INVITE from the line to the client, answered and hung up");
    s.expect("the softphone was challenged, authenticated, answered and got the BYE");
    drop(relay);

    // 3. The reports: an answered outbound call by anna, counted as her callback attempt,
    //    and the client's group processed by it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        if let Some(row) = calls
            .into_iter()
            .find(|r| r.direction == pb::Direction::Outbound as i32 && r.ended_at.is_some())
        {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call out never reached the call log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.number, CLIENT, "{row:?}");
    assert_eq!(row.caller, LINE, "{row:?}");
    assert_eq!(row.status, "answered", "{row:?}");
    assert_eq!(row.answered_by, "anna", "{row:?}");
    assert!(
        row.callback,
        "a call to a missed client is a callback: {row:?}"
    );

    let processed = reports
        .unprocessed(view(pb::UnprocessedView::Processed))
        .await
        .expect("processed view")
        .into_inner()
        .groups;
    let group = processed
        .iter()
        .find(|g| g.client == CLIENT)
        .expect("the client's group is processed");
    let how = group.processed.as_ref().expect("processing");
    assert_eq!(
        how.how,
        pb::ProcessedHow::CallbackAnswered as i32,
        "{how:?}"
    );
    assert_eq!(group.callback_attempts, 1, "{group:?}");

    let callbacks = reports
        .callbacks(pb::CallbacksRequest { filter: None })
        .await
        .expect("callbacks report")
        .into_inner();
    let g = callbacks
        .groups
        .iter()
        .find(|g| g.client == CLIENT)
        .expect("the client's group in the callbacks report");
    assert_eq!(g.attempts, 1, "{g:?}");
    assert_eq!(g.callback_agent, "anna", "{g:?}");
    assert!(g.reached, "{g:?}");
    assert_eq!(g.status, "within_sla", "{g:?}");
    let anna = callbacks
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .expect("anna's row");
    assert_eq!(anna.called_back, 1, "{anna:?}");

    // anna was on the call while she talked, and is free again once it ended (her
    // reservation for the call released).
    let on_call = pb::AgentState::OnCall as i32;
    let available = pb::AgentState::Available as i32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while running
        .router
        .live_board(false)
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .map(|a| a.state)
        != Some(available)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "anna never became available again after the call"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watching.store(false, Ordering::Relaxed);
    let seen = watch.await.expect("watcher");
    assert!(
        seen.contains(&on_call),
        "anna was never on_call during her call: {seen:?}"
    );

    shutdown.fire();
    running.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_stranger_never_reaches_the_carrier() {
    ensure_sipp();
    let logs = logs();
    // The carrier is a bare socket: anything reaching it is a failure.
    let carrier = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("carrier socket");
    let config = config(carrier.local_addr().expect("carrier address").port());
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let sip = running.sip_udp[0];
    let failures_before = metric(running.http, "dialtone_sip_auth_failures_total").await;
    let rejections_before = metric(running.http, "dialtone_security_rejections_total").await;

    // anna's softphone registers with the right password, then answers the INVITE's 407
    // with a wrong one: challenged again (its scenario expects the second 407).
    let relay = Relay::start(sip);
    register_through(&relay).await;
    dial_through(&relay, "tests/sipp/agent_dial_wrong_password.xml")
        .outcome()
        .await
        .expect("the wrong password got a fresh 407");
    drop(relay);
    assert_eq!(
        metric(running.http, "dialtone_sip_auth_failures_total").await - failures_before,
        1,
        "the wrong answer counts as an authentication failure"
    );

    // A stranger (never registered, no credentials) dialling the client gets 403.
    sipp_at(
        "127.0.0.3",
        "media-node/tests/sipp/carrier_rejected.xml",
        &["-s".into(), CLIENT.into(), sip.to_string()],
    )
    .outcome()
    .await
    .expect("the stranger got 403");
    assert_eq!(
        metric(running.http, "dialtone_security_rejections_total").await - rejections_before,
        1,
        "the stranger's INVITE is a security rejection"
    );
    // Traceable: a security line naming the stranger's address and why.
    let strangers = lines_with(&logs, "INVITE from an address that is no carrier");
    assert_eq!(strangers.len(), 1, "{strangers:?}");
    let line = &strangers[0];
    assert!(line.contains(" security: "), "target security: {line}");
    assert!(line.contains("127.0.0.3:"), "the source: {line}");
    assert!(line.contains("reason="), "the reason: {line}");

    // Nothing reached the carrier, and no call was recorded.
    let mut buf = [0u8; 2048];
    let heard = tokio::time::timeout(Duration::from_millis(500), carrier.recv_from(&mut buf)).await;
    assert!(
        heard.is_err(),
        "the carrier received {:?}",
        heard.map(|r| r.map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned()))
    );
    let mut reports = reports_client(&format!("http://{}", running.grpc), data.path()).await;
    let calls = reports
        .calls(pb::CallsRequest::default())
        .await
        .expect("calls report")
        .into_inner()
        .calls;
    assert!(calls.is_empty(), "no call recorded: {calls:?}");

    shutdown.fire();
    running.join().await;
}
