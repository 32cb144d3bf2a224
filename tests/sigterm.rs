//! SIGTERM drains `dialtone up` (the built binary, as the operator's pods get it): with three
//! answered calls in progress (a SIPp carrier → the media node → a SIPp agent), a new INVITE
//! gets 503 with Retry-After, the three calls go on until the carrier hangs up (BYE, 200, and
//! the agent gets its BYE), and then the process exits with status 0.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tokio::time::Instant;

const NUMBER: &str = "+380441230077";

/// One agent who takes the three calls at once, rung by an always-open number; drain waits up
/// to 30 s, far longer than the calls last, so they end by the carrier's BYE and not the timer.
const MANIFESTS: &str = r#"
apiVersion: dialtone.dev/v1alpha1
kind: CallCenter
metadata: {name: drain, namespace: drain}
spec:
  mediaNodes:
    rtp: {portRange: "31000-31999"}
    drainTimeoutSeconds: 30
---
apiVersion: dialtone.dev/v1alpha1
kind: Carrier
metadata: {name: loopback, namespace: drain}
spec:
  address: 127.0.0.1:5999
  inboundSources: ["127.0.0.1/32"]
---
apiVersion: dialtone.dev/v1alpha1
kind: Schedule
metadata: {name: always, namespace: drain}
spec:
  timezone: UTC
  weekly:
    - {days: [mon, tue, wed, thu, fri, sat, sun], open: "00:00", close: "24:00"}
---
apiVersion: dialtone.dev/v1alpha1
kind: Agent
metadata: {name: anna, namespace: drain}
spec:
  sipCredentialsSecretRef: {name: agent-anna}
  destinations: [{softphone: {}}]
  maxConcurrentCalls: 3
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {name: anna, namespace: drain}
spec:
  steps:
    - ring: {targets: [{agent: anna}], timeoutSeconds: 10}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: line, namespace: drain}
spec:
  number: "+380441230077"
  carriers: [loopback]
  schedule: always
  routes: {open: anna, closed: anna, holiday: anna}
---
apiVersion: v1
kind: Secret
metadata: {name: agent-anna, namespace: drain}
stringData: {password: anna-secret}
"#;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Installs SIPp (Debian's `sip-tester`) when it is missing.
fn ensure_sipp() {
    if Command::new("sipp").arg("-v").output().is_ok() {
        return;
    }
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && apt-get install -y -qq sip-tester",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "SIPp is missing and could not be installed: apt-get install sip-tester (as root)"
    );
}

/// A child process killed when dropped (a failed assertion leaves nothing behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SIPp run in its own folder, with its statistics file.
struct Sipp {
    child: Killed,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sipp {
    fn start(scenario: &str, calls: u32, extra: &[&str]) -> Sipp {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("sipp")
            .current_dir(dir.path())
            .arg("-sf")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &free_port().to_string()])
            .args(["-m", &calls.to_string(), "-r", "10"])
            .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
            .args(["-trace_err", "-trace_stat", "-stf", "stats.csv"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp starts");
        Sipp {
            child: Killed(child),
            port,
            dir,
        }
    }

    /// Waits until SIPp listens on its port.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "SIPp did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Waits for SIPp to finish (within 40 s); returns (successful, failed) from its
    /// statistics file — SIPp's exit code is not trusted alone — and its error log.
    async fn finish(mut self) -> (u64, u64, String) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.running() {
            assert!(
                Instant::now() < deadline,
                "SIPp did not finish: {}",
                self.errors()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = std::fs::read_to_string(self.dir.path().join("stats.csv"))
            .expect("SIPp wrote its statistics");
        let mut rows = stats.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = rows.next().expect("a header").split(';').collect();
        let last: Vec<&str> = rows.next_back().expect("a row").split(';').collect();
        let column = |name: &str| -> u64 {
            let i = header.iter().position(|h| *h == name).expect(name);
            last[i].trim().parse().expect("a count")
        };
        (
            column("SuccessfulCall(C)"),
            column("FailedCall(C)"),
            self.errors(),
        )
    }

    fn errors(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many calls the carrier scenario marked answered (files answered-N).
    fn answered(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("answered-"))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_calls_lets_three_answered_calls_finish_and_exits_0() {
    ensure_sipp();
    let config = tempfile::tempdir().expect("tempdir");
    std::fs::write(config.path().join("drain.yaml"), MANIFESTS).expect("manifests");
    let data = tempfile::tempdir().expect("tempdir");
    let mut up = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("up")
        .arg("--config")
        .arg(config.path())
        .arg("--data")
        .arg(data.path())
        .args(["--sip", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dialtone up starts");
    let stdout = up.stdout.take().expect("stdout");
    let mut up = Killed(up);
    let (mut sip, mut grpc) = (None::<SocketAddr>, None::<SocketAddr>);
    let mut lines = BufReader::new(stdout).lines();
    // The banner ends with the token line; EOF before it means the process died.
    for line in lines.by_ref() {
        let line = line.expect("read stdout");
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("SIP/UDP"), Some(a)) => sip = a.parse().ok(),
            (Some("gRPC"), Some(a)) => grpc = a.parse().ok(),
            (Some("token"), _) => break,
            _ => {}
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let sip = sip.expect("dialtone up printed its SIP/UDP address");
    let grpc = grpc.expect("dialtone up printed its gRPC address");

    let mut agent = Sipp::start("tests/sipp/sigterm_agent.xml", 3, &[]);
    agent.ready().await;
    let mut router = RouterClient::connect(format!("http://{grpc}"))
        .await
        .expect("router");
    router
        .register_contact(pb::RegisterContactRequest {
            agent: "anna".into(),
            uri: format!("sip:anna@127.0.0.1:{}", agent.port),
            expires: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            node_id: "sipp".into(),
            ..Default::default()
        })
        .await
        .expect("register anna's softphone");

    let mut carrier = Sipp::start(
        "tests/sipp/sigterm_carrier.xml",
        3,
        &["-s", NUMBER, &sip.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while carrier.answered() < 3 {
        assert!(
            carrier.running() && Instant::now() < deadline,
            "three calls were not answered: {} answered; carrier: {}; agent: {}",
            carrier.answered(),
            carrier.errors(),
            agent.errors()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = up.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "SIGTERM sent");

    // The signal is handled asynchronously: until the node has seen it, an INVITE would still
    // be taken. Each attempt is one SIPp call that passes only on a 503 with Retry-After; an
    // attempt that gets anything else is not answered by an agent (anna's three lines are
    // busy), so retrying cannot turn a wrong answer into a pass — it only waits for the drain.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = Sipp::start(
            "tests/sipp/sigterm_refused.xml",
            1,
            &["-s", NUMBER, &sip.to_string()],
        );
        let (ok, failed, errors) = refused.finish().await;
        if (ok, failed) == (1, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a new INVITE after SIGTERM never got 503 with Retry-After: {errors}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        carrier.running(),
        "the three calls were still up when the new INVITE was refused"
    );
    assert!(
        up.0.try_wait().expect("try_wait").is_none(),
        "dialtone up waits for its calls"
    );

    let (ok, failed, errors) = carrier.finish().await;
    assert_eq!(
        (ok, failed),
        (3, 0),
        "the carrier's three calls ended normally (its BYE answered 200): {errors}"
    );
    let (ok, failed, errors) = agent.finish().await;
    assert_eq!(
        (ok, failed),
        (3, 0),
        "the agent got the three BYEs: {errors}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = up.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "dialtone up did not exit after its calls ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "dialtone up exits 0 after draining");
}
