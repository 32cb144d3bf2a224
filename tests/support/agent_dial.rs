//! Shared by the end-to-end tests of agents dialling out from their softphones
//! (`tests/agent_dial.rs`, `tests/agent_dial_paths.rs`): the e2e call center with another
//! line (started with [`super::up::start`]), the relay that lets SIPp's softphone answer
//! Dialtone's digest challenges, and the SIPp softphone itself.
//!
//! SIPp answers only MD5 challenges and gives up when the first one names SHA-256, which
//! Dialtone offers first (RFC 8760's order of preference): the softphone talks to Dialtone
//! through a relay on 127.0.0.2 that drops the SHA-256 challenge lines, as the SIP benchmark
//! does. Dialtone sees the relay's address as the softphone's (it registers and dials from
//! it); 127.0.0.2 is not the carrier's address.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dialtone::standalone::Running;
use dialtone_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sipp::{Sipp, sipp_at};

/// The client the softphone dials (and who calls the line in the missed-call story).
pub const CLIENT: &str = "+380501234567";
/// The e2e PhoneNumber.
pub const LINE: &str = "+380441230000";

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
pub fn config(carrier: u16) -> tempfile::TempDir {
    config_with(carrier, "")
}

/// [`config`] plus more manifests (`extra`, documents starting with `---`).
pub fn config_with(carrier: u16, extra: &str) -> tempfile::TempDir {
    super::up::e2e_config(carrier, &format!("{OTHER_LINE}{extra}"))
}

/// A UDP relay on 127.0.0.2 between a SIPp softphone and Dialtone that drops the
/// `algorithm=SHA-256` challenge lines (SIPp answers MD5 only). Stops when dropped.
pub struct Relay {
    /// Where the softphone sends (its `-s` remote).
    pub front: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relays between a softphone and Dialtone's SIP address `node`.
    pub fn start(node: SocketAddr) -> Relay {
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
pub async fn register_through(relay: &Relay) {
    sipp_at(
        "127.0.0.2",
        "tests/sipp/agent_register.xml",
        &[relay.front.to_string()],
    )
    .outcome()
    .await
    .expect("anna's softphone registered (401, then 200)");
}

/// A SIPp softphone dialling the client through `relay` with `scenario`.
pub fn dial_through(relay: &Relay, scenario: &str) -> Sipp {
    dial_number_through(relay, scenario, CLIENT)
}

/// A SIPp softphone dialling `number` through `relay` with `scenario`. SIPp's digest uri is
/// its remote address unless told (`-auth_uri`): the Request-URI, as RFC 3261 wants.
pub fn dial_number_through(relay: &Relay, scenario: &str, number: &str) -> Sipp {
    sipp_at(
        "127.0.0.2",
        scenario,
        &[
            "-s".into(),
            number.into(),
            "-auth_uri".into(),
            format!("{number}@{}", relay.front),
            relay.front.to_string(),
        ],
    )
}

/// One counter of the standalone's `/metrics` (0 when absent).
pub async fn metric(http: SocketAddr, name: &str) -> u64 {
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

/// anna's line on the standalone's live board.
pub fn anna_state(running: &Running) -> Option<i32> {
    running
        .router
        .live_board(false)
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .map(|a| a.state)
}

/// Waits (10 s at most) until anna is `state` on the live board.
pub async fn wait_for_anna(running: &Running, state: pb::AgentState, why: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while anna_state(running) != Some(state as i32) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: anna is {:?}",
            anna_state(running).and_then(|s| pb::AgentState::try_from(s).ok())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every log line of this test binary from the `security` target and the media node (whose
/// spans the lines carry), kept for the assertions on what a refusal leaves in the logs.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let installed = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "security=info,dialtone_media_node=info",
            ))
            .with_ansi(false)
            .with_writer(move || Captured(sink.clone()))
            .try_init();
        assert!(installed.is_ok(), "the log capture is the only subscriber");
        logs
    })
    .clone()
}

/// A writer into the captured logs.
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines containing `needle`.
pub fn lines_with(logs: &Mutex<Vec<u8>>, needle: &str) -> Vec<String> {
    let bytes = logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}
