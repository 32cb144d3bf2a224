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
//! SIPp answers only MD5 challenges and gives up when the first one names SHA-256, which
//! Dialtone offers first (RFC 8760's order of preference): the softphone talks to Dialtone
//! through a relay on 127.0.0.2 that drops the SHA-256 challenge lines, as the SIP benchmark
//! does. Dialtone sees the relay's address as the softphone's (it registers and dials from
//! it); 127.0.0.2 is not the carrier's address.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dialtone::shutdown::Shutdown;
use dialtone::standalone::{self, Running, Settings};
use dialtone_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::reports_client;
use support::sipp::{ensure_sipp, sipp, sipp_at};

const CLIENT: &str = "+380501234567";
const LINE: &str = "+380441230000";

/// A PhoneNumber that sorts before the line: the caller ID's fallback ("the first
/// PhoneNumber"), so that a carrier seeing the line proves the client's history was used.
const OTHER_LINE: &str = r#"
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: other-line, namespace: e2e}
spec:
  number: "+380441229999"
  carriers: [loopback]
  schedule: always
  routes: {open: sales}
"#;

/// The e2e call center with its carrier at `carrier`, plus the other line.
fn config(carrier: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/callcenter.yaml"),
    )
    .expect("e2e manifests");
    let text = text.replace("127.0.0.1:5999", &format!("127.0.0.1:{carrier}"));
    assert!(
        text.contains(&format!(":{carrier}")),
        "carrier address patched"
    );
    std::fs::write(dir.path().join("callcenter.yaml"), text + OTHER_LINE).expect("write manifests");
    dir
}

async fn start(config: &Path, data: &Path) -> (Running, Shutdown) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let settings = Settings {
        config: config.to_owned(),
        data: data.to_owned(),
        database_url: None,
        grpc: any,
        http: any,
        sip: Some(any),
    };
    let shutdown = Shutdown::new();
    let running = standalone::start(&settings, shutdown.clone())
        .await
        .expect("standalone starts");
    (running, shutdown)
}

/// A UDP relay on 127.0.0.2 between a SIPp softphone and Dialtone that drops the
/// `algorithm=SHA-256` challenge lines (SIPp answers MD5 only). Stops when dropped.
struct Relay {
    /// Where the softphone sends (its `-s` remote).
    front: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(node: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.2:0").expect("relay front");
        let back = UdpSocket::bind("127.0.0.2:0").expect("relay back");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
        }
        let addr = front.local_addr().expect("front address");
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let (front2, back2) = (
            front.try_clone().expect("clone"),
            back.try_clone().expect("clone"),
        );
        let (stop1, stop2, client1) = (stop.clone(), stop.clone(), client.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop1.load(Ordering::Relaxed) {
                let Ok((n, from)) = front2.recv_from(&mut buf) else {
                    continue;
                };
                if let Ok(mut c) = client1.lock() {
                    *c = Some(from);
                }
                let _ = back2.send_to(&buf[..n], node);
            }
        });
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, _)) = back.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]);
                let kept: String = text
                    .split_inclusive("\r\n")
                    .filter(|l| {
                        let lower = l.to_ascii_lowercase();
                        !((lower.starts_with("www-authenticate:")
                            || lower.starts_with("proxy-authenticate:"))
                            && lower.contains("algorithm=sha-256"))
                    })
                    .collect();
                let to = client.lock().ok().and_then(|c| *c);
                if let Some(to) = to {
                    let _ = front.send_to(kept.as_bytes(), to);
                }
            }
        });
        Relay { front: addr, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Registers anna's softphone (SIPp) through `relay`: Dialtone then knows the relay's
/// address as hers.
async fn register_through(relay: &Relay) {
    sipp_at(
        "127.0.0.2",
        "tests/sipp/agent_register.xml",
        &[relay.front.to_string()],
    )
    .outcome()
    .await
    .expect("anna's softphone registered (401, then 200)");
}

/// A SIPp softphone dialling the client through `relay` with `scenario`. SIPp's digest uri
/// is its remote address unless told (`-auth_uri`): the Request-URI, as RFC 3261 wants.
fn dial_through(relay: &Relay, scenario: &str) -> support::sipp::Sipp {
    sipp_at(
        "127.0.0.2",
        scenario,
        &[
            "-s".into(),
            CLIENT.into(),
            "-auth_uri".into(),
            format!("{CLIENT}@{}", relay.front),
            relay.front.to_string(),
        ],
    )
}

/// One counter of the standalone's `/metrics` (0 when absent).
async fn metric(http: SocketAddr, name: &str) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(http)
        .await
        .expect("metrics connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: dialtone\r\nConnection: close\r\n\r\n")
        .await
        .expect("metrics request");
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .await
        .expect("metrics response");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

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
