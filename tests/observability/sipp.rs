//! SIPp as the carrier and as agents' softphones (the scenarios of the media node's tests).

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn ensure_sipp() {
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

pub struct Sipp {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// One run of `scenario` (from `media-node/tests/sipp/`) on a free port.
pub fn sipp(scenario: &str, extra: &[String]) -> Sipp {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let media = free_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media-node/tests/sipp")
        .join(scenario);
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
        ])
        .args(["-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp starts");
    Sipp {
        child,
        port,
        _dir: dir,
    }
}

impl Sipp {
    /// Waits until SIPp holds its port.
    pub async fn ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", self.port)).is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "SIPp did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the scenario ran to its end (exit 0) within 40 s.
    pub async fn success(mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
