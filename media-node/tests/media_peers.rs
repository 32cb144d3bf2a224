//! The media plane with small SIP/RTP peers on real UDP sockets (`node_support::peer`),
//! where the test must see the RTP itself: audio both ways between caller and agent with the
//! payloads sent, a bridged call's 2-channel recording, the prompts a caller hears (byte for
//! byte, in the caller's codec), DTMF in SIP INFO, hold music with the position announcement
//! and the queue's callback digit.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::f64::consts::PI;
use std::time::Duration;

use dialtone_media_node::media::{g711, tone, wav};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use node_support::peer::{Agent, Call};
use node_support::*;

const LIMIT: Duration = Duration::from_secs(30);

/// PCMU payloads of 20 ms each.
fn pcmu(samples: &[i16]) -> Vec<Vec<u8>> {
    samples
        .chunks(160)
        .map(|c| c.iter().map(|s| g711::linear_to_ulaw(*s)).collect())
        .collect()
}

/// The power of `freq` in `samples` (Goertzel).
fn power(samples: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s0 = f64::from(*x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// The audio bytes received (PCMU payloads), concatenated.
fn heard(call: &Call) -> Vec<u8> {
    call.peer
        .taken()
        .into_iter()
        .filter(|(pt, _)| *pt == 0)
        .flat_map(|(_, p)| p)
        .collect()
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A test prompt as the caller hears it (PCMU).
fn prompt_bytes(name: &str) -> Vec<u8> {
    let (_, samples) = test_prompts().into_iter().find(|(n, _)| n == name).unwrap();
    samples.iter().map(|s| g711::linear_to_ulaw(*s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_audio_flows_both_ways_and_both_parties_are_recorded() {
    let dirs = media_dirs();
    let mut h = start_media(35200, &dirs).await;
    let anna = Agent::bind().await;
    register(&mut h.router, "anna", anna.peer.sip_addr().port()).await;
    let dial = tokio::spawn(Call::dial(h.sip, RECORDED));
    let answered = anna.answer(LIMIT).await;
    let mut caller = dial.await.unwrap();
    let from_caller = pcmu(&tone::sine(440.0, 1500, 8000));
    let from_agent = pcmu(&tone::sine(1000.0, 1500, 8000));
    let a = caller.peer.stream(caller.media, from_caller.clone());
    let b = anna.peer.stream(answered.media, from_agent.clone());
    let _ = tokio::join!(a, b);
    // Wait (with a deadline) until both sides have as many packets as were sent: the relay may
    // still hold the last ones on a loaded machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while (anna.peer.taken().len() < from_caller.len()
        || caller.peer.taken().len() < from_agent.len())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agent_got: Vec<Vec<u8>> = anna.peer.taken().into_iter().map(|(_, p)| p).collect();
    let caller_got: Vec<Vec<u8>> = caller.peer.taken().into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        agent_got.len(),
        from_caller.len(),
        "every caller packet reached the agent"
    );
    assert!(
        agent_got == from_caller,
        "with the caller's payload, in order"
    );
    assert_eq!(
        caller_got.len(),
        from_agent.len(),
        "every agent packet reached the caller"
    );
    assert!(
        caller_got == from_agent,
        "with the agent's payload, in order"
    );
    assert_eq!(caller.ask("BYE", "", "").await.status(), Some(200));
    anna.await_bye(Duration::from_secs(5)).await;

    let events = call_events(&mut h.events, LIMIT).await;
    let k: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(&events, &["bridged", "recording_saved", "call_ended"]),
        "{k:?}"
    );
    let saved = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::Recording(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(saved.mode(), pb::RecordingMode::Full);
    assert!(saved.path.starts_with("calls/"), "{}", saved.path);
    let path = dirs.recordings.path().join(&saved.path);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (channels, samples) = wav::read_channels(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(channels, 2, "caller left, agent right");
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(left.len() >= 11000, "about 1.5 s: {}", left.len());
    assert!(
        power(&left, 440.0) > 100.0 * power(&left, 1000.0),
        "the caller's 440 Hz on the left"
    );
    assert!(
        power(&right, 1000.0) > 100.0 * power(&right, 440.0),
        "the agent's 1 kHz on the right"
    );
    let loud = |ch: &[i16]| ch.chunks(160).filter(|f| tone::is_voice(f)).count();
    assert!(
        loud(&left) >= 65 && loud(&right) >= 65,
        "both speak for ~1.5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hears_the_prompts_and_a_key_in_sip_info_chooses() {
    let dirs = media_dirs();
    let mut h = start_media(35400, &dirs).await;
    let mut caller = Call::dial(h.sip, MENU).await;
    // Into the menu prompt (the welcome lasts 1.5 s).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let ok = caller
        .ask(
            "INFO",
            "application/dtmf-relay",
            "Signal=2\r\nDuration=160\r\n",
        )
        .await;
    assert_eq!(ok.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(caller.ask("BYE", "", "").await.status(), Some(200));
    let events = call_events(&mut h.events, LIMIT).await;
    let k: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "welcome_finished",
                "menu_entered",
                "menu_digit",
                "menu_left",
                "queue_joined",
                "call_ended"
            ]
        ),
        "{k:?}"
    );
    let left = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::MenuLeft(m)) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (left.digits.as_str(), left.target.as_str()),
        ("2", "queue support")
    );

    let audio = heard(&caller);
    let welcome = prompt_bytes("welcome");
    assert!(
        audio.starts_with(&welcome),
        "the first thing heard is the whole welcome prompt ({} bytes heard)",
        audio.len()
    );
    let menu = prompt_bytes("main-menu");
    let at = find(&audio, &menu[..1600]).expect("then the menu prompt");
    assert!(at >= welcome.len());
    let hold = prompt_bytes("hold-music");
    assert!(
        find(&audio, &hold[..1600]).is_some(),
        "then the support queue's hold music"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_caller_hears_hold_music_and_the_callback_digit_keeps_the_place() {
    let dirs = media_dirs();
    let mut h = start_media(35600, &dirs).await;
    let caller = Call::dial(h.sip, QUEUE).await;
    // The play step (1.5 s), then the position, then hold music.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    caller.peer.key(caller.media, '*', 48000).await;
    caller.await_bye(Duration::from_secs(10)).await;
    let events = call_events(&mut h.events, LIMIT).await;
    let k: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "step_entered",
                "step_entered",
                "queue_joined",
                "callback_ordered",
                "queue_left",
                "call_ended"
            ]
        ),
        "{k:?}"
    );
    let order = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::CallbackOrdered(o)) => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(order.origin(), pb::CallbackOrigin::Queue);
    assert_eq!(
        (
            order.to.as_str(),
            order.queue.as_str(),
            order.caller_id.as_str()
        ),
        ("+380501234567", "test-callback", QUEUE)
    );
    assert!(!order.callback_id.is_empty());
    let reason = events.iter().find_map(|e| match &e.kind {
        Some(Kind::QueueLeft(q)) => Some(q.reason()),
        _ => None,
    });
    assert_eq!(reason, Some(pb::QueueLeaveReason::Callback));
    let end = match &events.last().unwrap().kind {
        Some(Kind::CallEnded(e)) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(end.disposition(), pb::CallDisposition::CallbackChosen);
    assert_eq!(end.hangup_party(), pb::HangupParty::System);

    let audio = heard(&caller);
    let position = prompt_bytes("queue-position-1");
    let at = find(&audio, &position).expect("the position is announced");
    let hold = prompt_bytes("hold-music");
    let music = find(&audio[at..], &hold[..1600]).expect("then the hold music");
    assert!(music >= position.len(), "after the announcement");
    let bye = prompt_bytes("callback-confirmed");
    assert!(
        find(&audio, &bye).is_some(),
        "the confirmation before the hang-up"
    );
    let board = h
        .router
        .get_live_board(pb::GetLiveBoardRequest {
            omit_contacts: true,
        })
        .await
        .unwrap()
        .into_inner();
    let queue = board
        .queues
        .iter()
        .find(|q| q.queue == "test-callback")
        .unwrap();
    assert!(
        queue.callers.iter().any(|c| c.callback),
        "the router keeps the caller's place: {queue:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_dialled_in_sip_info_rings_with_a_ringback_tone() {
    let dirs = media_dirs();
    let mut h = start_media(35800, &dirs).await;
    let olena = Agent::bind().await;
    register(&mut h.router, "olena", olena.peer.sip_addr().port()).await;
    let mut caller = Call::dial(h.sip, MENU).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for key in ["1", "0", "3"] {
        let ok = caller.ask("INFO", "application/dtmf", key).await;
        assert_eq!(ok.status(), Some(200));
    }
    let answered = olena.answer_after(LIMIT, Duration::from_millis(1500)).await;
    let from_agent = pcmu(&tone::sine(1000.0, 400, 8000));
    olena
        .peer
        .stream(answered.media, from_agent.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(caller.ask("BYE", "", "").await.status(), Some(200));
    olena.await_bye(Duration::from_secs(5)).await;
    let events = call_events(&mut h.events, LIMIT).await;
    let k: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &["menu_left", "leg_created", "leg_alerting", "bridged"]
        ),
        "{k:?}"
    );
    let audio = heard(&caller);
    let ringback: Vec<u8> = tone::ringback()[..4000]
        .iter()
        .map(|s| g711::linear_to_ulaw(*s))
        .collect();
    let at = find(&audio, &ringback).expect("425 Hz ringback while olena rings");
    let agent: Vec<u8> = from_agent.concat();
    let voice = find(&audio, &agent).expect("then olena herself");
    assert!(voice > at);
}
