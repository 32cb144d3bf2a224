//! The other paths of an agent's call out from the softphone, end to end on `dialtone up`
//! with SIPp as softphone (through the relay of `support::agent_dial`) and as carrier(s):
//!
//! - anna gives up while the client's phone rings: the carrier sees the CANCEL, the
//!   softphone gets 487, the call is recorded not answered;
//! - anna, away at lunch, calls a client anyway and hangs up after the answer: the carrier
//!   sees the BYE, and anna is back at lunch;
//! - the first carrier answers 503 and the next one takes the call (failover within the
//!   agent's call); with a single carrier failing the softphone gets 503;
//! - a blocklisted number is refused with 403 before any carrier hears of it, and recorded
//!   as `forbidden_destination`.
//!
//! After each call anna is available again (her reservation for the call released) — or, when
//! she dialled while away, away again with her label.

use std::path::Path;
use std::time::Duration;

use dialtone::shutdown::Shutdown;
use dialtone::standalone::Running;
use dialtone_proto::v1 as pb;
use dialtone_router::presence::Manual;

mod support;
use support::agent_dial::{
    CLIENT, Relay, config, config_with, dial_number_through, dial_through, lines_with, logs,
    register_through, wait_for_anna,
};
use support::reports_client;
use support::sipp::{ensure_sipp, sipp};
use support::up::start;

/// A number of the demo's kind of blocklist.
const BLOCKED: &str = "+380931110000";

/// The call log's only outbound call, once it has ended (20 s at most).
async fn call_out_row(running: &Running, data: &Path) -> pb::CallRow {
    let mut reports = reports_client(&format!("http://{}", running.grpc), data).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        let out: Vec<pb::CallRow> = calls
            .into_iter()
            .filter(|r| r.direction == pb::Direction::Outbound as i32)
            .collect();
        assert!(out.len() <= 1, "one call out only: {out:?}");
        if let Some(row) = out.into_iter().find(|r| r.ended_at.is_some()) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call out never reached the call log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// anna is free again, then Dialtone stops.
async fn finish(running: Running, shutdown: Shutdown) {
    wait_for_anna(
        &running,
        pb::AgentState::Available,
        "anna never became available again after the call",
    )
    .await;
    shutdown.fire();
    running.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_cancels_while_the_client_rings() {
    ensure_sipp();
    // The client's phone rings until cancelled: 180, then 200 to the CANCEL and 487.
    let mut carrier = sipp("media-node/tests/sipp/agent_ring.xml", &[]);
    carrier.ready().await;
    let config = config(carrier.port);
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let relay = Relay::start(running.sip_udp[0]);
    register_through(&relay).await;

    let softphone = dial_through(&relay, "tests/sipp/agent_dial_cancel.xml");
    let (s, c) = tokio::join!(softphone.outcome(), carrier.outcome());
    c.expect("the carrier rang and got the CANCEL");
    s.expect("the softphone's CANCEL got its 487");

    let row = call_out_row(&running, data.path()).await;
    assert_eq!(row.number, CLIENT, "{row:?}");
    assert_eq!(row.status, "not_answered", "{row:?}");
    assert!(row.answered_by.is_empty(), "{row:?}");
    assert!(row.reason.is_empty(), "a cancel is no refusal: {row:?}");
    assert_eq!(row.hangup_party, pb::HangupParty::Agent as i32, "{row:?}");
    finish(running, shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hangs_up_and_the_carrier_gets_the_bye() {
    ensure_sipp();
    // The client answers and waits for the BYE.
    let mut carrier = sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    carrier.ready().await;
    let config = config(carrier.port);
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let relay = Relay::start(running.sip_udp[0]);
    register_through(&relay).await;

    // anna is away at lunch and calls a client anyway: allowed, and away she stays.
    running
        .router
        .set_state("anna", Manual::Away("lunch".into()))
        .expect("anna goes to lunch");

    let softphone = dial_through(&relay, "tests/sipp/agent_dial_hangs_up.xml");
    let (s, c) = tokio::join!(softphone.outcome(), carrier.outcome());
    c.expect("the carrier answered and got the BYE");
    s.expect("the softphone was answered and its BYE accepted");

    let row = call_out_row(&running, data.path()).await;
    assert_eq!(row.status, "answered", "{row:?}");
    assert_eq!(row.answered_by, "anna", "{row:?}");
    assert_eq!(row.hangup_party, pb::HangupParty::Agent as i32, "{row:?}");
    wait_for_anna(
        &running,
        pb::AgentState::Away,
        "anna did not return to lunch after the call",
    )
    .await;
    let board = running.router.live_board(false);
    let anna = board
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .expect("anna's line");
    assert_eq!(anna.away_label, "lunch", "{anna:?}");
    assert_eq!(
        anna.active_calls, 0,
        "the call's reservation released: {anna:?}"
    );
    shutdown.fire();
    running.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_carrier_is_skipped_within_the_agents_call() {
    ensure_sipp();
    // `loopback` (priority 0) answers 503; `backup` (priority 10) answers.
    let mut first = sipp("media-node/tests/sipp/carrier_503.xml", &[]);
    let mut second = sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    first.ready().await;
    second.ready().await;
    let backup = format!(
        r#"
---
apiVersion: dialtone.dev/v1alpha1
kind: Carrier
metadata: {{name: backup, namespace: e2e}}
spec:
  address: 127.0.0.1:{}
  priority: 10
"#,
        second.port
    );
    let config = config_with(first.port, &backup);
    // Both lines (the caller ID is one of them) leave through both carriers.
    let manifests = config.path().join("callcenter.yaml");
    let text = std::fs::read_to_string(&manifests).expect("manifests");
    assert!(text.contains("carriers: [loopback]"), "the lines' carriers");
    std::fs::write(
        &manifests,
        text.replace("carriers: [loopback]", "carriers: [loopback, backup]"),
    )
    .expect("write manifests");
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let relay = Relay::start(running.sip_udp[0]);
    register_through(&relay).await;

    let softphone = dial_through(&relay, "tests/sipp/agent_dial_hangs_up.xml");
    let (s, f, b) = tokio::join!(softphone.outcome(), first.outcome(), second.outcome());
    f.expect("the first carrier got the INVITE and refused it with 503");
    b.expect("the backup carrier answered and got the BYE");
    s.expect("the softphone was answered after the failover");

    let row = call_out_row(&running, data.path()).await;
    assert_eq!(row.status, "answered", "{row:?}");
    assert_eq!(row.answered_by, "anna", "{row:?}");
    finish(running, shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_carrier_failing_gives_the_softphone_503() {
    ensure_sipp();
    let mut carrier = sipp("media-node/tests/sipp/carrier_503.xml", &[]);
    carrier.ready().await;
    let config = config(carrier.port);
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let relay = Relay::start(running.sip_udp[0]);
    register_through(&relay).await;

    let softphone = dial_through(&relay, "tests/sipp/agent_dial_refused_503.xml");
    let (s, c) = tokio::join!(softphone.outcome(), carrier.outcome());
    c.expect("the carrier got the INVITE and refused it with 503");
    s.expect("the softphone got 503");

    let row = call_out_row(&running, data.path()).await;
    assert_eq!(row.status, "not_answered", "{row:?}");
    assert!(
        row.reason.is_empty(),
        "carrier trouble is no forbidden destination: {row:?}"
    );
    finish(running, shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklisted_number_is_refused_with_403_and_recorded() {
    ensure_sipp();
    let logs = logs();
    // The carrier is a bare socket: anything reaching it is a failure.
    let carrier = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("carrier socket");
    let blocklist = format!(
        r#"
---
apiVersion: dialtone.dev/v1alpha1
kind: Blocklist
metadata: {{name: spam, namespace: e2e}}
spec:
  entries:
    - number: "{BLOCKED}"
      reason: robocaller
"#
    );
    let config = config_with(
        carrier.local_addr().expect("carrier address").port(),
        &blocklist,
    );
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let relay = Relay::start(running.sip_udp[0]);
    register_through(&relay).await;

    dial_number_through(&relay, "tests/sipp/agent_dial_refused_403.xml", BLOCKED)
        .outcome()
        .await
        .expect("the softphone got 403");

    let row = call_out_row(&running, data.path()).await;
    assert_eq!(row.number, BLOCKED, "{row:?}");
    assert_eq!(row.status, "not_answered", "{row:?}");
    assert_eq!(row.reason, "forbidden_destination", "{row:?}");
    let mut buf = [0u8; 2048];
    let heard = tokio::time::timeout(Duration::from_millis(300), carrier.recv_from(&mut buf)).await;
    assert!(
        heard.is_err(),
        "the carrier received {:?}",
        heard.map(|r| r.map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned()))
    );

    // The refusal is traceable: a security line naming where the INVITE came from and why,
    // inside the `sip.agent_dial` span, which carries the call's id.
    let refusals = lines_with(&logs, "call out refused by policy");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let line = &refusals[0];
    assert!(line.contains(" security: "), "target security: {line}");
    assert!(
        line.contains("source=\"UDP:127.0.0.2:"),
        "the source (the softphone's relay): {line}"
    );
    assert!(line.contains("blocklisted"), "the reason: {line}");
    assert!(
        line.contains(&format!("call_id={}", row.call_id))
            && line.contains("sip.agent_dial{")
            && line
                .split("sip.agent_dial{")
                .nth(1)
                .is_some_and(|span| span.contains(&format!("call_id={}", row.call_id))
                    || span.contains(&format!("call_id=\"{}\"", row.call_id))),
        "the span sip.agent_dial names the call {}: {line}",
        row.call_id
    );
    finish(running, shutdown).await;
}
