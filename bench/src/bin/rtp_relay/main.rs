//! RTP relay capacity: concurrent bridged G.711 calls (50 packets/s each way) that Dialtone's
//! relay carries on one core with under 1 % loss and under 5 ms added jitter, beside rtpengine
//! (userspace forwarding, one worker thread) relaying the same streams in the same run.
//!
//! Each relay runs as its own process pinned to one core (`taskset`); this process, pinned to
//! another, is both ends of every call. For each number of calls, each relay is started
//! fresh, given its calls (Dialtone through the media node's own `PortPool` and `spawn_relay`
//! in a current-thread runtime, rtpengine through `offer`/`answer` on its ng port), and
//! measured over a window after a warm-up. The ramp goes on while a relay passes, then
//! bisects between its last pass and first failure.
//!
//! Needs `rtpengine` (Debian: `apt-get install rtpengine-daemon`), `taskset` and `setsid`, and
//! root for the negative niceness that keeps other tenants' builds off the two cores:
//!
//! ```sh
//! cargo run --release -p dialtone-bench --bin rtp_relay -- --repeat 3 --refine 1 --window 6
//! ```

mod ng;
mod traffic;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dialtone_media_node::media::sdp::Codec;

use rtp::{PortPool, RelayConfig, RelaySide, spawn_relay};
use traffic::{CallPorts, Outcome, Sockets, Timing};

/// The media node's relay, compiled from its own source file: `dialtone_media_node::node`
/// re-exports `PortPool`, `RelayConfig` and `spawn_relay` but not `RelaySide`, without which
/// no `RelayConfig` can be built outside the crate. Until it does, the benchmark builds
/// `media-node/src/node/rtp.rs` itself, byte for byte, beside the two names it reaches for:
/// the crate's `media` module (re-exported) and a recorder (never started here: the relay
/// runs without recording, as `spawn_relay` always does).
mod media {
    pub use dialtone_media_node::media::*;
}

/// `super::record` as seen from the relay's source.
mod record {
    /// Stands in for the node's call recorder, which `spawn_relay` never starts.
    pub struct Recorder;

    impl Recorder {
        pub fn push_at(&mut self, _channel: usize, _samples: &[i16], _now: std::time::Instant) {}

        pub fn full_at(&self, _now: std::time::Instant) -> bool {
            false
        }
    }
}

#[allow(dead_code)]
#[path = "../../../../media-node/src/node/rtp.rs"]
mod rtp;

/// Set in the environment of the re-executed, pinned orchestrator.
const PINNED: &str = "DIALTONE_BENCH_RTP_PINNED";

#[derive(Parser)]
#[command(about = "RTP relay capacity on one core: Dialtone beside rtpengine (userspace)")]
struct Cli {
    #[command(subcommand)]
    serve: Option<Serve>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Serve {
    /// (internal) Dialtone's relay as its own process: reads `CALLER_UA AGENT_UA CODEC CODEC`
    /// lines on stdin, answers each with the caller-facing and agent-facing ports, and relays
    /// until stdin closes.
    ServeDialtone {
        #[arg(long, default_value_t = 20000)]
        port_min: u16,
        #[arg(long, default_value_t = 39999)]
        port_max: u16,
    },
}

#[derive(Parser)]
struct RunArgs {
    /// Numbers of concurrent calls to ramp through.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "200,400,800,1200,1400,1600,1800,2000,2400,2800,3200"
    )]
    calls: Vec<usize>,
    /// Bisection steps between a relay's last pass and its first failure.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// Whole ramps to run; capacities are the median over them.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Cases: `same` (PCMU both legs) and `transcode` (PCMU caller, PCMA agent).
    #[arg(long, value_delimiter = ',', default_value = "same,transcode")]
    cases: Vec<Case>,
    /// Relays to measure.
    #[arg(long, value_delimiter = ',', default_value = "dialtone,rtpengine")]
    relays: Vec<Relay>,
    /// Seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 8.0)]
    window: f64,
    /// Pass criteria: loss below this percentage...
    #[arg(long, default_value_t = 1.0)]
    max_loss: f64,
    /// ...and the 99th percentile of per-stream added jitter below this many milliseconds.
    #[arg(long, default_value_t = 5.0)]
    max_jitter: f64,
    /// The core the relay under test runs on.
    #[arg(long, default_value_t = 0)]
    relay_core: usize,
    /// The core of the load generator (this process).
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Sockets the generator's user agents share.
    #[arg(long, default_value_t = 64)]
    sockets: usize,
    /// Niceness of the relay and of the generator (negative needs root): the machine is
    /// shared, and both relays and the generator should win their cores from other tenants'
    /// builds alike. Unlike a real-time class it cannot starve the others outright.
    #[arg(long, default_value_t = -19, allow_hyphen_values = true)]
    nice: i32,
    /// rtpengine's binary.
    #[arg(long, default_value = "rtpengine")]
    rtpengine: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Case {
    Same,
    Transcode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Relay {
    Dialtone,
    Rtpengine,
}

impl Relay {
    fn name(self) -> &'static str {
        match self {
            Relay::Dialtone => "dialtone",
            Relay::Rtpengine => "rtpengine",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.serve {
        Some(Serve::ServeDialtone { port_min, port_max }) => serve_dialtone(port_min, port_max),
        None => {
            if std::env::var_os(PINNED).is_none() {
                return repin(&cli.run);
            }
            orchestrate(&cli.run)
        }
    }
}

/// Runs this same command again under `taskset` on the load core, so the generator never
/// competes with the relay for its core.
fn repin(args: &RunArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    // A session of its own: with autogroup scheduling, niceness only counts inside a
    // session's group, so the group itself is made nice too (see `orchestrate`), and only
    // this benchmark's processes are in it.
    let status = Command::new("setsid")
        .arg("--wait")
        .arg("taskset")
        .arg("-c")
        .arg(args.load_core.to_string())
        .arg("nice")
        .arg("-n")
        .arg(args.nice.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(PINNED, "1")
        .status()
        .context("setsid and taskset (util-linux) are needed to pin the processes")?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Dialtone's side: the media node's port pool and relay, one relay task per call, in a
/// current-thread runtime (the process is pinned to one core anyway).
fn serve_dialtone(port_min: u16, port_max: u16) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // stdin is read on a plain thread: it only carries the set-up lines, then blocks.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rt.block_on(async move {
        let mut pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port_min, port_max);
        let mut relays = Vec::new();
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [caller, agent, caller_codec, agent_codec] = f[..] else {
                bail!("bad set-up line {line:?}");
            };
            let side = |addr: &str, codec: &str| -> anyhow::Result<RelaySide> {
                Ok(RelaySide {
                    remote: Some(addr.parse()?),
                    codec: codec_named(codec)?,
                    telephone_event: Some(101),
                })
            };
            let config = RelayConfig {
                caller: side(caller, caller_codec)?,
                agent: side(agent, agent_codec)?,
                inactivity: Duration::from_secs(600),
            };
            let c = pool.allocate()?;
            let a = pool.allocate()?;
            writeln!(out, "{} {}", c.port, a.port)?;
            out.flush()?;
            relays.push(spawn_relay(c, a, config, || {}));
        }
        drop(relays);
        Ok(())
    })
}

/// `taskset -c CORE nice -n NICE …`: both exec what follows, so the child's id is the
/// program's own.
fn pinned(core: usize, nice: i32) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(core.to_string())
        .arg("nice")
        .arg("-n")
        .arg(nice.to_string());
    cmd
}

fn codec_named(name: &str) -> anyhow::Result<Codec> {
    match name {
        "PCMU" => Ok(Codec::Pcmu),
        "PCMA" => Ok(Codec::Pcma),
        other => bail!("unknown codec {other}"),
    }
}

fn codecs(case: Case) -> (&'static str, &'static str) {
    match case {
        Case::Same => ("PCMU", "PCMU"),
        Case::Transcode => ("PCMU", "PCMA"),
    }
}

/// A relay process under test; killed when dropped.
struct Running {
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dialtone(
    args: &RunArgs,
    sockets: &Sockets,
    n: usize,
    case: Case,
) -> anyhow::Result<(Running, Vec<CallPorts>)> {
    let mut child = pinned(args.relay_core, args.nice)
        .arg(std::env::current_exe()?)
        .arg("serve-dialtone")
        .env_remove(PINNED)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout: ChildStdout = child.stdout.take().context("stdout")?;
    // Killed on any early return below.
    let mut running = Running {
        child,
        _stdin: None,
    };
    let mut lines = BufReader::new(stdout).lines();
    let (cc, ac) = codecs(case);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        writeln!(
            stdin,
            "{} {} {cc} {ac}",
            sockets.ua(i, false)?,
            sockets.ua(i, true)?
        )?;
        stdin.flush()?;
        let line = lines.next().context("Dialtone's relay ended")??;
        let (c, a) = line.split_once(' ').context("bad port line")?;
        calls.push(CallPorts {
            caller_facing: c.parse()?,
            agent_facing: a.parse()?,
        });
    }
    // The relay runs until its stdin closes.
    running._stdin = Some(stdin);
    Ok((running, calls))
}

fn sdp(port: u16, codec: &str) -> String {
    let pt = codec_named(codec).map_or(0, Codec::payload_type);
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\na=sendrecv\r\n"
    )
}

fn start_rtpengine(
    args: &RunArgs,
    sockets: &Sockets,
    n: usize,
    case: Case,
) -> anyhow::Result<(Running, Vec<CallPorts>)> {
    // A port free right now rather than a fixed one: other tenants (and Dialtone's own port
    // range) may hold any fixed choice.
    let ng: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let log = std::fs::File::create(std::env::temp_dir().join("rtp_relay-rtpengine.log"))?;
    let child = pinned(args.relay_core, args.nice)
        .arg(&args.rtpengine)
        .args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            // No kernel forwarding table: userspace relaying only.
            "--table=-1",
            "--interface=127.0.0.1",
            "--num-threads=1",
            "--port-min=40000",
            "--port-max=59999",
            "--timeout=600",
        ])
        .arg(format!("--listen-ng={ng}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} (Debian: rtpengine-daemon)", args.rtpengine))?;
    let mut running = Running {
        child,
        _stdin: None,
    };
    let mut client = ng::Client::new(ng)?;
    let ping = ng::Value::dict([("command", ng::Value::str("ping"))]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.command(&ping).is_err() {
        if Instant::now() > deadline || running.child.try_wait()?.is_some() {
            bail!("rtpengine did not come up (see its log in the temp folder)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (cc, ac) = codecs(case);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let call_id = ng::Value::str(&format!("bench-{i}"));
        let mut offer = vec![
            ("command", ng::Value::str("offer")),
            ("call-id", call_id.clone()),
            ("from-tag", ng::Value::str("caller")),
            (
                "sdp",
                ng::Value::str(&sdp(sockets.ua(i, false)?.port(), cc)),
            ),
        ];
        if case == Case::Transcode {
            // The agent is offered only PCMA, so rtpengine has to transcode.
            offer.push((
                "codec",
                ng::Value::dict([
                    ("mask", ng::Value::List(vec![ng::Value::str(cc)])),
                    ("transcode", ng::Value::List(vec![ng::Value::str(ac)])),
                ]),
            ));
        }
        let reply = client.command(&ng::Value::dict(offer))?;
        let agent_facing =
            ng::audio_port(reply.get("sdp").and_then(ng::Value::as_str).unwrap_or(""))?;
        let answer = ng::Value::dict([
            ("command", ng::Value::str("answer")),
            ("call-id", call_id),
            ("from-tag", ng::Value::str("caller")),
            ("to-tag", ng::Value::str("agent")),
            ("sdp", ng::Value::str(&sdp(sockets.ua(i, true)?.port(), ac))),
        ]);
        let reply = client.command(&answer)?;
        let caller_facing =
            ng::audio_port(reply.get("sdp").and_then(ng::Value::as_str).unwrap_or(""))?;
        calls.push(CallPorts {
            caller_facing,
            agent_facing,
        });
    }
    Ok((running, calls))
}

/// One relay carrying `n` calls: started, loaded, measured, stopped.
fn trial(args: &RunArgs, relay: Relay, case: Case, n: usize) -> anyhow::Result<Outcome> {
    let sockets = Sockets::bind(args.sockets.min(2 * n))?;
    let (running, calls) = match relay {
        Relay::Dialtone => start_dialtone(args, &sockets, n, case)?,
        Relay::Rtpengine => start_rtpengine(args, &sockets, n, case)?,
    };
    let timing = Timing {
        warmup: Duration::from_secs_f64(args.warmup),
        window: Duration::from_secs_f64(args.window),
    };
    let outcome = traffic::run(
        sockets,
        &calls,
        case == Case::Transcode,
        timing,
        running.child.id(),
    );
    drop(running);
    // Let the kernel finish closing the relay's sockets before the next one binds.
    std::thread::sleep(Duration::from_millis(300));
    outcome
}

fn passes(args: &RunArgs, o: &Outcome) -> bool {
    o.loss() * 100.0 < args.max_loss && o.jitter_p99_ms < args.max_jitter
}

/// The generator sent late against its schedule or could not send: its core, not the relay,
/// was the limit during this trial.
fn generator_stalled(o: &Outcome) -> bool {
    o.late_p99_ms > 5.0 || o.send_errors > 0
}

fn report(args: &RunArgs, relay: Relay, case: Case, n: usize, o: &Outcome) {
    let verdict = if passes(args, o) { "pass" } else { "FAIL" };
    // A generator running late, or refused sends, means this process was the limit.
    let generator = if generator_stalled(o) {
        format!(
            "  [generator late p99 {:.1} ms, {} send errors]",
            o.late_p99_ms, o.send_errors
        )
    } else {
        String::new()
    };
    println!(
        "{:<9} {:<9} {n:>5} calls  loss {:>6.2} %  jitter p50/p99/max {:>5.2}/{:>5.2}/{:>6.2} ms  \
         delay p50/p99 {:>5.2}/{:>6.2} ms  relay cpu {:>3.0} %  gen cpu {:>3.0} %  wrong {}  {verdict}{generator}",
        relay.name(),
        format!("{case:?}").to_lowercase(),
        o.loss() * 100.0,
        o.jitter_p50_ms,
        o.jitter_p99_ms,
        o.jitter_max_ms,
        o.delay_p50_ms,
        o.delay_p99_ms,
        o.relay_cpu * 100.0,
        o.generator_cpu * 100.0,
        o.wrong,
    );
}

/// What one ramp found for one relay: its capacity and its CPU use at each passing load.
#[derive(Default, Clone)]
struct Found {
    capacity: usize,
    cpu_at: Vec<(usize, f64)>,
}

fn ramp(args: &RunArgs, case: Case) -> anyhow::Result<Vec<Found>> {
    let mut found = vec![Found::default(); args.relays.len()];
    let mut first_fail: Vec<Option<usize>> = vec![None; args.relays.len()];
    let mut failures = vec![0u32; args.relays.len()];
    let measure = |r: usize, n: usize, found: &mut Vec<Found>| -> anyhow::Result<bool> {
        let relay = args.relays[r];
        let mut o = trial(args, relay, case, n)?;
        report(args, relay, case, n, &o);
        // A failure while the generator stalled (another tenant took its core) says nothing
        // about the relay: such a trial is run again, twice at most.
        for _ in 0..2 {
            if passes(args, &o) || !generator_stalled(&o) {
                break;
            }
            println!("          (the generator stalled: again)");
            o = trial(args, relay, case, n)?;
            report(args, relay, case, n, &o);
        }
        let ok = passes(args, &o);
        if ok {
            found[r].capacity = found[r].capacity.max(n);
            found[r].cpu_at.push((n, o.relay_cpu));
        }
        Ok(ok)
    };
    for (step, &n) in args.calls.iter().enumerate() {
        // Alternate which relay goes first, so neither always meets the machine's state
        // (caches, other tenants' load) after the other.
        let mut order: Vec<usize> = (0..args.relays.len()).collect();
        if step % 2 == 1 {
            order.reverse();
        }
        let mut any = false;
        for r in order {
            // Two failures in a row end a relay's ramp: one may be the machine's noise.
            if failures[r] >= 2 {
                continue;
            }
            any = true;
            if measure(r, n, &mut found)? {
                failures[r] = 0;
            } else {
                failures[r] += 1;
                if first_fail[r].is_none_or(|f| f < found[r].capacity) {
                    first_fail[r] = Some(n);
                }
            }
        }
        if !any {
            break;
        }
    }
    for r in 0..args.relays.len() {
        let Some(mut hi) = first_fail[r].filter(|&f| f > found[r].capacity) else {
            continue;
        };
        let mut lo = found[r].capacity;
        for _ in 0..args.refine {
            let mid = (lo + hi) / 2 / 10 * 10;
            if mid <= lo || mid >= hi {
                break;
            }
            if measure(r, mid, &mut found)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    Ok(found)
}

fn median(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn orchestrate(args: &RunArgs) -> anyhow::Result<()> {
    // The relays started from here inherit this session and so its scheduling group.
    if std::path::Path::new("/proc/self/autogroup").exists()
        && let Err(e) = std::fs::write("/proc/self/autogroup", args.nice.to_string())
    {
        eprintln!("could not set the session's niceness ({e}); other tenants will add noise");
    }
    println!(
        "relay on core {}, load generator on core {}; {} s warm-up, {} s measured; pass: loss < {} %, \
         per-stream added jitter p99 < {} ms",
        args.relay_core, args.load_core, args.warmup, args.window, args.max_loss, args.max_jitter
    );
    let mut summary = Vec::new();
    for &case in &args.cases {
        let mut runs: Vec<Vec<Found>> = Vec::new();
        for rep in 0..args.repeat {
            println!("-- {case:?}, ramp {} of {}", rep + 1, args.repeat);
            runs.push(ramp(args, case)?);
        }
        let caps: Vec<usize> = (0..args.relays.len())
            .map(|r| median(runs.iter().map(|f| f[r].capacity).collect()))
            .collect();
        // CPU at the largest load every relay passed in every ramp: the cost per call at
        // equal work, which the noisy pass/fail edge does not show.
        let common = runs
            .iter()
            .flat_map(|f| {
                f.iter()
                    .map(|f| f.cpu_at.iter().map(|c| c.0).max().unwrap_or(0))
            })
            .min()
            .unwrap_or(0);
        let cpu: Vec<Option<f64>> = (0..args.relays.len())
            .map(|r| {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter_map(|f| f[r].cpu_at.iter().find(|c| c.0 == common).map(|c| c.1))
                    .collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            })
            .collect();
        summary.push((case, caps, common, cpu));
    }
    println!();
    println!(
        "| case | {} | ratio | relay CPU at the same load |",
        args.relays
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(args.relays.len()));
    for (case, caps, common, cpu) in summary {
        let ratio = match caps.as_slice() {
            [d, e] if *e > 0 => format!("{:.2}×", *d as f64 / *e as f64),
            _ => "-".to_string(),
        };
        let cpu = cpu
            .iter()
            .zip(&args.relays)
            .map(|(c, r)| {
                format!(
                    "{} {}",
                    r.name(),
                    c.map_or("-".into(), |c| format!("{:.0} %", c * 100.0))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {case:?} | {} | {ratio} | {common} calls: {cpu} |",
            caps.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}
