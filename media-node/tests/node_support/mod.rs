//! The harness of the node's tests with real peers: a real router in-process (the same
//! `RouterCore` + `RouterService` the `dialtone router` command serves), a media node on
//! loopback, SIPp processes as carriers and agents, and waits with deadlines.

#![allow(dead_code)] // each test file uses a part of the harness

pub mod peer;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialtone_media_node::node::{ChannelSink, Health, MediaNode, NodeConfig};
use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{RouterCore, RouterService, SystemClock};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

/// Test-only additions to the demo manifests: numbers without schedules (always open)
/// whose schemes exercise ring-all, sequential fallback and busy agents.
const OVERLAY: &str = r#"
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-ring-all, namespace: telephony}
spec:
  steps:
    - ring:
        targets: [{agent: anna}, {agent: bohdan}]
        mode: simultaneous
        timeoutSeconds: 10
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-busy-then-next, namespace: telephony}
spec:
  steps:
    - ring:
        targets: [{agent: anna}]
        timeoutSeconds: 10
    - ring:
        targets: [{agent: bohdan}]
        timeoutSeconds: 10
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-sequential, namespace: telephony}
spec:
  steps:
    - ring:
        targets: [{agent: anna}, {agent: bohdan}]
        mode: sequential
        timeoutSeconds: 2
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-sequential, namespace: telephony}
spec:
  number: "+380440000003"
  carriers: [primary-trunk]
  routes: {open: test-sequential}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-ring-all, namespace: telephony}
spec:
  number: "+380440000001"
  carriers: [primary-trunk]
  routes: {open: test-ring-all}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-busy, namespace: telephony}
spec:
  number: "+380440000002"
  carriers: [primary-trunk]
  routes: {open: test-busy-then-next}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-menu, namespace: telephony}
spec:
  number: "+380440000010"
  carriers: [primary-trunk]
  routes: {open: main-menu}
  welcome: welcome
  recording: {mode: full}
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-voicemail, namespace: telephony}
spec:
  steps:
    - voicemail: {greeting: sales-voicemail-greeting, maxSeconds: 20, silenceSeconds: 2}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-voicemail, namespace: telephony}
spec:
  number: "+380440000011"
  carriers: [primary-trunk]
  routes: {open: test-voicemail}
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-record, namespace: telephony}
spec:
  steps:
    - ring:
        targets: [{agent: anna}]
        timeoutSeconds: 10
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-record, namespace: telephony}
spec:
  number: "+380440000012"
  carriers: [primary-trunk]
  routes: {open: test-record}
  recording: {mode: full}
---
apiVersion: dialtone.dev/v1alpha1
kind: CallQueue
metadata: {name: test-callback, namespace: telephony}
spec:
  members: {agents: [taras]}
  strategy: linear
  ringTimeoutSeconds: 10
  maxWaitSeconds: 60
  holdMusic: hold-music
  announcePosition: true
  callbackDigit: "*"
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: test-queue, namespace: telephony}
spec:
  steps:
    - play: {prompt: welcome}
    - queue: {name: test-callback}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: test-queue, namespace: telephony}
spec:
  number: "+380440000014"
  carriers: [primary-trunk]
  routes: {open: test-queue}
"#;

/// The number whose scheme rings anna and bohdan at once.
pub const RING_ALL: &str = "+380440000001";
/// The number whose scheme rings anna, then bohdan.
pub const BUSY_THEN_NEXT: &str = "+380440000002";
/// The number whose scheme rings anna for 2 s, then bohdan (one sequential step).
pub const SEQUENTIAL: &str = "+380440000003";
/// Always open, welcome prompt, the demo's main menu, full recording.
pub const MENU: &str = "+380440000010";
/// A voicemail (greeting, 2 s of silence end the message).
pub const VOICEMAIL: &str = "+380440000011";
/// Rings anna; full recording.
pub const RECORDED: &str = "+380440000012";
/// A play step, then a queue (member taras) with hold music, announcements, callback `*`.
pub const QUEUE: &str = "+380440000014";

/// The test prompts: short tones of distinct pitches instead of the demo's speech, so that
/// tests run fast and can recognise what they hear. Returns (name, samples) pairs.
pub fn test_prompts() -> Vec<(String, Vec<i16>)> {
    use dialtone_media_node::media::tone::sine;
    let mut out = vec![
        ("welcome".to_owned(), sine(500.0, 1500, 6000)),
        ("main-menu".to_owned(), sine(600.0, 1500, 6000)),
        (
            "sales-voicemail-greeting".to_owned(),
            sine(700.0, 500, 6000),
        ),
        ("hold-music".to_owned(), sine(300.0, 1000, 6000)),
        ("callback-confirmed".to_owned(), sine(900.0, 300, 6000)),
        ("queue-position-many".to_owned(), sine(850.0, 300, 6000)),
    ];
    for n in 1..=9 {
        out.push((
            format!("queue-position-{n}"),
            sine(800.0 + f64::from(n), 300, 6000),
        ));
    }
    out
}

/// The folders a media-plane test needs: prompts (written) and recordings (empty).
pub struct MediaDirs {
    pub prompts: tempfile::TempDir,
    pub recordings: tempfile::TempDir,
}

/// Writes the test prompts into a new folder and makes an empty recordings folder.
pub fn media_dirs() -> MediaDirs {
    let prompts = tempfile::tempdir().expect("tempdir");
    for (name, samples) in test_prompts() {
        let bytes = dialtone_media_node::media::wav::write_pcm16(&samples, 1);
        std::fs::write(prompts.path().join(format!("{name}.wav")), bytes).expect("prompt");
    }
    MediaDirs {
        prompts,
        recordings: tempfile::tempdir().expect("tempdir"),
    }
}

/// A harness whose node plays the test prompts and records under `dirs`.
pub async fn start_media(rtp_base: u16, dirs: &MediaDirs) -> Harness {
    let prompts = dirs.prompts.path().to_owned();
    let recordings = dirs.recordings.path().to_owned();
    start_with(rtp_base, move |cfg| {
        cfg.prompts_dir = Some(prompts);
        cfg.recordings_dir = Some(recordings);
    })
    .await
}

/// The demo manifests with the primary trunk's inbound sources on 127.0.0.1 only (so
/// 127.0.0.2 is a stranger) and the test overlay.
pub fn snapshot() -> Snapshot {
    snapshot_with(&[])
}

/// [`snapshot`] with more text replacements in the demo manifests (e.g. a carrier's
/// address pointed at a SIPp instance).
pub fn snapshot_with(replacements: &[(String, String)]) -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/demo")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    for p in entries {
        let mut text = std::fs::read_to_string(&p).expect("read manifest").replace(
            r#"inboundSources: ["198.51.100.0/24"]"#,
            r#"inboundSources: ["127.0.0.1/32"]"#,
        );
        for (from, to) in replacements {
            text = text.replace(from.as_str(), to);
        }
        files.push(SourceFile {
            path: p.display().to_string(),
            text,
        });
    }
    files.push(SourceFile {
        path: "test-overlay.yaml".into(),
        text: OVERLAY.into(),
    });
    let report = load(
        &files,
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    );
    let errors: Vec<String> = report.errors().map(|p| format!("{p:?}")).collect();
    assert!(errors.is_empty(), "manifests load: {errors:#?}");
    report.snapshot.expect("a snapshot")
}

/// A router, a media node and the node's event stream.
pub struct Harness {
    pub router: RouterClient<Channel>,
    pub node: MediaNode,
    pub events: mpsc::UnboundedReceiver<pb::CallEvent>,
    pub sip: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    pub health: Health,
    _config: watch::Sender<Arc<Snapshot>>,
    _router_stop: watch::Sender<bool>,
}

/// Starts a router on loopback and a media node talking to it.
pub async fn start(rtp_base: u16) -> Harness {
    start_with(rtp_base, |_| {}).await
}

/// Like [`start`], adjusting the node's configuration first.
pub async fn start_with(rtp_base: u16, adjust: impl FnOnce(&mut NodeConfig)) -> Harness {
    start_full(rtp_base, snapshot(), adjust).await
}

/// Like [`start`] with a given snapshot and configuration changes.
pub async fn start_full(
    rtp_base: u16,
    snapshot: Snapshot,
    adjust: impl FnOnce(&mut NodeConfig),
) -> Harness {
    let snapshot = Arc::new(snapshot);
    let (config, rx) = watch::channel(snapshot);
    let core = RouterCore::new(
        rx.clone(),
        Arc::new(SystemClock),
        Arc::new(HttpOwnerSource::new().expect("http client")),
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind router");
    let addr = listener.local_addr().expect("router addr");
    let (router_stop, stop_rx) = watch::channel(false);
    tokio::spawn(core.clone().run_timers(stop_rx));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouterService::new(core).into_server())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let url = format!("http://{addr}");
    let router = RouterClient::connect(url.clone()).await.expect("router");
    let mut cfg = NodeConfig::loopback("node-test", url.clone());
    cfg.rtp_ports = (rtp_base, rtp_base + 199);
    cfg.media_timeout = Duration::from_secs(30);
    adjust(&mut cfg);
    let (sink, events) = ChannelSink::new();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let health = Health::standalone();
    let node_router =
        dialtone_media_node::node::connect_router(&cfg.router_url, None).expect("router url");
    let node = MediaNode::start(
        cfg,
        rx,
        node_router,
        Arc::new(sink),
        health.clone(),
        shutdown_rx,
    )
    .await
    .expect("node starts");
    let sip = node.udp_addrs()[0];
    Harness {
        router,
        node,
        events,
        sip,
        shutdown,
        health,
        _config: config,
        _router_stop: router_stop,
    }
}

/// Registers an agent's softphone contact at a SIPp port, as the registrar would.
pub async fn register(router: &mut RouterClient<Channel>, agent: &str, port: u16) {
    router
        .register_contact(pb::RegisterContactRequest {
            aor: format!("sip:{agent}@dialtone"),
            agent: agent.into(),
            uri: format!("sip:{agent}@127.0.0.1:{port}"),
            expires: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            node_id: "node-test".into(),
            transport: "udp".into(),
            ..Default::default()
        })
        .await
        .expect("register contact");
}

/// Makes sure SIPp is installed: installs Debian's `sip-tester` when running as root, else
/// fails with what to do.
pub fn ensure_sipp() {
    if Command::new("sipp").arg("-v").output().is_ok() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(
        root,
        "SIPp is not installed: install the Debian package sip-tester (apt-get install sip-tester)"
    );
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && apt-get install -y -qq sip-tester",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "installing sip-tester failed");
}

/// A free UDP port on loopback (bound and released; SIPp takes it right after).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A SIPp process.
pub struct Sipp {
    name: String,
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Starts SIPp with a scenario from tests/sipp; `args` come after the common ones.
pub fn sipp(name: &str, scenario: &str, local_ip: &str, args: &[String]) -> Sipp {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let media = free_udp_port();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path())
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-i",
            local_ip,
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
        ])
        .args(["-m", "1", "-timeout", "25s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-trace_msg"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("sipp starts");
    Sipp {
        name: name.to_owned(),
        child,
        dir,
        port,
    }
}

impl Sipp {
    /// Waits for SIPp to exit, at most `limit`; kills it past that.
    pub async fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.logs());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("sipp reaped");
                return (status, format!("{} timed out\n{}", self.name, self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether SIPp has bound its SIP port yet.
    pub async fn ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while UdpSocket::bind(("127.0.0.1", self.port)).is_ok() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited at start ({status}): a scenario error?\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(Instant::now() < deadline, "{} did not start", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.filter_map(Result::ok) {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.push_str(&format!(
                    "--- {} {}\n{text}\n",
                    self.name,
                    e.file_name().to_string_lossy()
                ));
            }
        }
        out
    }
}

/// Asserts a SIPp run succeeded (exit 0: every call successful), printing its logs if not.
pub fn assert_ok(result: &(ExitStatus, String), who: &str) {
    assert!(
        result.0.success(),
        "{who}: SIPp exit {:?}\n{}",
        result.0.code(),
        result.1
    );
}

/// The kind of an event, as its proto name.
pub fn kind(e: &pb::CallEvent) -> &'static str {
    use pb::call_event::Kind::*;
    match &e.kind {
        Some(CallStarted(_)) => "call_started",
        Some(RouteSelected(_)) => "route_selected",
        Some(NoForwardingScheme(_)) => "no_forwarding_scheme",
        Some(CallBlocked(_)) => "call_blocked",
        Some(StepEntered(_)) => "step_entered",
        Some(LegCreated(_)) => "leg_created",
        Some(LegAlerting(_)) => "leg_alerting",
        Some(LegAnswered(_)) => "leg_answered",
        Some(LegFailed(_)) => "leg_failed",
        Some(LegCancelled(_)) => "leg_cancelled",
        Some(CallerHungUp(_)) => "caller_hung_up",
        Some(Bridged(_)) => "bridged",
        Some(CallEnded(_)) => "call_ended",
        Some(QueueJoined(_)) => "queue_joined",
        Some(QueueLeft(_)) => "queue_left",
        Some(WelcomeStarted(_)) => "welcome_started",
        Some(WelcomeFinished(_)) => "welcome_finished",
        Some(MenuEntered(_)) => "menu_entered",
        Some(MenuDigit(_)) => "menu_digit",
        Some(MenuLeft(_)) => "menu_left",
        Some(VoicemailLeft(_)) => "voicemail_left",
        Some(Recording(_)) => "recording_saved",
        Some(CallbackOrdered(_)) => "callback_ordered",
        Some(OwnerLookedUp(_)) => "owner_looked_up",
        None => "none",
    }
}

/// Collects one call's events up to its call_ended, within `limit`.
pub async fn call_events(
    rx: &mut mpsc::UnboundedReceiver<pb::CallEvent>,
    limit: Duration,
) -> Vec<pb::CallEvent> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                let end = kind(&e) == "call_ended";
                out.push(e);
                if end {
                    return out;
                }
            }
            _ => panic!(
                "no call_ended within {limit:?}; got {:?}",
                out.iter().map(kind).collect::<Vec<_>>()
            ),
        }
    }
}

/// Whether `wanted` appears in `events` in this order (other events may come between).
pub fn in_order(events: &[pb::CallEvent], wanted: &[&str]) -> bool {
    let mut it = events.iter().map(kind);
    wanted.iter().all(|w| it.any(|k| k == *w))
}
