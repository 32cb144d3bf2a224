//! The load generator and receiver: both ends of every call (the caller's and the agent's
//! user agent) in one current-thread runtime, sending 160-byte G.711 RTP at 50 packets/s
//! each way through the relay under test and measuring loss, added jitter and delay.
//!
//! The user agents share a few sockets rather than one socket each: the relay under test
//! still gets one port pair per leg and sends to each leg's own address, while the generator
//! stays cheap enough not to become the bottleneck. Streams are told apart by the relay port
//! they come from, so nothing depends on the relay keeping SSRCs or payloads intact
//! (transcoding rewrites the payload).

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::rc::Rc;
use std::time::Duration;

use dialtone_media_node::media::sdp::Codec;
use dialtone_media_node::media::{g711, rtp};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// 20 ms of G.711 at 8 kHz.
const PAYLOAD: usize = 160;
const PACKETS_PER_SECOND: u32 = 50;

/// One call as the relay under test set it up: the ports it gave each leg.
#[derive(Debug, Clone, Copy)]
pub struct CallPorts {
    /// Where the caller sends, and where the agent's audio comes from.
    pub caller_facing: u16,
    /// Where the agent sends, and where the caller's audio comes from.
    pub agent_facing: u16,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub sent: u64,
    pub received: u64,
    /// Packets from an unexpected port or with the wrong payload type for their side.
    pub wrong: u64,
    /// Sends the kernel refused (the generator's own failure, not the relay's).
    pub send_errors: u64,
    /// Added jitter: per stream, the RFC 3550 estimator over transit times (receive instant
    /// minus actual send instant), averaged over the window; then across streams.
    pub jitter_p50_ms: f64,
    pub jitter_p99_ms: f64,
    pub jitter_max_ms: f64,
    /// One-way delay through the relay over the window's packets.
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    /// How late the generator sent against its schedule (its own health).
    pub late_p99_ms: f64,
    /// CPU seconds per second of the relay process and of this process over the window.
    pub relay_cpu: f64,
    pub generator_cpu: f64,
}

impl Outcome {
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        1.0 - self.received.min(self.sent) as f64 / self.sent as f64
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub window: Duration,
}

/// The generator's sockets; user agent `i` (even: a caller, odd: an agent) lives on socket
/// `i % len`.
pub struct Sockets(Vec<StdUdpSocket>);

impl Sockets {
    pub fn bind(count: usize) -> anyhow::Result<Sockets> {
        // An even count keeps callers and agents on different sockets.
        let count = count.max(2) & !1;
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            let s = StdUdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            v.push(s);
        }
        Ok(Sockets(v))
    }

    /// The address of call `call`'s caller (`agent` false) or agent.
    pub fn ua(&self, call: usize, agent: bool) -> anyhow::Result<SocketAddr> {
        let i = (2 * call + usize::from(agent)) % self.0.len();
        Ok(self.0[i].local_addr()?)
    }
}

struct Stream {
    socket: usize,
    to: SocketAddr,
    payload_type: u8,
    expect_type: u8,
    ssrc: u32,
    /// Send instants (µs since the start), by sequence number.
    sent_at: Vec<u32>,
    received: u32,
    prev_transit: Option<i64>,
    jitter: f64,
    jitter_sum: f64,
    jitter_samples: u32,
}

struct State {
    streams: Vec<Stream>,
    /// Relay port → stream index + 1.
    by_port: Vec<u32>,
    /// Sequence numbers in `window` are measured; the rest is warm-up.
    window: std::ops::Range<u16>,
    start: Instant,
    delays: Vec<u32>,
    wrong: u64,
}

impl State {
    fn on_packet(&mut self, from: SocketAddr, packet: &[u8], now: Instant) {
        let idx = self.by_port[usize::from(from.port())];
        let Some(stream) = idx
            .checked_sub(1)
            .and_then(|i| self.streams.get_mut(i as usize))
        else {
            self.wrong += 1;
            return;
        };
        let Ok(p) = rtp::parse(packet) else {
            self.wrong += 1;
            return;
        };
        if p.payload_type != stream.expect_type || p.payload.len() != PAYLOAD {
            self.wrong += 1;
            return;
        }
        let Some(&sent) = stream.sent_at.get(usize::from(p.sequence)) else {
            self.wrong += 1;
            return;
        };
        let now_us = now.duration_since(self.start).as_micros() as i64;
        let transit = now_us - i64::from(sent);
        if let Some(prev) = stream.prev_transit {
            // RFC 3550 §6.4.1, with the actual send instant in place of the RTP timestamp so
            // that only what the path adds is counted.
            let d = (transit - prev).abs() as f64;
            stream.jitter += (d - stream.jitter) / 16.0;
        }
        stream.prev_transit = Some(transit);
        if self.window.contains(&p.sequence) {
            stream.received += 1;
            stream.jitter_sum += stream.jitter;
            stream.jitter_samples += 1;
            self.delays.push(transit.max(0) as u32);
        }
    }
}

fn tone(codec: Codec) -> [u8; PAYLOAD] {
    let mut out = [0u8; PAYLOAD];
    for (i, b) in out.iter_mut().enumerate() {
        // 400 Hz at a moderate level: real audio, not the silence byte.
        let s = (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin()) as i16;
        *b = match codec {
            Codec::Pcmu => g711::linear_to_ulaw(s),
            Codec::Pcma => g711::linear_to_alaw(s),
        };
    }
    out
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th
    // of the line, the 12th and 13th after it. Clock ticks are 100 per second on Linux.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = after.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs every call's two streams through the relay for `timing` and measures them.
pub fn run(
    sockets: Sockets,
    calls: &[CallPorts],
    transcode: bool,
    timing: Timing,
    relay_pid: u32,
) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(sockets, calls, transcode, timing, relay_pid))
}

async fn drive(
    sockets: Sockets,
    calls: &[CallPorts],
    transcode: bool,
    timing: Timing,
    relay_pid: u32,
) -> anyhow::Result<Outcome> {
    let socks: Vec<Rc<UdpSocket>> = sockets
        .0
        .into_iter()
        .map(|s| UdpSocket::from_std(s).map(Rc::new))
        .collect::<Result<_, _>>()?;
    let warm = (timing.warmup.as_secs_f64() * f64::from(PACKETS_PER_SECOND)).round() as u16;
    let measured = (timing.window.as_secs_f64() * f64::from(PACKETS_PER_SECOND)).round() as u16;
    let total = warm.saturating_add(measured);
    let agent_codec = if transcode { Codec::Pcma } else { Codec::Pcmu };
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let mut streams = Vec::with_capacity(calls.len() * 2);
    let mut by_port = vec![0u32; 65536];
    for (i, c) in calls.iter().enumerate() {
        // Stream 2i: caller → agent, sent to the caller-facing port, coming out of the
        // agent-facing one in the agent's codec; stream 2i+1 the other way.
        for (dir, (to, from, pt, expect)) in [
            (c.caller_facing, c.agent_facing, Codec::Pcmu, agent_codec),
            (c.agent_facing, c.caller_facing, agent_codec, Codec::Pcmu),
        ]
        .into_iter()
        .enumerate()
        {
            let idx = 2 * i + dir;
            by_port[usize::from(from)] = idx as u32 + 1;
            streams.push(Stream {
                socket: idx % socks.len(),
                to: SocketAddr::new(localhost.into(), to),
                payload_type: pt.payload_type(),
                expect_type: expect.payload_type(),
                ssrc: 0x1000_0000 + idx as u32,
                sent_at: vec![0; usize::from(total)],
                received: 0,
                prev_transit: None,
                jitter: 0.0,
                jitter_sum: 0.0,
                jitter_samples: 0,
            });
        }
    }
    let n_streams = streams.len();
    let start = Instant::now() + Duration::from_millis(20);
    let state = Rc::new(RefCell::new(State {
        streams,
        by_port,
        window: warm..total,
        start,
        delays: Vec::with_capacity(n_streams * usize::from(measured)),
        wrong: 0,
    }));

    let mut receivers = Vec::new();
    for sock in &socks {
        let sock = sock.clone();
        let state = state.clone();
        receivers.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                if sock.readable().await.is_err() {
                    return;
                }
                // Drain everything that is queued before yielding: one wake-up, many packets.
                let now = Instant::now();
                let mut st = state.borrow_mut();
                loop {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, from)) => st.on_packet(from, &buf[..n], now),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
            }
        }));
    }

    // Packet g of the run belongs to stream g % S with sequence number g / S and is due at
    // start + g·(20 ms / S): every stream at 50 packets/s, the streams spread evenly over
    // each 20 ms so the load is smooth rather than one burst per period.
    let payloads = [tone(Codec::Pcmu), tone(Codec::Pcma)];
    let step =
        Duration::from_secs(1).as_secs_f64() / f64::from(PACKETS_PER_SECOND) / n_streams as f64;
    let packets = n_streams as u64 * u64::from(total);
    let window_start =
        start + Duration::from_secs_f64(f64::from(warm) / f64::from(PACKETS_PER_SECOND));
    let mut cpu_start = None;
    let mut late = Vec::new();
    let mut send_errors = 0u64;
    let mut sent_in_window = 0u64;
    let mut out = Vec::with_capacity(PAYLOAD + 12);
    let mut g = 0u64;
    while g < packets {
        let due = start + Duration::from_secs_f64(g as f64 * step);
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        if cpu_start.is_none() && now >= window_start {
            cpu_start = Some((now, cpu_seconds(Some(relay_pid)), cpu_seconds(None)));
        }
        late.push(now.duration_since(due).as_secs_f64() * 1e3);
        let now_us = now.duration_since(start).as_micros() as u32;
        let mut st = state.borrow_mut();
        // Everything due by now goes out in this wake-up.
        while g < packets && start + Duration::from_secs_f64(g as f64 * step) <= now {
            let s = (g % n_streams as u64) as usize;
            let seq = (g / n_streams as u64) as u16;
            let stream = &mut st.streams[s];
            let payload = &payloads[usize::from(stream.payload_type == 8)];
            rtp::build(
                &mut out,
                false,
                stream.payload_type,
                seq,
                u32::from(seq) * PAYLOAD as u32,
                stream.ssrc,
                payload,
            );
            stream.sent_at[usize::from(seq)] = now_us;
            if socks[stream.socket].try_send_to(&out, stream.to).is_err() {
                send_errors += 1;
            }
            if seq >= warm {
                sent_in_window += 1;
            }
            g += 1;
        }
    }
    let end = Instant::now();
    let relay_end = cpu_seconds(Some(relay_pid));
    let gen_end = cpu_seconds(None);
    // Packets still in flight get a moment to arrive; later ones count as lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    receivers.iter().for_each(|r| r.abort());

    let st = state.borrow();
    let (cpu_t0, relay_t0, gen_t0) = cpu_start.unwrap_or((start, 0.0, 0.0));
    let secs = end.duration_since(cpu_t0).as_secs_f64().max(1e-3);
    let mut jitters: Vec<f64> = st
        .streams
        .iter()
        .map(|s| {
            if s.jitter_samples == 0 {
                0.0
            } else {
                s.jitter_sum / f64::from(s.jitter_samples) / 1e3
            }
        })
        .collect();
    jitters.sort_by(f64::total_cmp);
    let mut delays: Vec<f64> = st.delays.iter().map(|&d| f64::from(d) / 1e3).collect();
    delays.sort_by(f64::total_cmp);
    late.sort_by(f64::total_cmp);
    Ok(Outcome {
        sent: sent_in_window,
        received: st.streams.iter().map(|s| u64::from(s.received)).sum(),
        wrong: st.wrong,
        send_errors,
        jitter_p50_ms: percentile(&jitters, 0.5),
        jitter_p99_ms: percentile(&jitters, 0.99),
        jitter_max_ms: jitters.last().copied().unwrap_or(0.0),
        delay_p50_ms: percentile(&delays, 0.5),
        delay_p99_ms: percentile(&delays, 0.99),
        late_p99_ms: percentile(&late, 0.99),
        relay_cpu: (relay_end - relay_t0) / secs,
        generator_cpu: (gen_end - gen_t0) / secs,
    })
}
