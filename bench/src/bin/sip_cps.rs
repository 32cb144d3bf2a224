//! Calls per second through the media node, beside Kamailio in the same run, and the resident
//! memory of 10,000 registered agents.
//!
//! Calls per second: SIPp as the carrier (`bench/sip/uac.xml`: INVITE → 200 → ACK → hold →
//! BYE → 200) and SIPp as the answering agent (`bench/sip/uas.xml`), first through `dialtone up`
//! (the B2BUA: two dialogs per call, RTP ports anchored, the router's plan, call events through
//! the spool into the reporter — everything a real call costs), then through Kamailio as a
//! transaction-stateful proxy (`bench/sip/kamailio.cfg`, `t_relay` with record-routing) between
//! the same SIPp endpoints. Each system climbs the same ladder of rates; a step passes when both
//! SIPps count every call successful, none failed and no message outside a call (their statistics
//! files are read: SIPp's exit code alone has been seen to lie). The figure is the highest
//! passing rate; rounds alternate the two systems and the median is reported, with the CPU each
//! system used per call.
//!
//! An agent takes at most 100 calls at once (`maxConcurrentCalls`), so the bench generates
//! several lines, each a PhoneNumber whose scheme rings its own Agent; every one of those agents
//! has its contact registered through the router's `RegisterContact` at the same SIPp, and the
//! carrier dials the lines in turn. Kamailio receives the same INVITEs.
//!
//! Memory: `dialtone up` on generated manifests with 10,000 Agents and their Secrets, SIPp
//! registering every one with digest authentication (an injection file of users and
//! passwords); the resident set of the process (router, reporter and media node together) is
//! read from `/proc/PID/status` before and after. SIPp 3.6 only computes MD5 digests and takes
//! the first `WWW-Authenticate` it sees, while the node offers SHA-256 first (then MD5), so the
//! REGISTERs pass through a tiny UDP relay in this process that drops the SHA-256 challenge —
//! what a softphone without SHA-256 does by choosing MD5 itself.
//!
//! ```sh
//! cargo build --release --bin dialtone
//! cargo run --release -p dialtone-bench --bin sip_cps
//! ```
//! Needs `sipp` and `kamailio` (`apt-get install sip-tester kamailio`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

#[derive(Parser)]
struct Args {
    /// The `dialtone` binary (build it with `cargo build --release --bin dialtone`).
    #[arg(long, default_value = "target/release/dialtone")]
    dialtone: PathBuf,
    /// Call rates tried in turn (calls per second) until one has a failed call.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50,100,150,200,250,300,400,500,600,800,1000,1200,1500,2000"
    )]
    rates: Vec<u32>,
    /// Seconds of calls per step.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// How long each call is held before the BYE (milliseconds).
    #[arg(long, default_value_t = 500)]
    hold_ms: u32,
    /// Lines (a number, a scheme and an agent each); each agent takes 100 calls at once.
    #[arg(long, default_value_t = 32)]
    lines: usize,
    /// Rounds of the ramp, alternating Dialtone and Kamailio (the median is reported; 0 skips
    /// the calls-per-second measurement).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Registered agents for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// REGISTERs per second while registering them.
    #[arg(long, default_value_t = 1000)]
    register_rate: u32,
    /// Where `dialtone up` keeps its data folders (spool, SQLite, router state) for the
    /// calls-per-second rounds; the work folder by default. A tmpfs such as `/dev/shm` makes
    /// fsync nearly free and so shows what the disk's sync latency costs.
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// Keep the work folder (SIPp statistics and logs, Kamailio's and Dialtone's logs).
    #[arg(long)]
    keep: bool,
}

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sip")
}

fn free_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something holds UDP `port` on loopback (the server bound it).
fn wait_bound(port: u16, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} did not bind 127.0.0.1:{port} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A process stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit by itself, up to `limit`; stops it after that (SIGTERM
    /// first: SIPp then still writes its final statistics, which say what went missing).
    fn wait_for(&mut self, limit: Duration) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .arg(self.0.id().to_string())
                    .stderr(Stdio::null())
                    .status();
                let grace = Instant::now() + Duration::from_secs(5);
                while Instant::now() < grace {
                    if self.0.try_wait()?.is_some() {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = self.0.kill();
                let _ = self.0.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first: Kamailio takes its worker processes down with it.
        let _ = Command::new("kill")
            .arg(self.0.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cumulative counters of the last line of a SIPp statistics file (`-trace_stat -stf`).
#[derive(Debug, Default, Clone, Copy)]
struct SippStats {
    successful: u64,
    failed: u64,
    out_of_call: u64,
    dead_call: u64,
    retransmissions: u64,
}

fn sipp_stats(path: &Path) -> Result<SippStats> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading SIPp statistics {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("empty statistics file")?
        .split(';')
        .collect();
    let last: Vec<&str> = lines
        .next_back()
        .context("no statistics row")?
        .split(';')
        .collect();
    let field = |name: &str| -> Result<u64> {
        let i = header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no {name} column"))?;
        last.get(i)
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {name} value"))
    };
    Ok(SippStats {
        successful: field("SuccessfulCall(C)")?,
        failed: field("FailedCall(C)")?,
        out_of_call: field("OutOfCallMsgs(C)")?,
        dead_call: field("DeadCallMsgs(C)")?,
        retransmissions: field("Retransmissions(C)")?,
    })
}

/// INVITE → 200 times (ms) from SIPp's `-trace_rtt` file in `dir`.
fn response_times(dir: &Path) -> Vec<f64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut rows = text.lines();
        // Header: Date_ms;response_time_ms;rtd_no.
        let Some(col) = rows
            .next()
            .and_then(|h| h.split(';').position(|c| c == "response_time_ms"))
        else {
            continue;
        };
        for line in rows {
            if let Some(ms) = line
                .split(';')
                .nth(col)
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                out.push(ms);
            }
        }
    }
    out
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// CPU time (user + system, in clock ticks) of `pid` and of its direct children (Kamailio's
/// workers are children of its main process).
fn cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: split after the last ')'.
        let Some((head, rest)) = text.rsplit_once(')') else {
            continue;
        };
        let own: Option<u32> = head.split_whitespace().next().and_then(|p| p.parse().ok());
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) … utime(11) stime(12).
        let ppid: Option<u32> = fields.get(1).and_then(|p| p.parse().ok());
        if own == Some(pid) || ppid == Some(pid) {
            let t = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
            total += t(11) + t(12);
        }
    }
    total
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Waits until `pid` (and its children) use under 10% of a core over 300 ms, up to 30 s: the
/// work a step leaves behind (Dialtone's reporter ingesting call events) is counted in it.
fn settle(pid: u32) {
    let hz = clock_ticks_per_second();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = cpu_ticks(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ticks(pid);
        if ((now - last) as f64) / hz < 0.03 {
            return;
        }
        last = now;
    }
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// The system under test.
#[derive(Clone, Copy, PartialEq)]
enum System {
    Dialtone,
    Kamailio,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Dialtone => "dialtone",
            System::Kamailio => "kamailio",
        }
    }
}

/// One step's outcome.
struct Step {
    passed: bool,
    uac: SippStats,
    uas: SippStats,
    cpu_ms_per_call: f64,
    median_setup_ms: Option<f64>,
}

/// Everything a step needs to reach the system under test.
struct Target {
    system: System,
    /// Where the carrier sends its INVITEs.
    sip: SocketAddr,
    /// Where the answering SIPp listens (the node's contacts and Kamailio's `UAS` point there).
    agent_port: u16,
    /// The process whose CPU is measured.
    pid: u32,
}

/// One step of the ramp: `rate` calls per second for `args.seconds`.
fn step(target: &Target, rate: u32, args: &Args, dir: &Path) -> Result<Step> {
    std::fs::create_dir_all(dir)?;
    let calls = rate * args.seconds;
    let limit = Duration::from_secs(u64::from(args.seconds) + 40);
    // A fresh answering SIPp per step on the same port, so its statistics are the step's own;
    // it exits by itself after `calls` calls.
    let mut uas = Command::new("sipp")
        .current_dir(dir)
        .arg("-sf")
        .arg(bench_dir().join("uas.xml"))
        .args(["-i", "127.0.0.1", "-p", &target.agent_port.to_string()])
        .args(["-mp", &free_port()?.to_string()])
        .args(["-m", &calls.to_string(), "-nostdin"])
        .args(["-trace_stat", "-stf", "uas.csv", "-trace_err"])
        .args(["-timeout", &format!("{}s", limit.as_secs())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting SIPp: apt-get install sip-tester")?;
    wait_bound(target.agent_port, "the SIPp agent", &mut uas)?;
    let mut uas = Proc(uas);
    let cpu_before = cpu_ticks(target.pid);
    let uac = Command::new("sipp")
        .current_dir(dir)
        .arg("-sf")
        .arg(bench_dir().join("uac.xml"))
        .arg("-inf")
        .arg(dir.join("..").join("numbers.csv"))
        .arg(target.sip.to_string())
        .args(["-i", "127.0.0.1", "-p", &free_port()?.to_string()])
        .args(["-mp", &free_port()?.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", &calls.to_string()])
        .args(["-d", &args.hold_ms.to_string()])
        .args([
            "-timeout",
            &format!("{}s", limit.as_secs()),
            "-timeout_error",
        ])
        .args(["-nostdin", "-trace_stat", "-stf", "uac.csv", "-trace_err"])
        .args(["-trace_rtt", "-rtt_freq", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting SIPp")?;
    Proc(uac).wait_for(limit + Duration::from_secs(10))?;
    uas.wait_for(Duration::from_secs(15))?;
    drop(uas);
    settle(target.pid);
    let ticks = cpu_ticks(target.pid).saturating_sub(cpu_before);
    let uac = sipp_stats(&dir.join("uac.csv"))?;
    let uas = sipp_stats(&dir.join("uas.csv"))?;
    let all = u64::from(calls);
    let passed = uac.successful == all
        && uas.successful == all
        && uac.failed == 0
        && uas.failed == 0
        && uac.out_of_call == 0
        && uas.out_of_call == 0;
    let mut setup = response_times(dir);
    Ok(Step {
        passed,
        uac,
        uas,
        cpu_ms_per_call: ticks as f64 / clock_ticks_per_second() * 1000.0 / f64::from(calls),
        median_setup_ms: median(&mut setup),
    })
}

/// Climbs the rates; returns the highest with every call successful.
fn ramp(target: &Target, args: &Args, work: &Path, round: usize) -> Result<u32> {
    let mut best = 0;
    for &rate in &args.rates {
        let dir = work.join(format!("r{round}-{}-{rate}", target.system.name()));
        let s = step(target, rate, args, &dir)?;
        println!(
            "  {:<9} {rate:>5}/s × {} s: {:<6} carrier {} ok {} failed, agent {} ok {} failed, out-of-call {}+{}, dead-call {}+{}, retransmissions {}+{}, INVITE→200 median {}, CPU {:.3} ms/call",
            target.system.name(),
            args.seconds,
            if s.passed { "pass" } else { "FAIL" },
            s.uac.successful,
            s.uac.failed,
            s.uas.successful,
            s.uas.failed,
            s.uac.out_of_call,
            s.uas.out_of_call,
            s.uac.dead_call,
            s.uas.dead_call,
            s.uac.retransmissions,
            s.uas.retransmissions,
            // SIPp counts response times in whole milliseconds.
            s.median_setup_ms.map_or_else(
                || "-".to_owned(),
                |m| if m < 1.0 {
                    "< 1 ms".to_owned()
                } else {
                    format!("{m:.0} ms")
                }
            ),
            s.cpu_ms_per_call,
        );
        if !s.passed {
            break;
        }
        best = rate;
    }
    Ok(best)
}

/// `dialtone up` on `config` with SIP on `sip`; returns the process and its gRPC URL.
fn dialtone_up(args: &Args, config: &Path, data: &Path, sip: SocketAddr) -> Result<(Proc, String)> {
    let grpc = format!("127.0.0.1:{}", free_port()?);
    let http = format!("127.0.0.1:{}", free_port()?);
    let log = std::fs::File::create(data.with_extension("log"))?;
    let mut child = Command::new(&args.dialtone)
        .arg("up")
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(["--sip", &sip.to_string(), "--grpc", &grpc, "--http", &http])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "starting {}: build it with cargo build --release --bin dialtone",
                args.dialtone.display()
            )
        })?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut proc = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    // The banner ends with the token line.
    loop {
        match lines.next() {
            Some(Ok(line)) if line.trim_start().starts_with("token") => break,
            Some(_) => {}
            None => {
                let _ = proc.wait_for(Duration::from_secs(1));
                bail!(
                    "dialtone up exited before it was up; see {}",
                    data.with_extension("log").display()
                )
            }
        }
    }
    // Keep reading stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((proc, format!("http://{grpc}")))
}

fn line_number(i: usize) -> String {
    format!("+38044999{i:04}")
}

/// The benchmark's manifests for calls per second: the base plus `lines` lines.
fn cps_manifests(dir: &Path, lines: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(
        bench_dir().join("callcenter.yaml"),
        dir.join("callcenter.yaml"),
    )?;
    let mut yaml = String::new();
    for i in 0..lines {
        let number = line_number(i);
        let _ = write!(
            yaml,
            "---
apiVersion: dialtone.dev/v1alpha1
kind: Agent
metadata: {{name: answering{i}, namespace: bench}}
spec:
  sipCredentialsSecretRef: {{name: answering{i}}}
  destinations: [{{softphone: {{}}}}]
  maxConcurrentCalls: 100
---
apiVersion: v1
kind: Secret
metadata: {{name: answering{i}, namespace: bench}}
stringData: {{password: bench-secret-{i}}}
---
apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {{name: ring{i}, namespace: bench}}
spec:
  steps:
    - ring: {{targets: [{{agent: answering{i}}}], timeoutSeconds: 10}}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {{name: line{i}, namespace: bench}}
spec:
  number: \"{number}\"
  carriers: [loopback]
  schedule: always
  routes: {{open: ring{i}, closed: ring{i}, holiday: ring{i}}}
"
        );
    }
    std::fs::write(dir.join("lines.yaml"), yaml)?;
    Ok(())
}

/// The carrier's injection file: the lines' numbers in turn.
fn numbers_csv(path: &Path, lines: usize) -> Result<()> {
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..lines {
        let _ = writeln!(csv, "{}", line_number(i));
    }
    std::fs::write(path, csv)?;
    Ok(())
}

/// One round on Dialtone: a fresh `dialtone up`, every line's agent registered at the
/// answering SIPp's port through the router, then the ramp.
async fn round_dialtone(args: &Args, work: &Path, round: usize) -> Result<u32> {
    let config = work.join("config-cps");
    let data = args.data_parent.as_deref().unwrap_or(work).join(format!(
        "dialtone-sip-bench-{}-data-{round}",
        std::process::id()
    ));
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (up, url) = dialtone_up(args, &config, &data, sip)?;
    let agent_port = free_port()?;
    let mut router = RouterClient::connect(url).await?;
    for i in 0..args.lines {
        router
            .register_contact(pb::RegisterContactRequest {
                agent: format!("answering{i}"),
                uri: format!("sip:answering{i}@127.0.0.1:{agent_port}"),
                expires: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                node_id: "bench".into(),
                transport: "udp".into(),
                ..Default::default()
            })
            .await
            .context("RegisterContact")?;
    }
    let target = Target {
        system: System::Dialtone,
        sip,
        agent_port,
        pid: up.pid(),
    };
    let best = ramp(&target, args, work, round);
    drop(up);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(data.with_extension("log"));
    }
    best
}

/// One round on Kamailio: a fresh Kamailio relaying to the answering SIPp's port, then the ramp.
fn round_kamailio(args: &Args, work: &Path, round: usize) -> Result<u32> {
    let agent_port = free_port()?;
    let port = free_port()?;
    let run = work.join(format!("kamailio-{round}"));
    std::fs::create_dir_all(&run)?;
    let log = std::fs::File::create(run.join("kamailio.log"))?;
    let mut child = Command::new("kamailio")
        .arg("-f")
        .arg(bench_dir().join("kamailio.cfg"))
        .args(["-DD", "-E", "-l", &format!("udp:127.0.0.1:{port}")])
        .args(["-A", &format!("UAS=\"sip:127.0.0.1:{agent_port}\"")])
        .args(["-m", "256", "-M", "32", "-Y"])
        .arg(&run)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting Kamailio: apt-get install kamailio")?;
    wait_bound(port, "Kamailio", &mut child)?;
    let kamailio = Proc(child);
    let target = Target {
        system: System::Kamailio,
        sip: SocketAddr::from(([127, 0, 0, 1], port)),
        agent_port,
        pid: kamailio.pid(),
    };
    ramp(&target, args, work, round)
}

async fn cps(args: &Args, work: &Path) -> Result<()> {
    cps_manifests(&work.join("config-cps"), args.lines)?;
    numbers_csv(&work.join("numbers.csv"), args.lines)?;
    let mut dialtone = Vec::new();
    let mut kamailio = Vec::new();
    for round in 0..args.rounds {
        // Alternate which system goes first, so neither always runs on a warmer machine.
        for system in if round % 2 == 0 {
            [System::Dialtone, System::Kamailio]
        } else {
            [System::Kamailio, System::Dialtone]
        } {
            println!("round {}, {}:", round + 1, system.name());
            match system {
                System::Dialtone => dialtone.push(round_dialtone(args, work, round).await?),
                System::Kamailio => kamailio.push(round_kamailio(args, work, round)?),
            }
        }
    }
    dialtone.sort_unstable();
    kamailio.sort_unstable();
    let (d, k) = (dialtone[dialtone.len() / 2], kamailio[kamailio.len() / 2]);
    println!(
        "\nhighest rate with zero failed calls (median of {} rounds; each round {dialtone:?} / {kamailio:?}):\n  Dialtone B2BUA (dialtone up)      {d} calls/s\n  Kamailio stateful proxy (t_relay) {k} calls/s\n  ratio {:.2}× (target ≥ 1.0×)",
        args.rounds,
        f64::from(d) / f64::from(k.max(1)),
    );
    Ok(())
}

/// Manifests with `n` agents (and Secrets) besides the bench call center, and SIPp's injection
/// file registering them.
fn many_agents(dir: &Path, csv: &Path, n: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(
        bench_dir().join("callcenter.yaml"),
        dir.join("callcenter.yaml"),
    )?;
    let mut yaml = String::new();
    let mut users = String::from("SEQUENTIAL\n");
    for i in 0..n {
        let name = format!("agent{i:05}");
        let _ = write!(
            yaml,
            "---
apiVersion: dialtone.dev/v1alpha1
kind: Agent
metadata: {{name: {name}, namespace: bench}}
spec:
  sipCredentialsSecretRef: {{name: {name}}}
  destinations: [{{softphone: {{}}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: bench}}
stringData: {{password: pw-{name}}}
"
        );
        let _ = writeln!(
            users,
            "{name};[authentication username={name} password=pw-{name}]"
        );
    }
    std::fs::write(dir.join("agents.yaml"), yaml)?;
    std::fs::write(csv, users)?;
    Ok(())
}

/// Relays UDP between SIPp (on `client`'s side) and the node, dropping the SHA-256
/// `WWW-Authenticate` of every 401 so that SIPp answers the MD5 challenge. Runs until `stop`.
fn md5_relay(node: SocketAddr, stop: Arc<AtomicBool>) -> Result<SocketAddr> {
    let front = UdpSocket::bind("127.0.0.1:0")?;
    let back = UdpSocket::bind("127.0.0.1:0")?;
    for s in [&front, &back] {
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
    }
    let addr = front.local_addr()?;
    let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    let (front2, back2) = (front.try_clone()?, back.try_clone()?);
    let (client2, stop2) = (client.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((n, from)) = front2.recv_from(&mut buf) {
                if let Ok(mut c) = client2.lock() {
                    *c = Some(from);
                }
                let _ = back2.send_to(&buf[..n], node);
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, _)) = back.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let kept: String = text
                .split_inclusive("\r\n")
                .filter(|l| {
                    !(l.to_ascii_lowercase().starts_with("www-authenticate:")
                        && l.contains("algorithm=SHA-256"))
                })
                .collect();
            let to = client.lock().ok().and_then(|c| *c);
            if let Some(to) = to {
                let _ = front.send_to(kept.as_bytes(), to);
            }
        }
    });
    Ok(addr)
}

fn memory(args: &Args, work: &Path) -> Result<()> {
    // The footprint with no agent at all, for reference.
    let empty = work.join("config-empty");
    many_agents(&empty, &work.join("none.csv"), 0)?;
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (up, _) = dialtone_up(args, &empty, &work.join("data-empty"), sip)?;
    settle(up.pid());
    let base = rss_mib(up.pid())?;
    drop(up);

    let config = work.join("config-agents");
    let csv = work.join("agents.csv");
    many_agents(&config, &csv, args.agents)?;
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (up, _) = dialtone_up(args, &config, &work.join("data-agents"), sip)?;
    settle(up.pid());
    let loaded = rss_mib(up.pid())?;
    let stop = Arc::new(AtomicBool::new(false));
    let relay = md5_relay(sip, stop.clone())?;
    let dir = work.join("register");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let sipp = Command::new("sipp")
        .current_dir(&dir)
        .arg("-sf")
        .arg(bench_dir().join("register.xml"))
        .arg("-inf")
        .arg(&csv)
        .arg(relay.to_string())
        .args(["-i", "127.0.0.1", "-p", &free_port()?.to_string()])
        .args(["-r", &args.register_rate.to_string()])
        .args(["-m", &args.agents.to_string(), "-l", "2000"])
        .args(["-timeout", "120s", "-timeout_error", "-nostdin"])
        .args(["-trace_stat", "-stf", "register.csv", "-trace_err"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting SIPp")?;
    Proc(sipp).wait_for(Duration::from_secs(150))?;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let stats = sipp_stats(&dir.join("register.csv"))?;
    settle(up.pid());
    let after = rss_mib(up.pid())?;
    println!(
        "\n{} agents registered with digest (MD5) by SIPp in {:.1} s: {} got 200 OK, {} failed",
        args.agents,
        took.as_secs_f64(),
        stats.successful,
        stats.failed
    );
    println!(
        "  RSS of dialtone up (router + reporter + media node): {base:.1} MiB with no agents, {loaded:.1} MiB with {} agents loaded, {after:.1} MiB with all registered (target < 200 MB = {:.1} MiB)",
        args.agents,
        200e6 / 1_048_576.0
    );
    if stats.successful != args.agents as u64 {
        bail!("not every agent registered; see {}", dir.display());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.dialtone.exists() {
        bail!(
            "{} is missing: cargo build --release --bin dialtone",
            args.dialtone.display()
        );
    }
    let work = std::env::temp_dir().join(format!("dialtone-sip-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    println!(
        "SIP benchmark: SIPp carrier → system → SIPp agent, INVITE → 200 → ACK → {} ms → BYE → 200; work folder {}",
        args.hold_ms,
        work.display()
    );
    let result = async {
        if args.rounds > 0 {
            cps(&args, &work).await?;
        }
        if args.agents > 0 {
            memory(&args, &work)?;
        }
        anyhow::Ok(())
    }
    .await;
    if !args.keep && result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}
