//! A callback end to end: a client's call is missed; a supervisor orders a callback with
//! `dialtone callback`; the router reserves the agent and sends the order to the media node
//! over its node session; the agent's softphone (SIPp) rings showing the client's number and
//! answers; the client is dialled through the carrier (SIPp) with the number they called as
//! caller ID, answers, talks and hangs up; the agent gets the BYE. The reports then show an
//! answered outbound call and the client's missed group processed by the callback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

mod support;
use support::reports_client;
use support::sipp::{ensure_sipp, sipp};
use support::up::{e2e_config, register_contact, start};

const CLIENT: &str = "+380501234567";
const LINE: &str = "+380441230000";

/// The support line: a queue of anna's whose callback digit is `*`.
const SUPPORT: &str = "+380441230001";
const SUPPORT_QUEUE: &str = r#"
---
apiVersion: dialtone.dev/v1alpha1
kind: CallQueue
metadata: {name: support, namespace: e2e}
spec:
  members: {agents: [anna]}
  strategy: linear
  ringTimeoutSeconds: 10
  maxWaitSeconds: 300
  callbackDigit: "*"
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: support, namespace: e2e}
spec:
  steps:
    - queue: {name: support}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: support-line, namespace: e2e}
spec:
  number: "+380441230001"
  carriers: [loopback]
  schedule: always
  routes: {open: support}
"#;

fn callback_cli(url: &str, data: &Path, agent: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "callback", "--agent", agent, "--to", CLIENT, "--server", url,
        ])
        .arg("--data")
        .arg(data)
        .env_remove("DIALTONE_TOKEN")
        .output()
        .expect("dialtone callback runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_rings_the_agent_then_the_client_and_processes_the_missed_group() {
    ensure_sipp();
    let mut client = sipp("tests/sipp/callback_client.xml", &[]);
    client.ready().await;
    let config = e2e_config(client.port, "");
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let sip = running.sip_udp[0];
    let url = format!("http://{}", running.grpc);

    // 1. The client calls while nobody is signed in: a missed call, a to-do for someone.
    let missed = sipp(
        "media-node/tests/sipp/carrier_unanswered.xml",
        &["-s".into(), LINE.into(), sip.to_string()],
    );
    missed
        .outcome()
        .await
        .expect("the unanswered call got its 480");
    let mut reports = reports_client(&url, data.path()).await;
    let open = |view: pb::UnprocessedView| pb::UnprocessedRequest {
        filter: None,
        view: view as i32,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let groups = reports
            .unprocessed(open(pb::UnprocessedView::Open))
            .await
            .expect("unprocessed report")
            .into_inner()
            .groups;
        if groups.iter().any(|g| g.client == CLIENT) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the missed call never reached the to-do list"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 2. Anna signs in; a callback is ordered from the command line.
    let mut anna = sipp("tests/sipp/callback_agent.xml", &[]);
    anna.ready().await;
    let mut router = RouterClient::connect(url.clone()).await.expect("router");
    register_contact(&mut router, "anna", anna.port).await;
    // An unknown agent is refused with a message naming it, and rings nobody.
    let unknown = callback_cli(&url, data.path(), "nobody");
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("Agent/nobody does not exist"), "{stderr}");
    // The media node opens its session with the router in the background: until it has,
    // the order is refused as "no media node".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ordered = loop {
        let out = callback_cli(&url, data.path(), "anna");
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("no media node") && tokio::time::Instant::now() < deadline,
            "callback refused: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ordered.starts_with("callback cb-"), "{ordered}");
    assert!(
        ordered.contains(&format!("ringing anna, then {CLIENT} from {LINE}")),
        "{ordered}"
    );
    // Anna is now on the callback: a second order for her is refused.
    let busy = callback_cli(&url, data.path(), "anna");
    assert_eq!(busy.status.code(), Some(1), "a second callback for anna");

    let (a, c) = tokio::join!(anna.outcome(), client.outcome());
    a.expect("anna saw the client's number, answered and got the BYE");
    c.expect("the client saw our number, answered and hung up");

    // 3. The reports: an answered outbound call by anna, and the group processed by it.
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
            "the callback never reached the call log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.number, CLIENT, "{row:?}");
    assert_eq!(row.caller, LINE, "{row:?}");
    assert_eq!(row.status, "answered", "{row:?}");
    assert_eq!(row.answered_by, "anna", "{row:?}");
    assert!(row.callback, "{row:?}");
    let processed = reports
        .unprocessed(open(pb::UnprocessedView::Processed))
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

    shutdown.fire();
    running.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_callback_is_made_when_the_callers_turn_comes() {
    ensure_sipp();
    let mut client = sipp("tests/sipp/callback_client.xml", &[]);
    client.ready().await;
    let config = e2e_config(client.port, SUPPORT_QUEUE);
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let sip = running.sip_udp[0];
    let url = format!("http://{}", running.grpc);
    let mut router = RouterClient::connect(url.clone()).await.expect("router");

    // 1. Nobody is free: the client waits, presses *, and the node hangs up keeping the place.
    let waiting = sipp(
        "tests/sipp/carrier_queue_callback.xml",
        &["-s".into(), SUPPORT.into(), sip.to_string()],
    );
    waiting
        .outcome()
        .await
        .expect("the caller pressed * and the node hung up");
    let board = router
        .get_live_board(pb::GetLiveBoardRequest {
            omit_contacts: true,
        })
        .await
        .expect("live board")
        .into_inner();
    let queue = board
        .queues
        .iter()
        .find(|q| q.queue == "support")
        .expect("the support queue");
    assert!(
        queue
            .callers
            .iter()
            .any(|c| c.callback && c.caller == CLIENT),
        "the client keeps the place: {queue:?}"
    );

    // 2. Anna signs in: her turn comes, she is rung showing the client, then the client is
    //    dialled showing the number they called.
    let mut anna = sipp("tests/sipp/callback_agent.xml", &[]);
    anna.ready().await;
    register_contact(&mut router, "anna", anna.port).await;
    let (a, c) = tokio::join!(anna.outcome(), client.outcome());
    c.expect("the client was called back from the line they called, answered and hung up");
    a.expect("anna saw the client's number, answered and got the BYE");

    // 3. The queue is empty again; the call log has the queue call and its answered callback.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut reports = reports_client(&url, data.path()).await;
    loop {
        let board = router
            .get_live_board(pb::GetLiveBoardRequest {
                omit_contacts: true,
            })
            .await
            .expect("live board")
            .into_inner();
        let empty = board
            .queues
            .iter()
            .find(|q| q.queue == "support")
            .is_some_and(|q| q.callers.is_empty());
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        let callback = calls.iter().find(|r| {
            r.direction == pb::Direction::Outbound as i32
                && r.status == "answered"
                && r.ended_at.is_some()
        });
        if empty && let Some(row) = callback {
            assert_eq!(
                (row.number.as_str(), row.caller.as_str()),
                (CLIENT, SUPPORT)
            );
            assert_eq!(row.answered_by, "anna");
            assert!(row.callback, "{row:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the callback never completed: queue empty {empty}, calls {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missed = reports
        .missed(pb::MissedRequest::default())
        .await
        .expect("missed report")
        .into_inner();
    assert!(
        missed.calls.iter().all(|r| r.caller != CLIENT),
        "a queue caller whose callback was answered is not missed: {missed:?}"
    );

    shutdown.fire();
    running.join().await;
}
