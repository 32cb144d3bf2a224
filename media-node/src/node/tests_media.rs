//! Unit tests of the media plane's runtime parts on real sockets: recordings on a timeline,
//! a call's media task playing paced RTP, hearing RFC 4733 keys and recording a message.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::actor::Input;
use super::prompts::Prompts;
use super::record;
use super::rtp::{PortPool, RelaySide};
use super::session::{self, Cmd, MediaEvent, Playlist, SessionHandle, Sound};
use crate::media::rtp::{self, TelephoneEvent};
use crate::media::sdp::Codec;
use crate::media::{g711, tone, wav};

/// Waits for a finished WAV (the writer renames it into place when done).
async fn wav_file(path: &Path) -> (u16, Vec<i16>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return wav::read_channels(&bytes).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn recording_places_each_side_by_arrival_and_keeps_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rec, handle) = record::start(dir.path(), "calls/a.wav".into(), 2, None);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // The caller talks for 2 s; the agent answers from 1 s on, 200 ms lost at 1.4 s.
    for k in 1..=100u64 {
        rec.push_at(0, &[1000; 160], at(20 * k));
        if k > 50 && !(71..=80).contains(&k) {
            rec.push_at(1, &[-1000; 160], at(20 * k));
        }
    }
    assert!((handle.duration().as_millis() as i64 - 2000).abs() <= 20);
    drop(rec);
    let (channels, samples) = wav_file(&dir.path().join("calls/a.wav")).await;
    assert_eq!(channels, 2);
    let frames: Vec<(i16, i16)> = samples.chunks_exact(2).map(|f| (f[0], f[1])).collect();
    assert!(
        (frames.len() as i64 - 16000).abs() <= 160,
        "{}",
        frames.len()
    );
    assert!(
        frames[..15800].iter().all(|f| f.0 == 1000),
        "caller all along"
    );
    assert!(
        frames[160..7800].iter().all(|f| f.1 == 0),
        "agent silent first"
    );
    assert!(
        frames[8200..11000].iter().all(|f| f.1 == -1000),
        "then the agent"
    );
    assert!(
        frames[11400..12600].iter().all(|f| f.1 == 0),
        "a loss longer than the jitter allowance stays a silent gap"
    );

    let (mut first, handle) = record::start(
        dir.path(),
        "calls/b.wav".into(),
        2,
        Some(Duration::from_secs(1)),
    );
    let t0 = Instant::now();
    for k in 1..=100u64 {
        first.push_at(0, &[7; 160], t0 + Duration::from_millis(20 * k));
        assert_eq!(
            first.full_at(t0 + Duration::from_millis(20 * k)),
            20 * k >= 1000
        );
    }
    assert_eq!(handle.duration(), Duration::from_secs(1));
    drop(first);
    let (_, samples) = wav_file(&dir.path().join("calls/b.wav")).await;
    assert_eq!(samples.len(), 2 * 8000, "first N seconds only");

    let (mut gone, handle) = record::start(dir.path(), "calls/c.wav".into(), 1, None);
    gone.push_at(0, &[5; 160], Instant::now());
    handle.discard();
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir.path().join("calls/c.wav").exists());
    assert!(!dir.path().join("calls/c.wav.part").exists());
}

struct Task {
    session: SessionHandle,
    events: mpsc::Receiver<Input>,
    node: SocketAddr,
    peer: UdpSocket,
}

async fn media_task(base: u16, codec: Codec) -> Task {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut pool = PortPool::new(ip, base, base + 20);
    let pair = pool.allocate().unwrap();
    let node = SocketAddr::new(ip, pair.port);
    let peer = UdpSocket::bind((ip, 0)).await.unwrap();
    let (inbox, events) = mpsc::channel(64);
    let session = session::spawn(session::Setup {
        pair,
        side: RelaySide {
            remote: Some(peer.local_addr().unwrap()),
            codec,
            telephone_event: Some(101),
        },
        call: "call-1".into(),
        inbox,
        prompts: Arc::new(Prompts::new(None)),
        inactivity: Duration::from_secs(30),
    });
    Task {
        session,
        events,
        node,
        peer,
    }
}

async fn next_event(t: &mut Task) -> MediaEvent {
    let input = tokio::time::timeout(Duration::from_secs(5), t.events.recv())
        .await
        .expect("an event in time")
        .expect("inbox open");
    match input {
        Input::Media { call, event } => {
            assert_eq!(call, "call-1");
            event
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn plays_paced_rtp_in_the_callers_codec() {
    let mut t = media_task(47300, Codec::Pcma).await;
    let clip: Vec<i16> = tone::sine(440.0, 100, 6000);
    t.session.send(Cmd::Play(Playlist {
        id: 7,
        once: vec![
            Sound::Prompt("missing".into()),
            Sound::Tone(clip.clone().into()),
        ],
        ..Default::default()
    }));
    let mut buf = [0u8; 2048];
    let mut packets = Vec::new();
    let started = Instant::now();
    for _ in 0..5 {
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), t.peer.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, t.node);
        packets.push(buf[..n].to_vec());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(70),
        "paced, not burst"
    );
    assert_eq!(next_event(&mut t).await, MediaEvent::PlayDone(7));
    let parsed: Vec<rtp::Packet<'_>> = packets.iter().map(|p| rtp::parse(p).unwrap()).collect();
    for (i, p) in parsed.iter().enumerate() {
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.marker, i == 0, "marker on the first packet only");
        assert_eq!(p.ssrc, parsed[0].ssrc);
        assert_eq!(p.sequence, parsed[0].sequence.wrapping_add(i as u16));
        assert_eq!(
            p.timestamp,
            parsed[0].timestamp.wrapping_add(160 * i as u32)
        );
        let expected: Vec<u8> = clip[i * 160..(i + 1) * 160]
            .iter()
            .map(|s| g711::linear_to_alaw(*s))
            .collect();
        assert_eq!(p.payload, &expected[..]);
    }
    // Nothing playable at all: done at once.
    t.session.send(Cmd::Play(Playlist {
        id: 8,
        once: vec![Sound::Prompt("missing".into())],
        ..Default::default()
    }));
    assert_eq!(next_event(&mut t).await, MediaEvent::PlayDone(8));
}

#[tokio::test]
async fn hears_keys_and_records_a_message_until_silence() {
    let mut t = media_task(47340, Codec::Pcmu).await;
    let mut packet = Vec::new();
    // Key 1 (three packets and the end thrice), then key 0 with the same timestamp.
    for (event, end) in [
        (1, false),
        (1, false),
        (1, true),
        (1, true),
        (0, false),
        (0, true),
    ] {
        let ev = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration: 800,
        };
        rtp::build(&mut packet, false, 101, 1, 13280, 9, &ev.to_bytes());
        t.peer.send_to(&packet, t.node).await.unwrap();
    }
    assert_eq!(next_event(&mut t).await, MediaEvent::Digit('1'));
    assert_eq!(next_event(&mut t).await, MediaEvent::Digit('0'));

    let dir = tempfile::tempdir().unwrap();
    let (recorder, handle) = record::start(
        dir.path(),
        "voicemail/m.wav".into(),
        1,
        Some(Duration::from_secs(10)),
    );
    t.session.send(Cmd::Record {
        recorder,
        silence: Duration::from_millis(400),
    });
    let voice = tone::sine(300.0, 600, 8000);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, frame) in voice.chunks(160).enumerate() {
        tick.tick().await;
        let payload: Vec<u8> = frame.iter().map(|s| g711::linear_to_ulaw(*s)).collect();
        rtp::build(
            &mut packet,
            i == 0,
            0,
            i as u16,
            160 * i as u32,
            9,
            &payload,
        );
        t.peer.send_to(&packet, t.node).await.unwrap();
    }
    assert_eq!(
        next_event(&mut t).await,
        MediaEvent::RecordStopped { silence: true }
    );
    assert!(handle.voiced());
    let length = handle.duration();
    assert!(
        length >= Duration::from_millis(550) && length <= Duration::from_millis(1200),
        "{length:?}"
    );
    drop(t.session);
    let (_, samples) = wav_file(&dir.path().join("voicemail/m.wav")).await;
    let heard = samples.iter().filter(|s| s.abs() > 1000).count();
    assert!(heard > 3000, "the tone is in the message: {heard}");
}
