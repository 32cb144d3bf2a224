//! Recordings written while a call runs: voicemail messages and bridged calls.
//!
//! # Format
//!
//! 8 kHz PCM16 WAV. Voicemail is mono (only the caller speaks). **Call recordings are
//! 2-channel: the caller on the left channel, the agent on the right**, rather than mixed
//! mono: each party can be listened to alone (what a supervisor checking a script wants),
//! crosstalk stays intelligible, nothing is lost to clipping when both speak, and a mono mix
//! is one `sox rec.wav -c 1 mix.wav` away. The README states this.
//!
//! # Placing audio on the timeline
//!
//! RTP arrives from each side with its own clock and its own silences (a phone with
//! voice-activity detection sends nothing while its user listens). Each packet is placed by
//! its arrival time: it continues where that side's audio ended, unless it starts more than
//! [`GAP`] later (the side paused, or its clock drifted: the gap stays silent). A side that
//! sends faster than real time is cut off [`AHEAD`] in front of the wall clock, so a hostile
//! peer cannot grow the buffer.
//!
//! # Never blocking a media task
//!
//! The media tasks push samples into a [`Recorder`] (memory only); whole seconds that are
//! [`LAG`] behind the wall clock (late packets still land in place) go to a writer task that
//! appends them to `<name>.wav.part` with `tokio::fs` and, when the recorder is dropped,
//! writes the final header and renames the file to `<name>.wav` — a reader never sees a
//! half-written recording under the name the events give.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::media::wav;

/// Frames (samples per channel) per second.
const RATE: u64 = 8000;
/// A side whose next packet starts more than this (100 ms) after its audio ended has paused.
const GAP: u64 = 800;
/// Audio more than this (1 s) ahead of the wall clock is dropped.
const AHEAD: u64 = 8000;
/// Audio is written once it is this far (1 s) behind the wall clock.
const LAG: u64 = 8000;

/// What the media task and the actor both see of a recording.
#[derive(Debug)]
struct Shared {
    /// Frames on the timeline so far.
    frames: AtomicU64,
    /// Frames kept when the recording ends (`u64::MAX`: all).
    keep: AtomicU64,
    /// End of the last frame that held voice (0: none).
    voice_end: AtomicU64,
    /// Delete the file instead of finishing it.
    discard: AtomicBool,
}

/// The actor's view of a recording: its path and length, read without waiting on the media
/// task (atomics only).
#[derive(Debug, Clone)]
pub(super) struct RecordingHandle {
    /// The WAV's path relative to the recordings folder, as events carry it.
    pub(super) path: String,
    shared: Arc<Shared>,
}

impl RecordingHandle {
    /// Length of the recording as it will be written.
    pub(super) fn duration(&self) -> Duration {
        let frames = self
            .shared
            .frames
            .load(Relaxed)
            .min(self.shared.keep.load(Relaxed));
        Duration::from_micros(frames.saturating_mul(1_000_000) / RATE)
    }

    /// Whether any frame held voice (see [`crate::media::tone::is_voice`]).
    pub(super) fn voiced(&self) -> bool {
        self.shared.voice_end.load(Relaxed) > 0
    }

    /// Deletes the file when the recording ends: nothing worth keeping was said.
    pub(super) fn discard(&self) {
        self.shared.discard.store(true, Relaxed);
    }
}

/// Collects one recording's samples (1 or 2 channels) and hands whole seconds to its writer.
/// Dropping it finishes the file.
pub(super) struct Recorder {
    channels: usize,
    start: Instant,
    /// First frame still in `buf`.
    base: u64,
    /// Interleaved frames from `base`.
    buf: Vec<i16>,
    /// Where each channel's audio ends.
    pos: [u64; 2],
    /// Frames recorded at most.
    limit: u64,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Starts a recording at `root/relative` with `channels` (1 or 2) channels, at most `limit`
/// long. The writer task creates the folders it needs.
pub(super) fn start(
    root: &Path,
    relative: String,
    channels: u16,
    limit: Option<Duration>,
) -> (Recorder, RecordingHandle) {
    let channels = channels.clamp(1, 2);
    let shared = Arc::new(Shared {
        frames: AtomicU64::new(0),
        keep: AtomicU64::new(u64::MAX),
        voice_end: AtomicU64::new(0),
        discard: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(root.join(&relative), channels, rx, shared.clone()));
    let limit = limit.map_or(u64::MAX, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(RATE)
            / 1000
    });
    let recorder = Recorder {
        channels: usize::from(channels),
        start: Instant::now(),
        base: 0,
        buf: Vec::new(),
        pos: [0; 2],
        limit,
        shared: shared.clone(),
        tx,
    };
    (
        recorder,
        RecordingHandle {
            path: relative,
            shared,
        },
    )
}

impl Recorder {
    /// The frame the wall clock is at.
    fn frame_at(&self, now: Instant) -> u64 {
        let us = u64::try_from(now.saturating_duration_since(self.start).as_micros())
            .unwrap_or(u64::MAX);
        us.saturating_mul(RATE) / 1_000_000
    }

    /// Adds one packet's samples for `channel`, received at `now`.
    pub(super) fn push_at(&mut self, channel: usize, samples: &[i16], now: Instant) {
        if channel >= self.channels || samples.is_empty() {
            return;
        }
        let t = self.frame_at(now);
        let n = samples.len() as u64;
        let arrival = t.saturating_sub(n);
        let base = self.base;
        let pos = &mut self.pos[channel];
        if arrival > pos.saturating_add(GAP) {
            *pos = arrival;
        }
        *pos = (*pos).max(base);
        if *pos > t.saturating_add(AHEAD) {
            return;
        }
        let end = pos.saturating_add(n).min(self.limit);
        if end <= *pos {
            return;
        }
        let from = usize::try_from(*pos - base).unwrap_or(usize::MAX);
        let need = usize::try_from(end - base).unwrap_or(usize::MAX) * self.channels;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        for (i, s) in samples.iter().take(need / self.channels - from).enumerate() {
            if let Some(slot) = self.buf.get_mut((from + i) * self.channels + channel) {
                *slot = *s;
            }
        }
        *pos = end;
        self.shared.frames.fetch_max(end, Relaxed);
        self.flush(t.saturating_sub(LAG).min(self.limit), false);
    }

    /// Notes that `channel`'s latest packet held voice.
    pub(super) fn mark_voice(&self, channel: usize) {
        if let Some(end) = self.pos.get(channel) {
            self.shared.voice_end.fetch_max(*end, Relaxed);
        }
    }

    /// Whether the wall clock has reached the recording's limit.
    pub(super) fn full_at(&self, now: Instant) -> bool {
        self.frame_at(now) >= self.limit
    }

    /// Keeps the recording up to `tail` after the last voice (a message ended by silence
    /// does not keep all of that silence).
    pub(super) fn trim_after_voice(&self, tail: Duration) {
        let tail = u64::try_from(tail.as_millis()).unwrap_or(0) * RATE / 1000;
        let voice = self.shared.voice_end.load(Relaxed);
        self.shared.keep.store(voice.saturating_add(tail), Relaxed);
    }

    /// Sends frames `base..upto` to the writer (only whole seconds unless `all`).
    fn flush(&mut self, upto: u64, all: bool) {
        if upto <= self.base || (!all && upto - self.base < RATE) {
            return;
        }
        let need = usize::try_from(upto - self.base).unwrap_or(usize::MAX) * self.channels;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let bytes: Vec<u8> = self.buf.drain(..need).flat_map(i16::to_le_bytes).collect();
        self.base = upto;
        self.shared.frames.fetch_max(upto, Relaxed);
        // The writer only goes away on an I/O error it has already logged.
        let _ = self.tx.send(bytes);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let end = self.pos[..self.channels]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .min(self.limit);
        self.flush(end.max(self.base), true);
    }
}

/// Writes the chunks it receives, then finishes (or deletes) the file when the recorder is
/// dropped.
async fn writer(
    path: PathBuf,
    channels: u16,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut part = path.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    if let Err(e) = write_file(&path, &part, channels, &mut rx, &shared).await {
        tracing::error!(path = %path.display(), error = %e, "recording not written");
        while rx.recv().await.is_some() {}
        let _ = tokio::fs::remove_file(&part).await;
    }
}

async fn write_file(
    path: &Path,
    part: &Path,
    channels: u16,
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    shared: &Shared,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = tokio::fs::File::create(part).await?;
    file.write_all(&wav::header(channels, 0)).await?;
    let mut written = 0u64;
    while let Some(chunk) = rx.recv().await {
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    if shared.discard.load(Relaxed) {
        drop(file);
        return tokio::fs::remove_file(part).await;
    }
    let block = 2 * u64::from(channels);
    let data = (written / block).min(shared.keep.load(Relaxed)) * block;
    file.set_len(44 + data).await?;
    file.seek(SeekFrom::Start(0)).await?;
    let len = u32::try_from(data).unwrap_or(u32::MAX);
    file.write_all(&wav::header(channels, len)).await?;
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(part, path).await
}

/// Where a recording of `kind` ("calls", "voicemail") for this call goes, relative to the
/// recordings folder: `<kind>/<UTC date>/<call id>.wav`, so that a folder never holds more
/// than a day of calls.
pub(super) fn relative_path(kind: &str, call_id: &str) -> String {
    let day = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let safe: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}/{day}/{safe}.wav")
}
