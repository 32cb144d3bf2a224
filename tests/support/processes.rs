//! Dialtone components started as separate processes (`dialtone reporter`, `dialtone
//! router`, `dialtone media-node`), as in a cluster, for the multi-process end-to-end tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The digest nonce secret every media node of a test shares (a nonce issued by one node is
/// accepted by another).
pub const NONCE_SECRET: &str = "cross-node-nonce-secret";

/// One Dialtone component in its own process; killed when dropped. Keeps its stderr (logs)
/// for the failure messages.
pub struct Component {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Component {
    /// Starts `dialtone <args>` and waits (30 s at most) for the stderr line starting with
    /// `ready`; returns the component and the rest of that line.
    pub fn start(args: &[String], env: &[(&str, &str)], ready: &str) -> (Component, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialtone"));
        cmd.args(args)
            .args(["--log-format", "text"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("dialtone starts");
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (lines, prefix) = (log.clone(), ready.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&prefix) {
                    let _ = tx.send(rest.to_owned());
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        });
        let mut component = Component { child, log };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(rest) => (component, rest),
            Err(_) => {
                let _ = component.child.kill();
                panic!(
                    "`dialtone {}` never said {ready:?}:\n{}",
                    args[0],
                    component.logs()
                );
            }
        }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first address of a line such as `[127.0.0.1:5060] (UDP) and ...`.
pub fn first_addr(text: &str) -> SocketAddr {
    text.trim_start_matches(['[', ' '])
        .split([']', ',', ' '])
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {text:?}"))
}

/// `dialtone media-node` named `name` (its node id) with its own RTP ports and data.
pub fn media_node(
    name: &str,
    config: &Path,
    router: &str,
    reporter: &str,
    rtp: &str,
    data: &Path,
) -> (Component, SocketAddr) {
    let args: Vec<String> = [
        "media-node",
        "--sip",
        "127.0.0.1:0",
        "--ops",
        "127.0.0.1:0",
        "--router",
        router,
        "--reporter",
        reporter,
        "--rtp-ports",
        rtp,
        "--nonce-secret",
        NONCE_SECRET,
        "--drain-timeout",
        "5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(
        [
            ("--config", config.to_owned()),
            ("--data", data.to_owned()),
            ("--recordings", data.join("recordings")),
            (
                "--prompts",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/prompts"),
            ),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()]),
    )
    .collect();
    let (node, rest) = Component::start(
        &args,
        &[("DIALTONE_POD_NAME", name)],
        "dialtone media-node: SIP on ",
    );
    (node, first_addr(&rest))
}

/// `dialtone reporter` on `config` and `data` (which must hold `supervisor.token`); returns
/// it and its gRPC URL.
pub fn reporter(config: &Path, data: &Path) -> (Component, String) {
    let args = [
        "reporter",
        "--config",
        &path(config),
        "--data",
        &path(data),
        "--grpc",
        "127.0.0.1:0",
        "--ops",
        "127.0.0.1:0",
    ];
    let (reporter, rest) = Component::start(&strings(&args), &[], "dialtone reporter: gRPC on ");
    (reporter, format!("http://{}", first_addr(&rest)))
}

/// `dialtone router` on `config` and `data`, serving gRPC at `grpc` ("127.0.0.1:0" for any
/// port); returns it and the address it serves at.
pub fn router(config: &Path, data: &Path, grpc: &str, reporter: &str) -> (Component, SocketAddr) {
    let args = [
        "router",
        "--config",
        &path(config),
        "--data",
        &path(data),
        "--grpc",
        grpc,
        "--ops",
        "127.0.0.1:0",
        "--reporter",
        reporter,
    ];
    let (router, rest) = Component::start(&strings(&args), &[], "dialtone router: gRPC on ");
    (router, first_addr(&rest))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}
