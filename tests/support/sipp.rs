//! SIPp processes for the root crate's end-to-end tests: installed when missing, started on a
//! free loopback port with a scenario, waited for with a deadline.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A free UDP port on loopback.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Installs SIPp (Debian's `sip-tester`) when it is missing.
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

/// A running SIPp.
pub struct Sipp {
    child: std::process::Child,
    /// Its SIP port.
    pub port: u16,
    ip: &'static str,
    dir: tempfile::TempDir,
}

/// Starts SIPp on `scenario` (a path relative to the repository root) for one call.
pub fn sipp(scenario: &str, extra: &[String]) -> Sipp {
    sipp_at("127.0.0.1", scenario, extra)
}

/// [`sipp`] on another loopback address (a peer that must not look like the carrier).
pub fn sipp_at(ip: &'static str, scenario: &str, extra: &[String]) -> Sipp {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let media = free_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario);
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario)
        .args(["-i", ip, "-p", &port.to_string(), "-mp", &media.to_string()])
        .args([
            "-m",
            "1",
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp starts");
    Sipp {
        child,
        port,
        ip,
        dir,
    }
}

impl Sipp {
    /// Waits until SIPp listens.
    pub async fn ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind((self.ip, self.port)).is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "SIPp did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the scenario ran to its end (within 40 s); SIPp's error log otherwise.
    pub async fn outcome(mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if status.success() {
                    return Ok(());
                }
                return Err(self.errors());
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("timed out; {}", self.errors()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the scenario ran to its end.
    pub async fn success(self) -> bool {
        self.outcome().await.is_ok()
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
}
