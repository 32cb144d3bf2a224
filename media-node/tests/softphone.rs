//! A real softphone on the media node: baresip (headless, auto answer) registers as anna
//! with digest authentication, a second baresip with a wrong password is refused, SIPp as the
//! carrier calls a number that rings anna, baresip answers, audio flows through the node both
//! ways, the carrier's BYE ends it, and the node's events show the answered call.
//!
//! How the test knows media flowed: baresip sends a 1 kHz sine; the node relays it to the
//! carrier; SIPp runs with `-rtp_echo` and sends every RTP packet it receives back; the node
//! records the call (caller left, agent right). A 1 kHz tone on the *caller's* channel can
//! only be baresip's audio that reached SIPp and came back.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::f64::consts::PI;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialtone_media_node::media::{tone, wav};
use dialtone_media_node::registrar::digest::Algorithm;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use node_support::*;

const LIMIT: Duration = Duration::from_secs(30);

/// Makes sure baresip is installed (Debian's `baresip-core` when running as root).
fn ensure_baresip() {
    if Command::new("baresip").arg("-h").output().is_ok() {
        return;
    }
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq baresip-core",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "baresip is missing and could not be installed: apt-get install baresip-core (as root)"
    );
}

/// A port free for baresip's SIP sockets: it binds UDP and TCP on it and TLS on the next.
fn free_sip_port(ip: IpAddr) -> u16 {
    loop {
        let udp = UdpSocket::bind((ip, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if port < u16::MAX
            && TcpListener::bind((ip, port)).is_ok()
            && TcpListener::bind((ip, port + 1)).is_ok()
        {
            return port;
        }
    }
}

/// A baresip process with its own configuration folder; killed when dropped.
struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
}

impl Baresip {
    /// Starts baresip on `ip` with one account registering at `registrar`.
    fn start(user: &str, password: &str, registrar: SocketAddr, ip: &str) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let port = free_sip_port(ip.parse().unwrap());
        let rtp = free_sip_port(ip.parse().unwrap()) & !1;
        // ausine only produces 48 kHz stereo; baresip resamples to the codec's 8 kHz mono.
        let config = format!(
            "poll_method epoll\n\
             sip_listen {ip}:{port}\n\
             net_interface {ip}\n\
             dns_server 127.0.0.1:53\n\
             rtp_ports {rtp}-{}\n\
             audio_source ausine,1000\n\
             audio_player aubridge,nowhere\n\
             audio_alert aubridge,nowhere\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module ausine.so\n\
             module aubridge.so\n\
             module_app account.so\n",
            rtp + 9
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:{user}@{registrar}>;auth_user={user};auth_pass={password};answermode=auto;regint=600;audio_codecs=PCMU,PCMA\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("contacts"), "").unwrap();
        let log = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip starts");
        Baresip { child, dir }
    }

    /// Everything baresip printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }

    /// Waits until baresip's output contains `text`.
    async fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("baresip exited ({status}):\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "baresip never printed {text:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// The value of one counter line of the node's metrics (0 when absent).
fn metric(h: &Harness, line_start: &str) -> u64 {
    h.health
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn contacts(h: &mut Harness, agent: &str) -> Vec<pb::Contact> {
    h.router
        .lookup_contacts(pb::LookupContactsRequest {
            agent: agent.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_with_digest_and_answers_a_carrier_call() {
    ensure_sipp();
    ensure_baresip();
    let dirs = media_dirs();
    let prompts = dirs.prompts.path().to_owned();
    let recordings = dirs.recordings.path().to_owned();
    let mut h = start_with(36000, move |cfg| {
        cfg.prompts_dir = Some(prompts);
        cfg.recordings_dir = Some(recordings);
        // baresip 1.0 (libre 1.x, Debian 12) gives up on a 401 as soon as one of its
        // challenges names an algorithm other than MD5, so it cannot register against the
        // default SHA-256 + MD5 offer; the registrar offers what the phone understands.
        cfg.registrar.algorithms = vec![Algorithm::Md5];
    })
    .await;

    // anna's softphone registers (401 challenge, then 200) and the router learns its contact.
    let mut anna = Baresip::start("anna", "demo-anna-pass", h.sip, "127.0.0.1");
    let deadline = Instant::now() + LIMIT;
    let contact = loop {
        if let Some(c) = contacts(&mut h, "anna").await.into_iter().next() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "anna's registration never reached the router:\n{}",
            anna.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(contact.uri.contains("@127.0.0.1:"), "{contact:?}");
    anna.wait_for("200 OK", LIMIT).await;
    assert!(metric(&h, "dialtone_sip_responses_total{code=\"401\"}") >= 1);
    assert!(metric(&h, "dialtone_sip_responses_total{code=\"200\"}") >= 1);

    // bohdan's softphone has the wrong password. libre answers every 401 that brings a
    // fresh nonce with another try, so the node sees the challenge, then wrong answers
    // (401 each), until the per-source failure limit (5) turns the answer into 403.
    let before_401 = metric(&h, "dialtone_sip_responses_total{code=\"401\"}");
    let before_403 = metric(&h, "dialtone_sip_responses_total{code=\"403\"}");
    let mut wrong = Baresip::start("bohdan", "not-bohdans-password", h.sip, "127.0.0.2");
    wrong.wait_for("403 Forbidden", LIMIT).await;
    let refused = metric(&h, "dialtone_sip_responses_total{code=\"401\"}") - before_401;
    assert_eq!(
        refused,
        5,
        "the challenge and four wrong answers got 401:\n{}",
        wrong.output()
    );
    assert_eq!(
        metric(&h, "dialtone_sip_responses_total{code=\"403\"}") - before_403,
        1,
        "the fifth wrong answer is rate-limited"
    );
    assert!(
        contacts(&mut h, "bohdan").await.is_empty(),
        "a wrong password registers nothing"
    );
    drop(wrong);

    // The carrier calls the number that rings anna; baresip answers; the carrier hangs up.
    let carrier = sipp(
        "carrier",
        "carrier_call_3s.xml",
        "127.0.0.1",
        &[
            "-rtp_echo".into(),
            "-s".into(),
            RECORDED.into(),
            h.sip.to_string(),
        ],
    );
    assert_ok(
        &carrier.wait(LIMIT).await,
        "carrier (INVITE → 200 → ACK → BYE)",
    );
    anna.wait_for("Call established", Duration::from_secs(5))
        .await;
    // baresip reports the far end's BYE as "terminated" once the session closes.
    anna.wait_for("terminated", Duration::from_secs(10)).await;

    let events = call_events(&mut h.events, LIMIT).await;
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(
            &events,
            &[
                "call_started",
                "leg_created",
                "leg_answered",
                "bridged",
                "recording_saved",
                "call_ended"
            ]
        ),
        "{kinds:?}"
    );
    let answered = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::LegAnswered(a)) => Some(a.leg_id.clone()),
            _ => None,
        })
        .unwrap();
    let leg = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::LegCreated(l)) if l.leg_id == answered => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(leg.agent, "anna", "the answered leg is anna's softphone");
    let Some(Kind::CallEnded(end)) = &events.last().unwrap().kind else {
        panic!("last event is call_ended: {kinds:?}");
    };
    assert_eq!(end.disposition, pb::CallDisposition::Answered as i32);
    assert_eq!(end.hangup_party, pb::HangupParty::Client as i32);

    // Media: baresip's 1 kHz on the agent's channel, and on the caller's channel as the
    // echo SIPp sent back of what it received.
    let saved = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::Recording(r)) => Some(r.path.clone()),
            _ => None,
        })
        .unwrap();
    let path = dirs.recordings.path().join(&saved);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} written", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (channels, samples) = wav::read_channels(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(channels, 2);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let loud = |ch: &[i16]| ch.chunks(160).filter(|f| tone::is_voice(f)).count();
    assert!(
        loud(&right) >= 50,
        "baresip's audio reached the node for ≥ 1 s: {} loud frames of {}",
        loud(&right),
        right.len() / 160
    );
    assert!(
        power(&right, 1000.0) > 100.0 * power(&right, 440.0),
        "the agent's channel carries baresip's 1 kHz"
    );
    assert!(
        loud(&left) >= 50,
        "the RTP the node sent reached SIPp and came back for ≥ 1 s: {} loud frames",
        loud(&left)
    );
    assert!(
        power(&left, 1000.0) > 100.0 * power(&left, 440.0),
        "the caller's channel carries the echo of baresip's 1 kHz"
    );
    let metrics = h.health.render();
    assert!(metrics.contains("dialtone_active_calls 0"), "{metrics}");
}
