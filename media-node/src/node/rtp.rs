//! RTP anchoring: the port pool and the relay between a caller's and an agent's sockets.
//!
//! Every leg gets its own even RTP port and the odd RTCP port above it, so the SDP we give
//! each side names a socket that only that side uses. Once a call is bridged the call's media
//! task ([`super::session`]) relays between the two pairs with symmetric latching (RFC 4961
//! style, for NAT: media goes to where the first packet came from, not to what the SDP said),
//! transcodes PCMU↔PCMA when the legs settled different codecs, renumbers telephone-event
//! payload types, relays RTCP as is, feeds the call recording when the number records, and
//! reports when neither side sent RTP for the inactivity time. [`spawn_relay`] runs the same
//! relay on its own (benchmarks, tests).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::record::Recorder;
use crate::media::sdp::Codec;
use crate::media::{g711, rtp};

/// An RTP/RTCP socket pair bound on consecutive ports (even, odd).
#[derive(Debug)]
pub struct RtpPair {
    /// The RTP socket (even port).
    pub rtp: StdUdpSocket,
    /// The RTCP socket (the next, odd port).
    pub rtcp: StdUdpSocket,
    /// The RTP port.
    pub port: u16,
}

impl RtpPair {
    /// The RTP socket's local address.
    pub fn local(&self) -> io::Result<SocketAddr> {
        self.rtp.local_addr()
    }
}

/// Hands out RTP port pairs from a range; a port whose bind fails (taken by another process
/// or a socket not yet closed) is skipped, so the pool never needs to be exact.
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    lo: u16,
    hi: u16,
    next: u16,
    used: HashSet<u16>,
}

impl PortPool {
    /// A pool over `lo..=hi` on `ip` (`lo` is rounded up to even).
    pub fn new(ip: IpAddr, lo: u16, hi: u16) -> Self {
        let lo = lo.saturating_add(lo % 2);
        PortPool {
            ip,
            lo,
            hi,
            next: lo,
            used: HashSet::new(),
        }
    }

    /// Ports held now.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Binds the next free even/odd pair.
    pub fn allocate(&mut self) -> io::Result<RtpPair> {
        let pairs = usize::from((self.hi.saturating_sub(self.lo)) / 2 + 1);
        for _ in 0..pairs {
            let port = self.next;
            self.next = if port.saturating_add(3) > self.hi {
                self.lo
            } else {
                port + 2
            };
            if port.saturating_add(1) > self.hi || self.used.contains(&port) {
                continue;
            }
            let Ok(rtp) = StdUdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = StdUdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            self.used.insert(port);
            return Ok(RtpPair { rtp, rtcp, port });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free RTP port pair in {}-{}", self.lo, self.hi),
        ))
    }

    /// Gives a pair's port back (its sockets are closed by whoever owns them).
    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

/// One side of a relay: what offer/answer settled with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySide {
    /// Where the SDP said to send, until the first packet from that side is seen.
    pub remote: Option<SocketAddr>,
    /// The side's codec.
    pub codec: Codec,
    /// The side's telephone-event payload type.
    pub telephone_event: Option<u8>,
}

/// A relay between a caller and an agent.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// The caller's side.
    pub caller: RelaySide,
    /// The agent's side.
    pub agent: RelaySide,
    /// No RTP from either side for this long: the relay stops and reports.
    pub inactivity: Duration,
}

/// A running relay; dropping it stops the relay and closes its sockets.
#[derive(Debug)]
pub struct RelayHandle {
    _stop: mpsc::UnboundedSender<()>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// Whether the relay task has ended (stopped or timed out).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// One side's sockets and where its media goes (latched on its first packet).
pub(super) struct Endpoint {
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    pub(super) side: RelaySide,
    pub(super) rtp_peer: Option<SocketAddr>,
    rtcp_peer: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_latched: bool,
}

impl Endpoint {
    /// Takes a pair's sockets into tokio (must run inside the runtime).
    pub(super) fn new(pair: RtpPair, side: RelaySide) -> io::Result<Self> {
        Ok(Endpoint {
            rtp: UdpSocket::from_std(pair.rtp)?,
            rtcp: UdpSocket::from_std(pair.rtcp)?,
            rtp_peer: side.remote,
            rtcp_peer: side
                .remote
                .map(|a| SocketAddr::new(a.ip(), a.port().saturating_add(1))),
            side,
            rtp_latched: false,
            rtcp_latched: false,
        })
    }

    /// Media goes back where the side's first RTP packet came from (NAT).
    pub(super) fn latch_rtp(&mut self, from: SocketAddr) {
        if !self.rtp_latched {
            self.rtp_latched = true;
            self.rtp_peer = Some(from);
            if !self.rtcp_latched {
                self.rtcp_peer = Some(SocketAddr::new(from.ip(), from.port().saturating_add(1)));
            }
        }
    }

    /// RTCP goes back where the side's first RTCP packet came from.
    pub(super) fn latch_rtcp(&mut self, from: SocketAddr) {
        if !self.rtcp_latched {
            self.rtcp_latched = true;
            self.rtcp_peer = Some(from);
        }
    }
}

/// Decodes a G.711 packet (by its own payload type, 0 or 8, so that a sender that switches
/// codec mid-call is still heard) into `out`. False for anything else (events, comfort noise).
pub(super) fn decode_audio(packet: &[u8], out: &mut Vec<i16>) -> bool {
    let Ok(p) = rtp::parse(packet) else {
        return false;
    };
    let decode: fn(u8) -> i16 = match p.payload_type {
        0 => g711::ulaw_to_linear,
        8 => g711::alaw_to_linear,
        _ => return false,
    };
    out.clear();
    out.extend(p.payload.iter().map(|b| decode(*b)));
    true
}

/// Rewrites one RTP packet from side `from` for side `to` into `out`: codec transcoding
/// (PCMU↔PCMA) and telephone-event renumbering. Returns false for packets the far side
/// cannot take (unknown payload types while transcoding, events it did not negotiate).
pub fn translate(packet: &[u8], from: &RelaySide, to: &RelaySide, out: &mut Vec<u8>) -> bool {
    if from.codec == to.codec && from.telephone_event == to.telephone_event {
        out.clear();
        out.extend_from_slice(packet);
        return true;
    }
    let Ok(p) = rtp::parse(packet) else {
        return false;
    };
    let (pt, payload): (u8, Vec<u8>) = if p.payload_type == from.codec.payload_type() {
        let map: fn(u8) -> u8 = match (from.codec, to.codec) {
            (Codec::Pcmu, Codec::Pcma) => g711::ulaw_to_alaw,
            (Codec::Pcma, Codec::Pcmu) => g711::alaw_to_ulaw,
            _ => |b| b,
        };
        (
            to.codec.payload_type(),
            p.payload.iter().map(|b| map(*b)).collect(),
        )
    } else if Some(p.payload_type) == from.telephone_event {
        match to.telephone_event {
            Some(te) => (te, p.payload.to_vec()),
            None => return false,
        }
    } else if from.codec == to.codec {
        (p.payload_type, p.payload.to_vec())
    } else {
        return false;
    };
    rtp::build(out, p.marker, pt, p.sequence, p.timestamp, p.ssrc, &payload);
    true
}

/// Starts relaying between the caller's and the agent's pairs. `on_inactive` runs once if
/// the relay stops because no RTP came from either side for `config.inactivity`.
pub fn spawn_relay(
    caller: RtpPair,
    agent: RtpPair,
    config: RelayConfig,
    on_inactive: impl FnOnce() + Send + 'static,
) -> RelayHandle {
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel::<()>();
    let task = tokio::spawn(async move {
        let legs = Endpoint::new(caller, config.caller)
            .and_then(|c| Ok((c, Endpoint::new(agent, config.agent)?)));
        match legs {
            Ok((mut c, mut a)) => {
                if relay(&mut c, &mut a, config.inactivity, &mut stop_rx, None).await {
                    on_inactive();
                }
            }
            Err(e) => tracing::warn!(error = %e, "RTP relay could not start"),
        }
    });
    RelayHandle {
        _stop: stop_tx,
        task,
    }
}

/// Feeds one relayed packet to the recording (channel 0 the caller, 1 the agent); the
/// recording is dropped (and so finished) once its limit is reached.
fn record(recorder: &mut Option<Recorder>, channel: usize, packet: &[u8], pcm: &mut Vec<i16>) {
    let Some(rec) = recorder.as_mut() else {
        return;
    };
    let now = std::time::Instant::now();
    if decode_audio(packet, pcm) {
        rec.push_at(channel, pcm, now);
    }
    if rec.full_at(now) {
        *recorder = None;
    }
}

/// The relay loop, until `stop` closes (true is returned when it ended for inactivity
/// instead). Messages on `stop` are ignored: the channel's closing is the signal.
pub(super) async fn relay<T>(
    c: &mut Endpoint,
    a: &mut Endpoint,
    inactivity: Duration,
    stop: &mut mpsc::UnboundedReceiver<T>,
    mut recorder: Option<Recorder>,
) -> bool {
    let mut in_c = vec![0u8; 2048];
    let mut in_a = vec![0u8; 2048];
    let mut ctl_c = vec![0u8; 2048];
    let mut ctl_a = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    let mut pcm = Vec::with_capacity(480);
    let mut last_rtp = Instant::now();
    loop {
        tokio::select! {
            r = c.rtp.recv_from(&mut in_c) => {
                let Ok((n, from)) = r else { continue };
                c.latch_rtp(from);
                let packet = &in_c[..n];
                if rtp::is_rtcp(packet) {
                    continue;
                }
                last_rtp = Instant::now();
                if let Some(to) = a.rtp_peer && translate(packet, &c.side, &a.side, &mut out) {
                    let _ = a.rtp.try_send_to(&out, to);
                }
                record(&mut recorder, 0, packet, &mut pcm);
            }
            r = a.rtp.recv_from(&mut in_a) => {
                let Ok((n, from)) = r else { continue };
                a.latch_rtp(from);
                let packet = &in_a[..n];
                if rtp::is_rtcp(packet) {
                    continue;
                }
                last_rtp = Instant::now();
                if let Some(to) = c.rtp_peer && translate(packet, &a.side, &c.side, &mut out) {
                    let _ = c.rtp.try_send_to(&out, to);
                }
                record(&mut recorder, 1, packet, &mut pcm);
            }
            r = c.rtcp.recv_from(&mut ctl_c) => {
                let Ok((n, from)) = r else { continue };
                c.latch_rtcp(from);
                if let Some(to) = a.rtcp_peer {
                    let _ = a.rtcp.try_send_to(&ctl_c[..n], to);
                }
            }
            r = a.rtcp.recv_from(&mut ctl_a) => {
                let Ok((n, from)) = r else { continue };
                a.latch_rtcp(from);
                if let Some(to) = c.rtcp_peer {
                    let _ = c.rtcp.try_send_to(&ctl_a[..n], to);
                }
            }
            _ = tokio::time::sleep_until(last_rtp + inactivity) => return true,
            msg = stop.recv() => if msg.is_none() { return false },
        }
    }
}
