//! The node's runtime around calls: TCP transport, the backup scheme when the router is
//! down (with an outbound leg through a carrier), graceful drain, REGISTER reaching the
//! registrar, and the health flags.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::time::Duration;

use dialtone_proto::v1 as pb;
use node_support::*;
use tokio::net::UdpSocket;

const LIMIT: Duration = Duration::from_secs(40);

/// Sends one request over UDP and returns the first final (or given) response's text.
async fn exchange(to: std::net::SocketAddr, request: &str, want: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(want) {
            return text;
        }
    }
}

fn invite(to: std::net::SocketAddr, number: &str, branch: &str) -> String {
    format!(
        "INVITE sip:{number}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\nFrom: <sip:+380501234567@127.0.0.1>;tag={branch}\r\nTo: <sip:{number}@{to}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:9>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_tcp_is_answered() {
    ensure_sipp();
    let mut h = start(33000).await;
    let mut anna = sipp("anna", "agent_answer.xml", "127.0.0.1", &[]);
    let mut bohdan = sipp("bohdan", "agent_ring.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    bohdan.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    register(&mut h.router, "bohdan", bohdan.port).await;
    let tcp = h.node.tcp_addrs()[0];
    let carrier = sipp(
        "carrier-tcp",
        "carrier_call.xml",
        "127.0.0.1",
        &[
            "-t".into(),
            "t1".into(),
            "-s".into(),
            RING_ALL.into(),
            tcp.to_string(),
        ],
    );
    let (c, a, b) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT), bohdan.wait(LIMIT));
    assert_ok(&c, "carrier over TCP");
    assert_ok(&a, "anna");
    assert_ok(&b, "bohdan");
    let events = call_events(&mut h.events, LIMIT).await;
    assert!(in_order(
        &events,
        &["call_started", "leg_answered", "bridged", "call_ended"]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_down_runs_the_backup_scheme_through_the_carrier() {
    ensure_sipp();
    // The carrier's far end (where outbound legs go) is a SIPp that answers.
    let mut mobile = sipp("carrier-out", "agent_answer.xml", "127.0.0.1", &[]);
    mobile.ready(Duration::from_secs(5)).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    // No OPTIONS probes here: the far end is a SIPp that expects an INVITE first, and a probe
    // reaching it before the call would end its scenario (probing has its own tests).
    let snapshot = snapshot_with(&[
        (
            "address: sip.carrier-one.example:5060".into(),
            format!("address: 127.0.0.1:{}", mobile.port),
        ),
        (
            "  probe:\n    intervalSeconds: 10\n    failuresToDown: 3\n    successesToUp: 2\n"
                .into(),
            String::new(),
        ),
    ]);
    let mut h = start_full(33200, snapshot, |c| {
        c.router_url = dead_url;
        c.plan_timeout = Duration::from_millis(500);
        c.router_timeout = Duration::from_millis(500);
    })
    .await;
    let carrier = sipp(
        "carrier",
        "carrier_call.xml",
        "127.0.0.1",
        &["-s".into(), "+380441234567".into(), h.sip.to_string()],
    );
    let (c, m) = tokio::join!(carrier.wait(LIMIT), mobile.wait(LIMIT));
    assert_ok(&c, "carrier (inbound)");
    assert_ok(&m, "carrier far end (outbound leg answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "route_selected",
                "leg_created",
                "leg_answered",
                "bridged",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    let Some(pb::call_event::Kind::RouteSelected(route)) = &events[1].kind else {
        panic!("route_selected second: {kinds:?}");
    };
    assert!(route.backup, "the backup scheme runs");
    assert_eq!(route.scheme, "backup");
    let leg = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(pb::call_event::Kind::LegCreated(l)) => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(leg.destination, "+380671234567");
    assert_eq!(leg.carrier, "primary-trunk");
    assert_eq!(leg.destination_kind, pb::DestinationKind::Number as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_running_out_answers_480() {
    ensure_sipp();
    // Nobody registered: both agents are offline, the ring step has no leg, the plan ends.
    let mut h = start(33400).await;
    let carrier = sipp(
        "carrier",
        "carrier_unanswered.xml",
        "127.0.0.1",
        &["-s".into(), RING_ALL.into(), h.sip.to_string()],
    );
    assert_ok(&carrier.wait(LIMIT).await, "carrier (expects 480)");
    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "call_started",
            "route_selected",
            "step_entered",
            "call_ended"
        ]
    );
    let Some(pb::call_event::Kind::CallEnded(end)) = &events[3].kind else {
        panic!("call_ended");
    };
    assert_eq!(end.sip_code, 480);
    assert_eq!(end.disposition, pb::CallDisposition::NotAnswered as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_calls_and_lets_active_ones_finish() {
    ensure_sipp();
    let mut h = start(33600).await;
    let mut anna = sipp("anna", "agent_answer.xml", "127.0.0.1", &[]);
    anna.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    // The carrier's call holds 6 s instead of carrier_call.xml's 1 s: the INVITE sent while
    // draining must reach a node that still has an active call. With 1 s, a loaded machine
    // let the call end (and the drained node exit) before the INVITE was read: no answer.
    let scenarios = tempfile::tempdir().unwrap();
    let long_call = scenarios.path().join("carrier_long_call.xml");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/carrier_call.xml"),
    )
    .unwrap();
    assert!(text.contains(r#"<pause milliseconds="1000"/>"#));
    std::fs::write(
        &long_call,
        text.replace(
            r#"<pause milliseconds="1000"/>"#,
            r#"<pause milliseconds="6000"/>"#,
        ),
    )
    .unwrap();
    let carrier = sipp(
        "carrier",
        long_call.to_str().unwrap(),
        "127.0.0.1",
        &["-s".into(), BUSY_THEN_NEXT.into(), h.sip.to_string()],
    );
    // Wait for the call to be bridged, then drain.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let e = tokio::time::timeout_at(deadline, h.events.recv())
            .await
            .unwrap()
            .unwrap();
        if kind(&e) == "bridged" {
            break;
        }
    }
    assert!(h.health.readiness().is_ready());
    h.shutdown.send(true).unwrap();
    let refused = exchange(h.sip, &invite(h.sip, RING_ALL, "drain1"), "SIP/2.0 503").await;
    assert!(refused.contains("Retry-After:"), "{refused}");
    assert!(!h.health.readiness().is_ready(), "not ready while draining");
    let (c, a) = tokio::join!(carrier.wait(LIMIT), anna.wait(LIMIT));
    assert_ok(&c, "carrier (the active call ends normally)");
    assert_ok(&a, "anna");
    tokio::time::timeout(LIMIT, h.node.join())
        .await
        .expect("the node stops once its calls ended")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_reaches_the_registrar_and_options_are_answered() {
    let h = start(33800).await;
    let to = h.sip;
    let register = format!(
        "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKreg1;rport\r\nFrom: <sip:anna@{to}>;tag=r1\r\nTo: <sip:anna@{to}>\r\nCall-ID: reg1@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:anna@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let challenge = exchange(to, &register, "SIP/2.0 401").await;
    assert!(
        challenge.contains("WWW-Authenticate: Digest"),
        "{challenge}"
    );
    let options = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKopt1;rport\r\nFrom: <sip:probe@127.0.0.1>;tag=o1\r\nTo: <sip:{to}>\r\nCall-ID: opt1@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let ok = exchange(to, &options, "SIP/2.0 200").await;
    assert!(ok.contains("Allow:"), "{ok}");
    let metrics = h.health.render();
    assert!(
        metrics.contains("dialtone_sip_responses_total{code=\"401\"} 1"),
        "{metrics}"
    );
}
