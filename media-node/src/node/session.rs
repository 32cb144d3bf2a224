//! The caller's media: one task per call owns the caller's RTP sockets from the INVITE to the
//! end of the call.
//!
//! Before the bridge it plays what the actor asks (prompts, hold music, the ringback tone, the
//! voicemail beep) as RTP paced by a 20 ms `tokio` interval — 160 samples a packet, encoded
//! with the caller's negotiated codec, one SSRC for the whole call, the sequence number
//! advancing by one a packet, the timestamp by 160 a tick (also while nothing plays, so that
//! the timestamp stays tied to the clock) and the marker bit on the first packet of each new
//! playlist. It hears the caller's key presses (RFC 4733 events on the caller's
//! telephone-event payload type, one press per event however many packets carry it) and
//! records a voicemail message until silence or the maximum length.
//!
//! At the bridge the same task becomes the relay ([`super::rtp::relay`]) between caller and
//! agent, with the call recording when the number records. Keeping one task for both phases
//! means the caller's socket, its latched address and its stream never change hands.
//!
//! The actor talks to the task with [`Cmd`]s and never waits for it; the task answers with
//! [`MediaEvent`]s through the actor's inbox. Dropping the [`SessionHandle`] ends the task
//! (and finishes any recording).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::actor::Input;
use super::call::CallKey;
use super::prompts::{Prompts, Samples};
use super::record::Recorder;
use super::rtp::{Endpoint, RelaySide, RtpPair, decode_audio, relay};
use crate::media::rtp::{self, DtmfReceiver, TelephoneEvent};
use crate::media::sdp::Codec;
use crate::media::{g711, tone};

/// Packet interval.
const PTIME: Duration = Duration::from_millis(20);
/// Samples per packet at 8 kHz.
const FRAME: usize = 160;
/// Silence kept after the last word of a message ended by silence.
const TAIL: Duration = Duration::from_millis(500);

/// Something to play.
#[derive(Debug, Clone)]
pub(super) enum Sound {
    /// A prompt by name, from the prompts folder.
    Prompt(String),
    /// Samples Dialtone made (ringback, beep).
    Tone(Samples),
}

/// What to play: `once` in order, then `then_loop` forever. When nothing of `once` and
/// `then_loop` can be played (missing prompts), `fallback` plays instead. A playlist that
/// ends reports [`MediaEvent::PlayDone`] with its id once its last packet has left.
#[derive(Debug, Clone, Default)]
pub(super) struct Playlist {
    pub(super) id: u64,
    pub(super) once: Vec<Sound>,
    pub(super) then_loop: Option<Sound>,
    pub(super) fallback: Option<Sound>,
}

/// What the actor asks of the media task.
pub(super) enum Cmd {
    /// Play this, replacing whatever plays.
    Play(Playlist),
    /// Stop playing (no PlayDone for the stopped playlist).
    Stop,
    /// Record the caller (voicemail) until `silence` without voice or the recorder's limit.
    Record {
        recorder: Recorder,
        silence: Duration,
    },
    /// Relay between the caller and this agent leg from now on, recording if asked.
    Bridge {
        agent: RtpPair,
        side: RelaySide,
        recorder: Option<Recorder>,
    },
}

/// What the media task tells the actor.
///
/// `Inactive` before the bridge needs the caller to have sent RTP once and then neither RTP
/// nor RTCP for the inactivity time (a line that never carried media, as with some test
/// peers, is not judged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaEvent {
    /// The playlist with this id played to its end.
    PlayDone(u64),
    /// The caller pressed a key.
    Digit(char),
    /// The voicemail recording stopped by itself: after silence, or at its maximum length.
    RecordStopped { silence: bool },
    /// The caller sent RTP, then nothing for the inactivity time.
    Inactive,
}

/// The actor's handle on a call's media task.
#[derive(Debug)]
pub(super) struct SessionHandle {
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl SessionHandle {
    /// Sends a command (a task that has ended ignores it: its call is ending too).
    pub(super) fn send(&self, cmd: Cmd) {
        let _ = self.cmds.send(cmd);
    }
}

/// Everything a media task starts with.
pub(super) struct Setup {
    pub(super) pair: RtpPair,
    pub(super) side: RelaySide,
    pub(super) call: CallKey,
    pub(super) inbox: mpsc::Sender<Input>,
    pub(super) prompts: Arc<Prompts>,
    pub(super) inactivity: Duration,
}

/// Starts a call's media task.
pub(super) fn spawn(setup: Setup) -> SessionHandle {
    let (cmds, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(setup, rx));
    SessionHandle { cmds }
}

/// A playlist being played.
struct Player {
    id: u64,
    queue: VecDeque<Samples>,
    looped: Option<Samples>,
    current: Option<Samples>,
    offset: usize,
    fresh: bool,
}

impl Player {
    /// The next 160 samples (silence-padded at the very end); false once nothing is left.
    fn next_frame(&mut self, out: &mut [i16; FRAME]) -> bool {
        let mut filled = 0;
        while filled < FRAME {
            let exhausted = self.current.as_ref().is_none_or(|c| self.offset >= c.len());
            if exhausted {
                self.offset = 0;
                self.current = self.queue.pop_front().or_else(|| self.looped.clone());
            }
            let Some(current) = self.current.as_ref() else {
                break;
            };
            let n = (FRAME - filled).min(current.len() - self.offset);
            out[filled..filled + n].copy_from_slice(&current[self.offset..self.offset + n]);
            filled += n;
            self.offset += n;
        }
        out[filled..].fill(0);
        filled > 0
    }
}

/// A voicemail message being recorded.
struct Message {
    recorder: Recorder,
    silence: Duration,
    last_voice: Instant,
}

struct Session {
    caller: Endpoint,
    call: CallKey,
    inbox: mpsc::Sender<Input>,
    prompts: Arc<Prompts>,
    inactivity: Duration,
    player: Option<Player>,
    message: Option<Message>,
    dtmf: DtmfReceiver,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    last_rtp: Option<Instant>,
    packet: Vec<u8>,
    pcm: Vec<i16>,
}

async fn run(setup: Setup, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let caller = match Endpoint::new(setup.pair, setup.side) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(call_id = %setup.call, error = %e, "caller media could not start");
            return;
        }
    };
    let mut s = Session {
        caller,
        call: setup.call,
        inbox: setup.inbox,
        prompts: setup.prompts,
        inactivity: setup.inactivity,
        player: None,
        message: None,
        dtmf: DtmfReceiver::default(),
        ssrc: fastrand::u32(..),
        sequence: fastrand::u16(..),
        timestamp: fastrand::u32(..),
        last_rtp: None,
        packet: Vec::with_capacity(12 + FRAME),
        pcm: Vec::with_capacity(480),
    };
    let mut tick = tokio::time::interval(PTIME);
    // After a stall, go on from now rather than bursting the packets that were due.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    let mut ctl = vec![0u8; 2048];
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Bridge { agent, side, recorder }) => {
                    s.player = None;
                    s.message = None;
                    match Endpoint::new(agent, side) {
                        Ok(mut a) => {
                            if relay(&mut s.caller, &mut a, s.inactivity, &mut rx, recorder).await {
                                s.report(MediaEvent::Inactive).await;
                            }
                        }
                        Err(e) => tracing::warn!(call_id = %s.call, error = %e, "relay could not start"),
                    }
                    return;
                }
                Some(cmd) => s.command(cmd).await,
            },
            r = s.caller.rtp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    s.on_rtp(&buf[..n], from).await;
                }
            }
            r = s.caller.rtcp.recv_from(&mut ctl) => {
                if let Ok((_, from)) = r {
                    s.caller.latch_rtcp(from);
                    // A phone that suppresses silence still reports: the line is alive.
                    if s.last_rtp.is_some() {
                        s.last_rtp = Some(Instant::now());
                    }
                }
            }
            _ = tick.tick() => {
                if !s.on_tick().await {
                    return;
                }
            }
        }
    }
}

impl Session {
    async fn report(&self, event: MediaEvent) {
        let input = Input::Media {
            call: self.call.clone(),
            event,
        };
        // The actor is gone only when the node stops.
        let _ = self.inbox.send(input).await;
    }

    async fn resolve(&self, sound: &Sound) -> Option<Samples> {
        match sound {
            Sound::Prompt(name) => self.prompts.get(name).await,
            Sound::Tone(samples) => Some(samples.clone()),
        }
        .filter(|s| !s.is_empty())
    }

    async fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Play(list) => {
                let mut queue = VecDeque::new();
                for sound in &list.once {
                    if let Some(s) = self.resolve(sound).await {
                        queue.push_back(s);
                    }
                }
                let mut looped = None;
                if let Some(sound) = &list.then_loop {
                    looped = self.resolve(sound).await;
                }
                if queue.is_empty()
                    && looped.is_none()
                    && let Some(sound) = &list.fallback
                    && let Some(s) = self.resolve(sound).await
                {
                    // The fallback stands in for what could not be read: looped if that was.
                    if list.then_loop.is_some() {
                        looped = Some(s);
                    } else {
                        queue.push_back(s);
                    }
                }
                if queue.is_empty() && looped.is_none() {
                    self.player = None;
                    self.report(MediaEvent::PlayDone(list.id)).await;
                    return;
                }
                self.player = Some(Player {
                    id: list.id,
                    queue,
                    looped,
                    current: None,
                    offset: 0,
                    fresh: true,
                });
            }
            Cmd::Stop => self.player = None,
            Cmd::Record { recorder, silence } => {
                self.message = Some(Message {
                    recorder,
                    silence,
                    last_voice: Instant::now(),
                });
            }
            Cmd::Bridge { .. } => {}
        }
    }

    async fn on_rtp(&mut self, packet: &[u8], from: SocketAddr) {
        self.caller.latch_rtp(from);
        if rtp::is_rtcp(packet) {
            return;
        }
        let now = Instant::now();
        self.last_rtp = Some(now);
        let Ok(p) = rtp::parse(packet) else {
            return;
        };
        if Some(p.payload_type) == self.caller.side.telephone_event {
            let key = TelephoneEvent::parse(p.payload)
                .and_then(|ev| self.dtmf.on_packet(p.timestamp, ev));
            if let Some(key) = key {
                self.report(MediaEvent::Digit(key)).await;
            }
            return;
        }
        if let Some(m) = self.message.as_mut()
            && decode_audio(packet, &mut self.pcm)
        {
            m.recorder.push_at(0, &self.pcm, now);
            if tone::is_voice(&self.pcm) {
                m.last_voice = now;
                m.recorder.mark_voice(0);
            }
        }
    }

    /// Every 20 ms: the next packet of what plays, the end of a message, media inactivity.
    /// False when the task should end.
    async fn on_tick(&mut self) -> bool {
        let now = Instant::now();
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        let mut frame = [0i16; FRAME];
        if let Some(player) = self.player.as_mut() {
            if player.next_frame(&mut frame) {
                let marker = std::mem::take(&mut player.fresh);
                self.send(&frame, marker);
            } else {
                let id = player.id;
                self.player = None;
                self.report(MediaEvent::PlayDone(id)).await;
            }
        }
        if let Some(m) = self.message.as_ref() {
            let full = m.recorder.full_at(now);
            let quiet = now.saturating_duration_since(m.last_voice) >= m.silence;
            if full || quiet {
                if quiet && !full {
                    m.recorder.trim_after_voice(TAIL);
                }
                self.message = None;
                self.report(MediaEvent::RecordStopped { silence: !full })
                    .await;
            }
        }
        if let Some(last) = self.last_rtp
            && now.saturating_duration_since(last) >= self.inactivity
        {
            self.report(MediaEvent::Inactive).await;
            return false;
        }
        true
    }

    fn send(&mut self, frame: &[i16; FRAME], marker: bool) {
        let side = self.caller.side;
        let encode: fn(i16) -> u8 = match side.codec {
            Codec::Pcmu => g711::linear_to_ulaw,
            Codec::Pcma => g711::linear_to_alaw,
        };
        let payload: Vec<u8> = frame.iter().map(|s| encode(*s)).collect();
        rtp::build(
            &mut self.packet,
            marker,
            side.codec.payload_type(),
            self.sequence,
            self.timestamp,
            self.ssrc,
            &payload,
        );
        self.sequence = self.sequence.wrapping_add(1);
        if let Some(to) = self.caller.rtp_peer {
            let _ = self.caller.rtp.try_send_to(&self.packet, to);
        }
    }
}

/// The ringback tone, made once.
pub(super) fn ringback() -> Samples {
    static TONE: std::sync::OnceLock<Samples> = std::sync::OnceLock::new();
    TONE.get_or_init(|| tone::ringback().into()).clone()
}

/// The voicemail beep, made once.
pub(super) fn beep() -> Samples {
    static TONE: std::sync::OnceLock<Samples> = std::sync::OnceLock::new();
    TONE.get_or_init(|| tone::beep().into()).clone()
}
