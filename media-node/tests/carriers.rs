//! Outbound legs through carriers over live sockets: SIPp plays the carriers (and the caller
//! whose call rings an external number), a real router runs in-process, the node is the one
//! `dialtone` runs. Covers failover on 503 and on silence, carriers marked down by their
//! OPTIONS probes, digest answers to a carrier's 407, a registration trunk challenged by its
//! registrar, and `maxChannels`.
//!
//! Delays are measured from the SIPp peers' own message traces (`-trace_msg`, stamped with
//! microseconds by SIPp as the packets arrive or leave), not from the test's clock.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_proto::v1 as pb;
use node_support::*;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(30);
/// The number the tests' calls arrive on: its scheme rings [`MOBILE`] through its carriers.
const NUMBER: &str = "+380440000020";
/// The external number rung through the carriers.
const MOBILE: &str = "+380501112233";
/// The product's promise: the next carrier's INVITE leaves less than 2 s after the failure.
const FAILOVER_BOUND: Duration = Duration::from_secs(2);

/// One Carrier of a test.
struct CarrierDef {
    name: &'static str,
    port: u16,
    priority: u16,
    /// More lines of the spec (probe, maxChannels, register), each indented by 2.
    extra: &'static str,
    /// Username and password of its credentials Secret.
    credentials: Option<(&'static str, &'static str)>,
}

impl CarrierDef {
    fn new(name: &'static str, port: u16, priority: u16) -> Self {
        CarrierDef {
            name,
            port,
            priority,
            extra: "",
            credentials: None,
        }
    }
}

/// The demo manifests (the primary trunk's inbound sources on 127.0.0.1, so the SIPp caller
/// is a carrier; the demo carriers' host names replaced by a dead loopback port so no DNS is
/// waited for) plus the test's carriers and a number whose scheme rings [`MOBILE`] through
/// them in their priority order.
fn carrier_snapshot(carriers: &[CarrierDef]) -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    let mut files: Vec<SourceFile> = entries
        .into_iter()
        .map(|p| SourceFile {
            path: p.display().to_string(),
            text: std::fs::read_to_string(&p)
                .unwrap()
                .replace(
                    r#"inboundSources: ["198.51.100.0/24"]"#,
                    r#"inboundSources: ["127.0.0.1/32"]"#,
                )
                .replace("sip.carrier-one.example:5060", "127.0.0.1:9")
                .replace("sip.carrier-two.example:5060", "127.0.0.1:9"),
        })
        .collect();
    let mut overlay = String::new();
    for c in carriers {
        overlay.push_str(&format!(
            "apiVersion: dialtone.dev/v1alpha1\nkind: Carrier\nmetadata: {{name: {}, namespace: telephony}}\nspec:\n  address: 127.0.0.1:{}\n  priority: {}\n{}",
            c.name, c.port, c.priority, c.extra
        ));
        if let Some((user, pass)) = c.credentials {
            overlay.push_str(&format!(
                "  credentialsSecretRef: {{name: {0}-secret}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {0}-secret, namespace: telephony}}\ntype: Opaque\nstringData: {{username: {user}, password: {pass}}}\n",
                c.name
            ));
        }
        overlay.push_str("---\n");
    }
    let names: Vec<&str> = carriers.iter().map(|c| c.name).collect();
    overlay.push_str(&format!(
        r#"apiVersion: dialtone.dev/v1alpha1
kind: ForwardingScheme
metadata: {{name: test-external, namespace: telephony}}
spec:
  steps:
    - ring: {{targets: [{{number: "{MOBILE}"}}], timeoutSeconds: 20}}
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {{name: test-external, namespace: telephony}}
spec:
  number: "{NUMBER}"
  carriers: [{}]
  routes: {{open: test-external}}
"#,
        names.join(", ")
    ));
    files.push(SourceFile {
        path: "carriers-overlay.yaml".into(),
        text: overlay,
    });
    let report = load(
        &files,
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    );
    let errors: Vec<String> = report.errors().map(|p| format!("{p:?}")).collect();
    assert!(errors.is_empty(), "manifests load: {errors:#?}");
    report.snapshot.expect("a snapshot")
}

/// A SIPp carrier that checks digest answers against these credentials.
fn credential_keys(user: &str, pass: &str) -> Vec<String> {
    ["-key", "carrier_user", user, "-key", "carrier_pass", pass]
        .map(String::from)
        .to_vec()
}

/// A call from the (inbound) carrier to [`NUMBER`].
fn caller(h: &Harness, scenario: &str) -> Sipp {
    sipp(
        "caller",
        scenario,
        "127.0.0.1",
        &["-s".into(), NUMBER.into(), h.sip.to_string()],
    )
}

/// Waits for `cond`, at most `limit`.
async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the node has resolved the carriers and counts them up.
async fn carriers_up(h: &Harness, names: &[&str]) {
    for name in names {
        let health = h.health.clone();
        wait_until(
            Duration::from_secs(5),
            &format!("carrier {name} resolved and up"),
            || health.metrics().carrier_up(name) == Some(true),
        )
        .await;
    }
}

/// A message in a SIPp trace: when, which way, its first line and its text.
#[derive(Debug)]
struct Traced {
    at: jiff::civil::DateTime,
    received: bool,
    first_line: String,
    text: String,
}

/// The messages of SIPp's `-trace_msg` file, in the logs [`Sipp::wait`] returns: each is
/// a line of dashes with a timestamp, `UDP message received|sent ...`, a blank line, then
/// the message up to the next line of dashes.
fn traced(logs: &str) -> Vec<Traced> {
    let mut out: Vec<Traced> = Vec::new();
    let mut at = None;
    let mut direction = None;
    let mut open = false;
    for line in logs.lines() {
        if let Some(stamp) = line.strip_prefix("-----------------------------------------------") {
            at = stamp.trim().parse::<jiff::civil::DateTime>().ok();
            direction = None;
            open = false;
        } else if line.starts_with("UDP message received") {
            direction = Some(true);
        } else if line.starts_with("UDP message sent") {
            direction = Some(false);
        } else if open {
            if let Some(m) = out.last_mut() {
                m.text.push_str(line);
                m.text.push('\n');
            }
        } else if !line.trim().is_empty()
            && let (Some(t), Some(received)) = (at, direction.take())
        {
            open = true;
            out.push(Traced {
                at: t,
                received,
                first_line: line.trim().to_owned(),
                text: format!("{line}\n"),
            });
        }
    }
    out
}

/// A header's value in a traced message.
fn header<'a>(m: &'a Traced, name: &str) -> Option<&'a str> {
    m.text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A parameter of a Digest header value (quoted or not).
fn digest_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let rest = value.strip_prefix("Digest")?;
    rest.split(',').find_map(|p| {
        let (n, v) = p.trim().split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The messages received (or sent) whose first line starts with `start`.
fn messages<'a>(msgs: &'a [Traced], received: bool, start: &str) -> Vec<&'a Traced> {
    msgs.iter()
        .filter(|m| m.received == received && m.first_line.starts_with(start))
        .collect()
}

/// `later - earlier` as a duration. The two instants come from two SIPp processes' traces,
/// each stamped when that SIPp got round to logging the message: a sent 503 can be logged
/// after the node's next INVITE was already logged by the other SIPp. Up to 100 ms of such
/// skew counts as no gap; more panics with both messages.
fn between(earlier: &Traced, later: &Traced) -> Duration {
    let d = later.at.duration_since(earlier.at);
    assert!(
        d >= -jiff::SignedDuration::from_millis(100),
        "{:?} comes before {:?}",
        later.first_line,
        earlier.first_line
    );
    d.max(jiff::SignedDuration::ZERO).unsigned_abs()
}

/// The legs created, in order: (carrier, leg id).
fn legs(events: &[pb::CallEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::call_event::Kind::LegCreated(l)) => {
                Some((l.carrier.clone(), l.leg_id.clone()))
            }
            _ => None,
        })
        .collect()
}

fn failures(events: &[pb::CallEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::call_event::Kind::LegFailed(f)) => Some(f.sip_code),
            _ => None,
        })
        .collect()
}

/// Events of several calls, by call id, until `calls` calls have ended.
async fn calls_events(
    rx: &mut mpsc::UnboundedReceiver<pb::CallEvent>,
    calls: usize,
    limit: Duration,
) -> HashMap<String, Vec<pb::CallEvent>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out: HashMap<String, Vec<pb::CallEvent>> = HashMap::new();
    let mut ended = 0;
    while ended < calls {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if kind(&e) == "call_ended" {
                    ended += 1;
                }
                out.entry(e.call_id.clone()).or_default().push(e);
            }
            _ => panic!("{ended} of {calls} calls ended within {limit:?}: {out:#?}"),
        }
    }
    out
}

fn assert_bridged_through(events: &[pb::CallEvent], carrier: &str) {
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(
        in_order(events, &["leg_answered", "bridged", "call_ended"]),
        "{kinds:?}"
    );
    let Some(pb::call_event::Kind::CallEnded(end)) = &events.last().unwrap().kind else {
        panic!("last event is call_ended: {kinds:?}");
    };
    assert_eq!(
        end.disposition,
        pb::CallDisposition::Answered as i32,
        "{kinds:?}"
    );
    let answered = events.iter().find_map(|e| match &e.kind {
        Some(pb::call_event::Kind::LegAnswered(a)) => Some(a.leg_id.clone()),
        _ => None,
    });
    let through = legs(events)
        .into_iter()
        .find(|(_, id)| Some(id) == answered.as_ref())
        .map(|(c, _)| c);
    assert_eq!(
        through.as_deref(),
        Some(carrier),
        "the answered leg's carrier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_moves_the_leg_to_the_next_carrier_at_once() {
    ensure_sipp();
    let mut first = sipp("carrier-a (503)", "carrier_503.xml", "127.0.0.1", &[]);
    let mut second = sipp("carrier-b (answers)", "agent_answer.xml", "127.0.0.1", &[]);
    first.ready(Duration::from_secs(5)).await;
    second.ready(Duration::from_secs(5)).await;
    let snapshot = carrier_snapshot(&[
        CarrierDef::new("carrier-a", first.port, 1),
        CarrierDef::new("carrier-b", second.port, 2),
    ]);
    let mut h = start_full(41000, snapshot, |_| {}).await;
    carriers_up(&h, &["carrier-a", "carrier-b"]).await;
    let call = caller(&h, "carrier_call.xml");
    let (c, a, b) = tokio::join!(call.wait(LIMIT), first.wait(LIMIT), second.wait(LIMIT));
    assert_ok(&c, "caller");
    assert_ok(&a, "carrier-a (503)");
    assert_ok(&b, "carrier-b (answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let carriers: Vec<String> = legs(&events).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        carriers,
        ["carrier-a", "carrier-b"],
        "one leg per carrier, in priority order"
    );
    assert_eq!(failures(&events), [503]);
    assert_bridged_through(&events, "carrier-b");
    // From the 503 leaving carrier A to the INVITE reaching carrier B.
    let (a, b) = (traced(&a.1), traced(&b.1));
    let refused = messages(&a, false, "SIP/2.0 503");
    let invites = messages(&b, true, "INVITE ");
    assert_eq!(refused.len(), 1, "carrier A's trace: {a:#?}");
    assert_eq!(invites.len(), 1, "carrier B's trace: {b:#?}");
    let delay = between(refused[0], invites[0]);
    eprintln!("failover after 503: carrier B's INVITE {delay:?} after carrier A's 503");
    assert!(
        delay < FAILOVER_BOUND,
        "the next carrier's INVITE must leave less than {FAILOVER_BOUND:?} after the 503; it took {delay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_carrier_is_left_after_two_seconds() {
    ensure_sipp();
    let mut first = sipp("carrier-a (deaf)", "carrier_deaf.xml", "127.0.0.1", &[]);
    let mut second = sipp("carrier-b (answers)", "agent_answer.xml", "127.0.0.1", &[]);
    first.ready(Duration::from_secs(5)).await;
    second.ready(Duration::from_secs(5)).await;
    let snapshot = carrier_snapshot(&[
        CarrierDef::new("carrier-a", first.port, 1),
        CarrierDef::new("carrier-b", second.port, 2),
    ]);
    let mut h = start_full(41200, snapshot, |_| {}).await;
    carriers_up(&h, &["carrier-a", "carrier-b"]).await;
    let call = caller(&h, "carrier_call.xml");
    let (c, a, b) = tokio::join!(call.wait(LIMIT), first.wait(LIMIT), second.wait(LIMIT));
    assert_ok(&c, "caller");
    assert_ok(&a, "carrier-a (deaf)");
    assert_ok(&b, "carrier-b (answers)");
    let events = call_events(&mut h.events, LIMIT).await;
    let carriers: Vec<String> = legs(&events).into_iter().map(|(c, _)| c).collect();
    assert_eq!(carriers, ["carrier-a", "carrier-b"]);
    assert_eq!(
        failures(&events),
        [408],
        "the silent carrier counts as timed out"
    );
    assert_bridged_through(&events, "carrier-b");
    let (a, b) = (traced(&a.1), traced(&b.1));
    let heard = messages(&a, true, "INVITE ");
    let invites = messages(&b, true, "INVITE ");
    assert!(
        heard.len() >= 2,
        "carrier A got the INVITE and its retransmission(s) while the node waited: {a:#?}"
    );
    assert!(
        messages(&a, false, "SIP/2.0").is_empty(),
        "carrier A said nothing"
    );
    assert_eq!(invites.len(), 1, "carrier B's trace: {b:#?}");
    let delay = between(heard[0], invites[0]);
    eprintln!(
        "failover after silence: carrier B's INVITE {delay:?} after carrier A's first INVITE"
    );
    // The failure is the 2 s of silence itself; then the next INVITE must follow promptly.
    let bound = Duration::from_secs(2) + FAILOVER_BOUND;
    assert!(
        delay >= Duration::from_millis(1900),
        "the node gave up on carrier A after {delay:?}, before its 2 s of patience"
    );
    assert!(
        delay < bound,
        "carrier B's INVITE must leave within 2 s of silence + {FAILOVER_BOUND:?}; it took {delay:?}"
    );
}

/// A UDP socket that records what it receives and never answers.
struct BlackHole {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn black_hole() -> BlackHole {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = socket.recv_from(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            let first = text.lines().next().unwrap_or_default().to_owned();
            log.lock().unwrap().push(first);
        }
    });
    BlackHole { port, seen }
}

impl BlackHole {
    fn count(&self, start: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(start))
            .count()
    }
}

const PROBE: &str = "  probe: {intervalSeconds: 1, failuresToDown: 2, successesToUp: 1}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_down_by_its_probes_is_not_tried() {
    ensure_sipp();
    let dead = black_hole().await;
    // Every probe is a call of its own for SIPp: room for many; the scenario stops SIPp
    // after the INVITE's call.
    let mut alive = sipp(
        "carrier-b (answers probes and the call)",
        "carrier_probed.xml",
        "127.0.0.1",
        &["-m".into(), "1000".into()],
    );
    alive.ready(Duration::from_secs(5)).await;
    let mut a = CarrierDef::new("carrier-a", dead.port, 1);
    a.extra = PROBE;
    let mut b = CarrierDef::new("carrier-b", alive.port, 2);
    b.extra = PROBE;
    let mut h = start_full(41400, carrier_snapshot(&[a, b]), |_| {}).await;
    let started = Instant::now();
    let health = h.health.clone();
    wait_until(
        Duration::from_secs(10),
        "carrier-a marked down by its unanswered probes",
        || health.metrics().carrier_up("carrier-a") == Some(false) && dead.count("OPTIONS ") >= 2,
    )
    .await;
    eprintln!(
        "carrier-a down {:?} after the node started ({} OPTIONS packets unanswered, retransmissions included)",
        started.elapsed(),
        dead.count("OPTIONS ")
    );
    // A few more probe rounds: the answering carrier stays up through them.
    let rounds = dead.count("OPTIONS ") + 2;
    wait_until(Duration::from_secs(10), "two more probe rounds", || {
        dead.count("OPTIONS ") >= rounds
    })
    .await;
    let metrics = h.health.render();
    assert!(
        metrics.contains(r#"dialtone_carrier_up{carrier="carrier-a"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dialtone_carrier_up{carrier="carrier-b"} 1"#),
        "{metrics}"
    );
    let call = caller(&h, "carrier_call.xml");
    let (c, b) = tokio::join!(call.wait(LIMIT), alive.wait(LIMIT));
    assert_ok(&c, "caller");
    assert_ok(&b, "carrier-b (answers probes and the call)");
    let events = call_events(&mut h.events, LIMIT).await;
    let carriers: Vec<String> = legs(&events).into_iter().map(|(c, _)| c).collect();
    assert_eq!(carriers, ["carrier-b"], "the down carrier is not tried");
    assert!(failures(&events).is_empty());
    assert_bridged_through(&events, "carrier-b");
    assert_eq!(dead.count("INVITE "), 0, "no INVITE to the down carrier");
    let b = traced(&b.1);
    let probes = messages(&b, true, "OPTIONS ").len();
    let answered = messages(&b, false, "SIP/2.0 200").len();
    assert!(probes >= 3, "carrier B was probed: {probes} OPTIONS");
    assert!(
        answered > probes,
        "every probe and the INVITE got a 200: {b:#?}"
    );
    assert_eq!(h.health.metrics().carrier_up("carrier-b"), Some(true));
}

/// A call whose only carrier challenges the INVITE with `scenario`; returns the carrier's
/// trace after checking the call was bridged through it on one leg.
async fn challenged_call(
    rtp_base: u16,
    scenario: &str,
    user: &'static str,
    pass: &'static str,
) -> Vec<Traced> {
    let mut carrier = sipp(
        "carrier-a (challenges)",
        scenario,
        "127.0.0.1",
        &credential_keys(user, pass),
    );
    carrier.ready(Duration::from_secs(5)).await;
    let mut a = CarrierDef::new("carrier-a", carrier.port, 1);
    a.credentials = Some((user, pass));
    let mut h = start_full(rtp_base, carrier_snapshot(&[a]), |_| {}).await;
    carriers_up(&h, &["carrier-a"]).await;
    let call = caller(&h, "carrier_call.xml");
    let (c, a) = tokio::join!(call.wait(LIMIT), carrier.wait(LIMIT));
    assert_ok(&a, &format!("carrier-a ({scenario})"));
    assert_ok(&c, "caller");
    let events = call_events(&mut h.events, LIMIT).await;
    let carriers: Vec<String> = legs(&events).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        carriers,
        ["carrier-a"],
        "the challenge is answered on the same leg"
    );
    assert!(failures(&events).is_empty(), "{:?}", failures(&events));
    assert_bridged_through(&events, "carrier-a");
    let a = traced(&a.1);
    assert_eq!(messages(&a, true, "INVITE ").len(), 2, "{a:#?}");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_401_is_answered_with_its_secret() {
    ensure_sipp();
    // SIPp's verifyauth checks the Authorization (qop=auth) against these credentials; a
    // wrong one gets 403 and a non-zero exit.
    let trace = challenged_call(41600, "carrier_401.xml", "acme-a", "carrier-a-pass").await;
    assert_eq!(messages(&trace, false, "SIP/2.0 401").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_407_is_answered_with_its_secret() {
    ensure_sipp();
    let (user, pass) = ("acme-b", "carrier-b-pass");
    let trace = challenged_call(42200, "carrier_407.xml", user, pass).await;
    let challenge = messages(&trace, false, "SIP/2.0 407");
    assert_eq!(challenge.len(), 1);
    let offered = header(challenge[0], "Proxy-Authenticate").unwrap();
    let retried = messages(&trace, true, "INVITE ")[1];
    // SIPp's verifyauth never reads Proxy-Authorization: the digest (RFC 2617 without qop)
    // is checked here, from what the carrier received.
    let creds = header(retried, "Proxy-Authorization").expect("Proxy-Authorization");
    let param = |n| digest_param(creds, n).unwrap_or_else(|| panic!("{n} in {creds}"));
    assert_eq!(param("username"), user);
    assert_eq!(param("realm"), "carrier.test");
    assert_eq!(param("nonce"), digest_param(offered, "nonce").unwrap());
    let uri = retried.first_line.split_whitespace().nth(1).unwrap();
    assert_eq!(param("uri"), uri, "the digest covers the Request-URI");
    let ha1 = md5_hex(&format!("{user}:carrier.test:{pass}"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let expected = md5_hex(&format!("{ha1}:{}:{ha2}", param("nonce")));
    assert_eq!(param("response"), expected, "{creds}");
    assert_ne!(
        header(retried, "CSeq"),
        header(messages(&trace, true, "INVITE ")[0], "CSeq"),
        "the retried INVITE is a new transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_trunk_answers_the_challenge_and_refreshes() {
    ensure_sipp();
    let (user, pass) = ("acme-trunk", "trunk-pass");
    let mut registrar = sipp(
        "carrier-a (registrar)",
        "registrar_401.xml",
        "127.0.0.1",
        &credential_keys(user, pass),
    );
    registrar.ready(Duration::from_secs(5)).await;
    let mut a = CarrierDef::new("carrier-a", registrar.port, 1);
    a.credentials = Some((user, pass));
    a.extra = "  register: true\n";
    let _h = start_full(41800, carrier_snapshot(&[a]), |_| {}).await;
    let r = registrar.wait(LIMIT).await;
    assert_ok(
        &r,
        "registrar (401, verifies Authorization, 200; the refresh likewise)",
    );
    let msgs = traced(&r.1);
    let registers = messages(&msgs, true, "REGISTER ");
    let granted = messages(&msgs, false, "SIP/2.0 200");
    assert_eq!(registers.len(), 4, "{msgs:#?}");
    assert_eq!(granted.len(), 2, "{msgs:#?}");
    // The refresh comes before the 10 s the registrar granted run out.
    let refresh = between(granted[0], registers[2]);
    eprintln!("trunk refresh {refresh:?} after a 10 s registration was granted");
    assert!(
        refresh < Duration::from_secs(10),
        "the refresh came {refresh:?} after a 10 s grant: the registration lapsed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_carrier_sends_the_next_leg_to_the_next_carrier() {
    ensure_sipp();
    // Carrier A takes two calls in all: the first, and the third once its channel is free.
    let mut first = sipp(
        "carrier-a (maxChannels 1)",
        "agent_answer.xml",
        "127.0.0.1",
        &["-m".into(), "2".into()],
    );
    let mut second = sipp("carrier-b", "agent_answer.xml", "127.0.0.1", &[]);
    first.ready(Duration::from_secs(5)).await;
    second.ready(Duration::from_secs(5)).await;
    let mut a = CarrierDef::new("carrier-a", first.port, 1);
    a.extra = "  maxChannels: 1\n";
    let b = CarrierDef::new("carrier-b", second.port, 2);
    let mut h = start_full(42000, carrier_snapshot(&[a, b]), |_| {}).await;
    carriers_up(&h, &["carrier-a", "carrier-b"]).await;
    // The first call holds 3 s: the second arrives while its leg is up through carrier A.
    let call1 = caller(&h, "carrier_call_3s.xml");
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut first_events = Vec::new();
    while !first_events.iter().any(|e| kind(e) == "bridged") {
        let e = tokio::time::timeout_at(deadline, h.events.recv())
            .await
            .expect("the first call is bridged")
            .unwrap();
        first_events.push(e);
    }
    let call2 = caller(&h, "carrier_call.xml");
    let (c1, c2, b) = tokio::join!(call1.wait(LIMIT), call2.wait(LIMIT), second.wait(LIMIT));
    assert_ok(&c1, "first caller");
    assert_ok(&c2, "second caller");
    assert_ok(&b, "carrier-b");
    let mut by_call = calls_events(&mut h.events, 2, LIMIT).await;
    let first_id = first_events[0].call_id.clone();
    by_call
        .entry(first_id.clone())
        .or_default()
        .splice(0..0, first_events);
    let first_call = &by_call[&first_id];
    let (second_id, second_call) = by_call
        .iter()
        .find(|(id, _)| **id != first_id)
        .expect("a second call");
    assert_bridged_through(first_call, "carrier-a");
    assert_bridged_through(second_call, "carrier-b");
    let carriers: Vec<String> = legs(second_call).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        carriers,
        ["carrier-b"],
        "call {second_id}: carrier A is full, its leg goes straight to B"
    );
    // Both calls over: carrier A's channel is free again.
    let call3 = caller(&h, "carrier_call.xml");
    let (c3, a) = tokio::join!(call3.wait(LIMIT), first.wait(LIMIT));
    assert_ok(&c3, "third caller");
    assert_ok(&a, "carrier-a");
    let third = call_events(&mut h.events, LIMIT).await;
    let carriers: Vec<String> = legs(&third).into_iter().map(|(c, _)| c).collect();
    assert_eq!(carriers, ["carrier-a"], "the channel was given back");
    assert_bridged_through(&third, "carrier-a");
    assert_eq!(messages(&traced(&a.1), true, "INVITE ").len(), 2);
}
