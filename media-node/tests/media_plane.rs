//! The media plane with SIPp as the carrier: the welcome prompt, the demo's main menu driven
//! by SIPp's RFC 4733 captures (`play_pcap_audio` of `dtmf_2833_*.pcap`), extension dialing,
//! hang-ups during the welcome and the menu, and a voicemail whose recording is compared with
//! the audio SIPp sent (`g711a.pcap`). The node plays the test prompts (tones of known
//! length, see `node_support::test_prompts`): welcome 1.5 s, main menu 1.5 s.
//!
//! SIPp plays captures through a raw socket: these tests need root (or CAP_NET_RAW), as the
//! harness's installation of `sip-tester` does.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::time::Duration;

use dialtone_media_node::media::{g711, wav};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use node_support::*;

const LIMIT: Duration = Duration::from_secs(40);

fn carrier_args(h: &Harness, number: &str) -> Vec<String> {
    vec![
        "-s".into(),
        number.into(),
        format!("{}:{}", h.sip.ip(), h.sip.port()),
    ]
}

fn kinds(events: &[pb::CallEvent]) -> Vec<&'static str> {
    events.iter().map(kind).collect()
}

fn menu_left(events: &[pb::CallEvent]) -> Option<(pb::MenuLeft, f64)> {
    events.iter().find_map(|e| match &e.kind {
        Some(Kind::MenuLeft(m)) => Some((m.clone(), seconds(e))),
        _ => None,
    })
}

fn hung_up_in(events: &[pb::CallEvent]) -> Option<pb::CallPhase> {
    events.iter().find_map(|e| match &e.kind {
        Some(Kind::CallerHungUp(h)) => Some(h.phase()),
        _ => None,
    })
}

fn ended(events: &[pb::CallEvent]) -> pb::CallEnded {
    match events.last().and_then(|e| e.kind.clone()) {
        Some(Kind::CallEnded(end)) => end,
        other => panic!("the last event is call_ended, not {other:?}"),
    }
}

/// An event's time in seconds.
fn seconds(e: &pb::CallEvent) -> f64 {
    let at = e.at.unwrap();
    at.seconds as f64 + f64::from(at.nanos) / 1e9
}

fn time_of(events: &[pb::CallEvent], name: &str) -> f64 {
    seconds(events.iter().find(|e| kind(e) == name).unwrap())
}

/// One SIPp carrier call into a fresh node; its events.
async fn carrier_call(
    rtp_base: u16,
    scenario: &str,
    number: &str,
) -> (Vec<pb::CallEvent>, MediaDirs) {
    ensure_sipp();
    let dirs = media_dirs();
    let mut h = start_media(rtp_base, &dirs).await;
    let carrier = sipp("carrier", scenario, "127.0.0.1", &carrier_args(&h, number));
    assert_ok(&carrier.wait(LIMIT).await, scenario);
    (call_events(&mut h.events, LIMIT).await, dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressing_2_in_the_main_menu_joins_the_support_queue() {
    let (events, _dirs) = carrier_call(34000, "carrier_press2.xml", MENU).await;
    let k = kinds(&events);
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "route_selected",
                "welcome_started",
                "welcome_finished",
                "step_entered",
                "menu_entered",
                "menu_digit",
                "menu_left",
                "step_entered",
                "queue_joined",
                "caller_hung_up",
                "queue_left",
                "call_ended"
            ]
        ),
        "{k:?}"
    );
    let digits: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::MenuDigit(d)) => Some(d.digit.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(digits, ["2"], "one key, however many packets carried it");
    let (left, at) = menu_left(&events).unwrap();
    assert_eq!(left.exit(), pb::MenuExit::Option);
    assert_eq!(
        (left.digits.as_str(), left.target.as_str()),
        ("2", "queue support")
    );
    let waited = at - time_of(&events, "menu_digit");
    assert!(
        (1.8..4.0).contains(&waited),
        "2 also starts extensions 201/202: the option waits the inter-digit 2 s ({waited:.2} s)"
    );
    let welcome = time_of(&events, "welcome_finished") - time_of(&events, "welcome_started");
    assert!(
        (1.3..2.5).contains(&welcome),
        "the welcome prompt played in full ({welcome:.2} s)"
    );
    assert_eq!(hung_up_in(&events), Some(pb::CallPhase::Queue));
    let end = ended(&events);
    assert_eq!(end.disposition(), pb::CallDisposition::Abandoned);
    assert_eq!(end.hangup_party(), pb::HangupParty::Client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressing_nothing_takes_the_menus_default_after_the_prompt_and_the_timeout() {
    let (events, _dirs) = carrier_call(34200, "carrier_silent.xml", MENU).await;
    let k = kinds(&events);
    assert!(!k.contains(&"menu_digit"), "{k:?}");
    let (left, at) = menu_left(&events).unwrap();
    assert_eq!(left.exit(), pb::MenuExit::Default);
    assert_eq!(
        (left.digits.as_str(), left.target.as_str()),
        ("", "scheme sales")
    );
    let waited = at - time_of(&events, "menu_entered");
    assert!(
        (6.2..8.5).contains(&waited),
        "1.5 s of prompt, then the 5 s digit timeout from its end ({waited:.2} s)"
    );
    let sales = events.iter().any(|e| {
        matches!(&e.kind, Some(Kind::StepEntered(s)) if s.scheme == "sales") && seconds(e) >= at
    });
    assert!(sales, "the default runs the sales scheme: {k:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_103_in_the_menu_reaches_olena() {
    ensure_sipp();
    let dirs = media_dirs();
    let mut h = start_media(34400, &dirs).await;
    let mut olena = sipp("olena", "agent_answer.xml", "127.0.0.1", &[]);
    olena.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "olena", olena.port).await;
    let carrier = sipp(
        "carrier",
        "carrier_dial103.xml",
        "127.0.0.1",
        &carrier_args(&h, MENU),
    );
    let (c, o) = tokio::join!(carrier.wait(LIMIT), olena.wait(LIMIT));
    assert_ok(&c, "carrier (keys 1, 0, 3)");
    assert_ok(&o, "olena (answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let k = kinds(&events);
    assert!(
        in_order(
            &events,
            &[
                "menu_entered",
                "menu_digit",
                "menu_digit",
                "menu_digit",
                "menu_left",
                "leg_created",
                "leg_answered",
                "bridged",
                "call_ended"
            ]
        ),
        "{k:?}"
    );
    let (left, _) = menu_left(&events).unwrap();
    assert_eq!(left.exit(), pb::MenuExit::Extension);
    assert_eq!(
        (left.digits.as_str(), left.target.as_str()),
        ("103", "agent olena")
    );
    let bridged = events.iter().find_map(|e| match &e.kind {
        Some(Kind::Bridged(b)) => Some(b.agent.clone()),
        _ => None,
    });
    assert_eq!(bridged.as_deref(), Some("olena"));
    assert_eq!(ended(&events).disposition(), pb::CallDisposition::Answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_during_the_welcome_is_reported_in_the_welcome_phase() {
    let (events, _dirs) = carrier_call(34600, "carrier_early_bye.xml", MENU).await;
    let k = kinds(&events);
    assert!(
        in_order(
            &events,
            &["welcome_started", "caller_hung_up", "call_ended"]
        ),
        "{k:?}"
    );
    assert!(
        !k.contains(&"welcome_finished") && !k.contains(&"menu_entered"),
        "{k:?}"
    );
    assert_eq!(hung_up_in(&events), Some(pb::CallPhase::Welcome));
    let end = ended(&events);
    assert_eq!(end.disposition(), pb::CallDisposition::Abandoned);
    assert_eq!(end.hangup_party(), pb::HangupParty::Client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_in_the_menu_is_reported_in_the_menu_phase() {
    let (events, _dirs) = carrier_call(34800, "carrier_menu_bye.xml", MENU).await;
    let k = kinds(&events);
    assert!(
        in_order(
            &events,
            &[
                "welcome_finished",
                "menu_entered",
                "caller_hung_up",
                "call_ended"
            ]
        ),
        "{k:?}"
    );
    assert!(!k.contains(&"menu_left"), "no choice was made: {k:?}");
    assert_eq!(hung_up_in(&events), Some(pb::CallPhase::Menu));
    assert_eq!(ended(&events).disposition(), pb::CallDisposition::Abandoned);
}

/// The A-law payloads of a pcap of RTP over Ethernet/IPv4/UDP, decoded.
fn pcap_audio(path: &str) -> Vec<i16> {
    let d = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        let packet = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ihl = usize::from(packet[14] & 0x0F) * 4;
        let rtp = &packet[14 + ihl + 8..];
        out.extend(rtp[12..].iter().map(|b| g711::alaw_to_linear(*b)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_records_what_the_caller_said() {
    let (events, dirs) = carrier_call(35000, "carrier_voicemail.xml", VOICEMAIL).await;
    let k = kinds(&events);
    assert!(
        in_order(&events, &["step_entered", "voicemail_left", "call_ended"]),
        "{k:?}"
    );
    let left = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::VoicemailLeft(v)) => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(left.greeting, "sales-voicemail-greeting");
    assert!(
        left.path.starts_with("voicemail/") && left.path.ends_with(".wav"),
        "{}",
        left.path
    );
    let end = ended(&events);
    assert_eq!(end.disposition(), pb::CallDisposition::Voicemail);
    assert_eq!(
        end.hangup_party(),
        pb::HangupParty::System,
        "2 s of silence end it"
    );

    let path = dirs.recordings.path().join(&left.path);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = wav::read(&std::fs::read(&path).unwrap()).unwrap().samples;
    let sent = pcap_audio("/usr/share/sip-tester/g711a.pcap");
    let length =
        left.duration.unwrap().seconds as f64 + f64::from(left.duration.unwrap().nanos) / 1e9;
    assert!(
        (recorded.len() as f64 / 8000.0 - length).abs() < 0.1,
        "the event's duration is the file's"
    );
    assert!(
        (6.5..9.5).contains(&length),
        "7 s of speech recorded ({length:.2} s)"
    );
    // Where the speech starts in the recording: find a loud stretch of what was sent.
    let probe = &sent[60 * 240..61 * 240];
    let at = recorded
        .windows(probe.len())
        .position(|w| w == probe)
        .expect("the sent audio is in the recording, sample for sample");
    let lag = at as i64 - 60 * 240;
    // Normalised cross-correlation over the whole message at that lag.
    let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
    for (i, x) in sent.iter().enumerate() {
        let y = usize::try_from(i as i64 + lag)
            .ok()
            .and_then(|j| recorded.get(j))
            .copied()
            .unwrap_or(0);
        xy += f64::from(*x) * f64::from(y);
        xx += f64::from(*x).powi(2);
        yy += f64::from(y).powi(2);
    }
    let ncc = xy / (xx.sqrt() * yy.sqrt());
    assert!(ncc > 0.95, "recording ≈ what was sent (NCC {ncc:.3})");
}
