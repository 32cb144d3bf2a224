//! Webhooks (issue 8, Deliver 3 and Durability): signed JSON events from a durable outbox.
//!
//! Fake CRMs are axum servers on 127.0.0.1:0 that verify each body's HMAC-SHA256 signature
//! with the webhook's key and can be switched between answering 200, answering 500 and never
//! answering at all.
//!
//! - `delivery::{sqlite,postgres}`: every event reaches every target once, signed; a target
//!   that hangs and one that answers 500 do not delay a healthy one (it gets all its events
//!   while they are still failing), and once they recover they get every event, once each;
//! - `reingesting::{sqlite,postgres}`: ingesting the same events again (and in another order)
//!   enqueues nothing twice; calls older than a day enqueue nothing;
//! - `callback_due_fires_once_after_the_sla`: with the clock moved past the SLA a group with
//!   no callback attempt gets one `callback.due`, a group called back gets none (but an
//!   `unprocessed.processed`), and checking again adds nothing;
//! - `events_are_filtered_by_each_webhooks_list`;
//! - `alerts_fire_once_and_the_summary_once_a_day`: the backlog alert once per crossing, the
//!   miss-rate alert once per window, to the `notify` webhooks only; the daily summary once.
//!
//! Waits have deadlines (generous, for slow machines); nothing asserts on elapsed time.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test with the error

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dialtone_model::Snapshot;
use dialtone_model::resources::call_center::{
    AlertCondition, AlertSpec, WebhookEvent, WebhookSpec,
};
use dialtone_proto::v1 as pb;
use dialtone_reporter::Policy;
use dialtone_reporter::reports::{HandleReason, HandleTarget, Handling};
use dialtone_reporter::store::Store;
use dialtone_reporter::webhooks::{self, Dispatcher, Options};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use support::reporter::{call, demo_snapshot, sqlite_url};
use support::{ADS, inbound, outbound};

/// How long any wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

// ---- a fake CRM ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// A request the target answered 200.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    attempt: u32,
    body: serde_json::Value,
}

#[derive(Debug)]
struct TargetState {
    key: String,
    mode: Mutex<Mode>,
    received: Mutex<Vec<Received>>,
    /// Requests refused with 500, or left hanging.
    failed: Mutex<usize>,
    /// Requests whose signature did not verify.
    bad_signatures: Mutex<usize>,
}

#[derive(Debug, Clone)]
struct Target {
    url: String,
    state: Arc<TargetState>,
}

async fn hook(
    State(state): State<Arc<TargetState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mode = *state.mode.lock().unwrap();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    match mode {
        Mode::Hang => {
            *state.failed.lock().unwrap() += 1;
            std::future::pending::<StatusCode>().await
        }
        Mode::Fail => {
            *state.failed.lock().unwrap() += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Mode::Ok => {
            let signature = header(webhooks::SIGNATURE_HEADER);
            if !webhooks::verify(&state.key, &body, &signature) {
                *state.bad_signatures.lock().unwrap() += 1;
                return StatusCode::UNAUTHORIZED;
            }
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            state.received.lock().unwrap().push(Received {
                delivery: header(webhooks::DELIVERY_HEADER),
                event: header(webhooks::EVENT_HEADER),
                attempt: header(webhooks::ATTEMPT_HEADER).parse().unwrap_or(0),
                body: json,
            });
            StatusCode::OK
        }
    }
}

impl Target {
    async fn start(key: &str, mode: Mode) -> Target {
        let state = Arc::new(TargetState {
            key: key.to_owned(),
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            failed: Mutex::new(0),
            bad_signatures: Mutex::new(0),
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target { url, state }
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Delivery id → how many times it was received.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.received() {
            *counts.entry(r.delivery).or_insert(0) += 1;
        }
        counts
    }

    fn ids(&self) -> BTreeSet<String> {
        self.counts().into_keys().collect()
    }

    fn failed(&self) -> usize {
        *self.state.failed.lock().unwrap()
    }

    /// Every request answered 200 was signed right and names its event and id as its body
    /// does; each id came once.
    fn assert_clean(&self, name: &str) {
        assert_eq!(
            *self.state.bad_signatures.lock().unwrap(),
            0,
            "{name}: bad signatures"
        );
        for r in self.received() {
            assert_eq!(r.body["id"], r.delivery.as_str(), "{name}: id header");
            assert_eq!(r.body["event"], r.event.as_str(), "{name}: event header");
            assert!(r.attempt >= 1, "{name}: attempt header");
            let at = r.body["occurred_at"].as_str().unwrap();
            assert!(at.parse::<Timestamp>().is_ok(), "{name}: occurred_at {at}");
        }
        let twice: Vec<_> = self.counts().into_iter().filter(|(_, n)| *n > 1).collect();
        assert!(
            twice.is_empty(),
            "{name} received some events twice: {twice:?}"
        );
    }
}

// ---- configuration, clock, calls ----

fn webhook(name: &str, url: &str, events: &[WebhookEvent]) -> WebhookSpec {
    WebhookSpec {
        name: name.to_owned(),
        url: url.to_owned(),
        events: events.to_vec(),
        secret_ref: None,
    }
}

/// The demo configuration with these webhooks (each signing with `key-<name>`) and alerts.
fn snapshot(hooks: Vec<WebhookSpec>, alerts: Vec<AlertSpec>) -> Arc<Snapshot> {
    let mut s = demo_snapshot();
    s.call_center.webhook_keys = hooks
        .iter()
        .map(|w| (w.name.clone(), format!("key-{}", w.name)))
        .collect();
    s.call_center.spec.webhooks = hooks;
    s.call_center.spec.alerts = alerts;
    Arc::new(s)
}

/// A clock that runs with real time, moved by an offset the test sets.
#[derive(Clone, Default)]
struct TestClock(Arc<Mutex<SignedDuration>>);

impl TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::now() + *self.0.lock().unwrap()
    }

    fn advance_to(&self, offset: SignedDuration) {
        *self.0.lock().unwrap() = offset;
    }

    fn options(&self) -> Options {
        let clock = self.clone();
        Options {
            poll_interval: Duration::from_millis(50),
            check_interval: Duration::from_secs(3600),
            request_timeout: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            summary_hour_utc: None,
            clock: Arc::new(move || clock.now()),
            ..Options::default()
        }
    }
}

fn rfc(t: Timestamp) -> String {
    t.to_string()
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// Two calls from `t0`: `{p}1` answered by anna (recorded), `{p}2` missed by anna, ending in
/// voicemail. Seven call events: 1 started / answered / ended, 2 started / missed /
/// voicemail.left / ended.
fn two_calls(p: &str, t0: Timestamp) -> Vec<pb::CallEvent> {
    use pb::HangupParty::Client;
    let mut events = inbound(&format!("{p}1"))
        .from("+380671110001")
        .to(ADS)
        .at(&rfc(t0))
        .open("sales")
        .ring(&["anna"])
        .wait(1.0)
        .alert("anna")
        .wait(2.0)
        .answer("anna")
        .talk(30.0, Client)
        .events();
    events.extend(
        inbound(&format!("{p}2"))
            .from("+380671110002")
            .to(ADS)
            .at(&rfc(t0 + secs(40)))
            .open("sales")
            .ring(&["anna"])
            .wait(1.0)
            .alert("anna")
            .wait(15.0)
            .timeout()
            .voicemail(3.0, 10.0)
            .events(),
    );
    events
}

fn expected_ids(p: &str) -> BTreeSet<String> {
    [
        format!("{p}1:call.started"),
        format!("{p}1:call.answered"),
        format!("{p}1:call.ended"),
        format!("{p}2:call.started"),
        format!("{p}2:call.missed"),
        format!("{p}2:voicemail.left"),
        format!("{p}2:call.ended"),
    ]
    .into_iter()
    .collect()
}

/// A missed call: anna alerted, nobody answers, the plan ends.
fn missed(id: &str, client: &str, at: Timestamp) -> Vec<pb::CallEvent> {
    inbound(id)
        .from(client)
        .to(ADS)
        .at(&rfc(at))
        .open("sales")
        .ring(&["anna"])
        .wait(1.0)
        .alert("anna")
        .wait(15.0)
        .timeout()
        .system_hangs_up()
        .events()
}

async fn ingest(store: &Store, events: Vec<pb::CallEvent>) {
    let batch: Vec<_> = events.into_iter().map(call).collect();
    let outcome = store.ingest(&batch, &Policy::default()).await.unwrap();
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
}

/// Waits until the store's outbox counts satisfy `done`.
async fn wait_for_outbox(
    store: &Store,
    what: &str,
    mut done: impl FnMut(&dialtone_reporter::store::OutboxStats) -> bool,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let stats = store.webhook_outbox_stats().await.unwrap();
        if done(&stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the dispatcher in the background; stops it on drop.
struct Running {
    stop_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the dispatcher as a shutdown does, and waits for it.
    async fn stop(mut self) {
        let _ = self.stop_tx.send(true);
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the dispatcher stops")
            .expect("the dispatcher does not panic");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start(dispatcher: &Dispatcher) -> Running {
    let (stop, rx) = watch::channel(false);
    let client = webhooks::http_client().unwrap();
    let task = tokio::spawn(dispatcher.clone().run(client, rx));
    Running {
        stop_tx: stop,
        task,
    }
}

/// Runs `$name(url)` on SQLite and on a throwaway PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(&crate::sqlite_url(dir.path())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let pg = crate::support::pg::PgServer::start();
                super::$name(&pg.url()).await;
            }
        }
    };
}

// ---- the tests ----

on_both!(delivery);
on_both!(reingesting);
on_both!(restart);

/// Every event reaches every target once, signed; a hanging and a failing target delay
/// nothing; once they recover they receive everything, once.
async fn delivery(url: &str) {
    let store = Store::open(url).await.unwrap();
    let good = Target::start("key-good", Mode::Ok).await;
    let hang = Target::start("key-hang", Mode::Hang).await;
    let flaky = Target::start("key-flaky", Mode::Fail).await;
    let config = snapshot(
        vec![
            webhook("good", &good.url, &[]),
            webhook("hang", &hang.url, &[]),
            webhook("flaky", &flaky.url, &[]),
        ],
        Vec::new(),
    );
    let (_config_tx, config_rx) = watch::channel(config);
    let clock = TestClock::default();
    let options = Options {
        media_base_url: Some("http://media.test/media/".to_owned()),
        ..clock.options()
    };
    let dispatcher = Dispatcher::with_options(store.clone(), config_rx, options);
    let metrics = dispatcher.metrics();
    let _running = start(&dispatcher);

    let t0 = Timestamp::now() - secs(300);
    ingest(&store, two_calls("d", t0)).await;
    let expected = expected_ids("d");

    wait_until("the healthy target has every event", || {
        good.ids() == expected
    })
    .await;
    // The others have been failing all along, and still are.
    assert!(hang.ids().is_empty() && flaky.ids().is_empty());
    wait_until("both failing targets were tried", || {
        hang.failed() > 0 && flaky.failed() > 0
    })
    .await;
    wait_for_outbox(
        &store,
        "the healthy target's deliveries are recorded",
        |s| s.webhooks.get("good").is_some_and(|c| c.delivered == 7),
    )
    .await;
    let stats = store.webhook_outbox_stats().await.unwrap();
    assert_eq!(stats.webhooks["hang"].delivered, 0, "{stats:?}");
    assert_eq!(stats.webhooks["flaky"].delivered, 0, "{stats:?}");
    assert_eq!(stats.webhooks["flaky"].pending, 7, "{stats:?}");
    assert_eq!(metrics.delivered("good"), 7);

    // More events while two targets are down: the healthy one gets them too.
    let t1 = Timestamp::now() - secs(120);
    ingest(&store, two_calls("e", t1)).await;
    let mut all = expected.clone();
    all.extend(expected_ids("e"));
    wait_until("the healthy target has the new events", || {
        good.ids() == all
    })
    .await;
    assert!(hang.ids().is_empty() && flaky.ids().is_empty());

    // Recovery: every event, once each.
    hang.set_mode(Mode::Ok);
    flaky.set_mode(Mode::Ok);
    wait_until("the recovered targets have every event", || {
        hang.ids() == all && flaky.ids() == all
    })
    .await;
    for (name, target) in [("good", &good), ("hang", &hang), ("flaky", &flaky)] {
        target.assert_clean(name);
        assert_eq!(target.received().len(), all.len(), "{name}");
    }
    assert!(metrics.attempt_errors("flaky") > 0);
    assert!(metrics.attempt_errors("hang") > 0);
    wait_for_outbox(&store, "every delivery is recorded", |s| {
        s.pending() == 0 && s.webhooks.values().all(|c| c.delivered == 14)
    })
    .await;
    assert_eq!(metrics.delivered("flaky"), 14);
    let stats = store.webhook_outbox_stats().await.unwrap();
    for name in ["good", "hang", "flaky"] {
        assert_eq!(stats.webhooks[name].delivered, 14, "{name}: {stats:?}");
        assert_eq!(stats.webhooks[name].pending, 0, "{name}: {stats:?}");
        assert_eq!(stats.webhooks[name].failed, 0, "{name}: {stats:?}");
    }

    // The bodies.
    let body = |id: &str| {
        good.received()
            .into_iter()
            .find(|r| r.delivery == id)
            .unwrap()
            .body
    };
    let missed = body("d2:call.missed");
    assert_eq!(missed["event"], "call.missed");
    let c = &missed["call"];
    assert_eq!(c["call_id"], "d2");
    assert_eq!(c["caller"], "+380671110002");
    assert_eq!(c["number"], ADS);
    assert_eq!(c["status"], "missed");
    assert_eq!(c["reason"], "not_answered");
    assert_eq!(c["agents_alerted"], serde_json::json!(["anna"]));
    assert_eq!(c["voicemail"], true);
    assert_eq!(
        c["voicemail_url"],
        "http://media.test/media/voicemail/d2.wav"
    );
    assert_eq!(c["started_at"], rfc(t0 + secs(40)).as_str());
    assert_eq!(missed["occurred_at"], c["ended_at"]);
    let ended = body("d1:call.ended");
    assert_eq!(ended["call"]["status"], "answered");
    assert_eq!(ended["call"]["answered_by"], "anna");
    assert_eq!(
        ended["call"]["recording_url"],
        "http://media.test/media/recordings/d1.wav"
    );
    assert_eq!(ended["call"]["talk_seconds"], 30.0);
    let answered = body("d1:call.answered");
    assert_eq!(answered["occurred_at"], answered["call"]["answered_at"]);
    store.close().await;
}

/// The outbox is durable: deliveries pending when the reporter stops (and events enqueued while
/// no dispatcher runs) are delivered by the next one, once each.
async fn restart(url: &str) {
    let crm = Target::start("key-crm", Mode::Fail).await;
    let config = snapshot(vec![webhook("crm", &crm.url, &[])], Vec::new());
    let clock = TestClock::default();
    let store = Store::open(url).await.unwrap();
    let (_config_tx, config_rx) = watch::channel(config.clone());
    let first = Dispatcher::with_options(store.clone(), config_rx, clock.options());
    let running = start(&first);
    ingest(&store, two_calls("s", Timestamp::now() - secs(200))).await;
    wait_until("the CRM was tried", || crm.failed() > 0).await;
    wait_for_outbox(&store, "seven deliveries wait", |s| {
        s.webhooks.get("crm").is_some_and(|c| c.pending == 7)
    })
    .await;
    running.stop().await;
    // While no dispatcher runs, more calls come in.
    ingest(&store, two_calls("t", Timestamp::now() - secs(100))).await;
    store.close().await;

    crm.set_mode(Mode::Ok);
    let store = Store::open(url).await.unwrap();
    let (_config_tx, config_rx) = watch::channel(config);
    let second = Dispatcher::with_options(store.clone(), config_rx, clock.options());
    let _running = start(&second);
    let mut all = expected_ids("s");
    all.extend(expected_ids("t"));
    wait_until("the CRM has every event", || crm.ids() == all).await;
    wait_for_outbox(&store, "every delivery is recorded", |s| {
        s.webhooks
            .get("crm")
            .is_some_and(|c| c.delivered == 14 && c.pending == 0)
    })
    .await;
    crm.assert_clean("crm");
    assert_eq!(crm.received().len(), 14);
    // The first dispatcher's failed attempts count.
    assert!(
        crm.received()
            .iter()
            .any(|r| r.delivery.starts_with("s") && r.attempt > 1)
    );
    store.close().await;
}

/// The same events again, in another order and batching, enqueue nothing new; an old call
/// enqueues nothing.
async fn reingesting(url: &str) {
    let store = Store::open(url).await.unwrap();
    let t0 = Timestamp::now() - secs(600);
    let events = two_calls("r", t0);
    // In two batches, the first ending in the middle of the answered call.
    let (first, second) = events.split_at(5);
    ingest(&store, first.to_vec()).await;
    ingest(&store, second.to_vec()).await;
    let ids = |events: Vec<dialtone_reporter::store::WebhookEventRow>| {
        events.into_iter().map(|e| e.id).collect::<BTreeSet<_>>()
    };
    let once = store.webhook_events().await.unwrap();
    assert_eq!(ids(once.clone()), expected_ids("r"));

    // Again: everything at once, reversed, twice over.
    let mut again = events.clone();
    again.reverse();
    again.extend(events.clone());
    ingest(&store, again).await;
    let twice = store.webhook_events().await.unwrap();
    assert_eq!(twice, once, "re-ingesting enqueued or changed events");

    // A day-old call (a backfill): its CDR is stored, no webhook event.
    let old = two_calls("old", Timestamp::now() - SignedDuration::from_hours(30));
    ingest(&store, old).await;
    assert!(store.cdr("old1").await.unwrap().is_some());
    assert_eq!(
        ids(store.webhook_events().await.unwrap()),
        expected_ids("r")
    );

    // Rebuilding every CDR (a policy change) enqueues nothing either.
    store.rebuild_cdrs(&Policy::default()).await.unwrap();
    assert_eq!(store.webhook_events().await.unwrap(), once);
    store.close().await;
}

/// `callback.due` once per group past the SLA without an attempt; none for a group called
/// back; `unprocessed.processed` for the group the callback closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callback_due_fires_once_after_the_sla() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_url(dir.path())).await.unwrap();
    let crm = Target::start("key-crm", Mode::Ok).await;
    let (_config_tx, config_rx) = watch::channel(snapshot(
        vec![webhook(
            "crm",
            &crm.url,
            &[
                WebhookEvent::CallbackDue,
                WebhookEvent::UnprocessedProcessed,
            ],
        )],
        Vec::new(),
    ));
    let clock = TestClock::default();
    let dispatcher = Dispatcher::with_options(store.clone(), config_rx, clock.options());

    // Client A missed at t0, never called back; client B missed, then called back (answered).
    let t0 = Timestamp::now() - secs(180);
    let a = "+380671112001";
    let b = "+380671112002";
    ingest(&store, missed("m1", a, t0)).await;
    ingest(&store, missed("m2", b, t0 + secs(5))).await;
    ingest(
        &store,
        outbound("o1")
            .by("olena")
            .from(ADS)
            .to(b)
            .at(&rfc(t0 + secs(60)))
            .ring(&["olena"])
            .wait(1.0)
            .alert("olena")
            .wait(1.0)
            .pick_up("olena")
            .dial_client()
            .wait(1.0)
            .alert("client")
            .wait(3.0)
            .answer("client")
            .talk(30.0, pb::HangupParty::Agent)
            .events(),
    )
    .await;

    // Three minutes after the miss: not due yet; B's group was processed by the callback.
    let first = dispatcher.check().await.unwrap();
    assert_eq!(first.callbacks_due, 0, "{first:?}");
    assert_eq!(first.processed, 1, "{first:?}");

    // The SLA (10 min, the demo's) has passed for A.
    clock.advance_to(secs(8 * 60));
    let due = dispatcher.check().await.unwrap();
    assert_eq!(due.callbacks_due, 1, "{due:?}");
    assert_eq!(due.processed, 0, "{due:?}");
    clock.advance_to(secs(9 * 60));
    assert_eq!(dispatcher.check().await.unwrap().callbacks_due, 0);

    let events = store.webhook_events().await.unwrap();
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e.id.as_str())
        .filter(|id| !id.contains(":call.") && !id.contains(":voicemail."))
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["callback.due:m1", "unprocessed.processed:m2"])
    );
    let due_event = events.iter().find(|e| e.id == "callback.due:m1").unwrap();
    assert_eq!(due_event.occurred_at, t0 + secs(600));

    // Delivered once, and only what the webhook lists (no call events).
    let _running = start(&dispatcher);
    wait_until("the CRM has both events", || crm.ids().len() == 2).await;
    for _ in 0..3 {
        dispatcher.check().await.unwrap();
    }
    dispatcher.fan_out().await.unwrap();
    let outbox = store.webhook_outbox().await.unwrap();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    wait_for_outbox(&store, "both deliveries are recorded", |s| {
        s.webhooks.get("crm").is_some_and(|c| c.delivered == 2)
    })
    .await;
    crm.assert_clean("crm");
    assert_eq!(
        crm.ids(),
        BTreeSet::from([
            "callback.due:m1".to_owned(),
            "unprocessed.processed:m2".to_owned()
        ])
    );
    let body = crm
        .received()
        .into_iter()
        .find(|r| r.event == "callback.due")
        .unwrap()
        .body;
    assert_eq!(body["group"]["group_id"], "m1");
    assert_eq!(body["group"]["client"], a);
    assert_eq!(body["group"]["callback_attempts"], 0);
    assert_eq!(body["group"]["agents"], serde_json::json!(["anna"]));
    assert_eq!(body["callback"]["sla_minutes"], 10);
    let processed = crm
        .received()
        .into_iter()
        .find(|r| r.event == "unprocessed.processed")
        .unwrap()
        .body;
    assert_eq!(processed["group"]["processed"]["how"], "callback_answered");
    assert_eq!(processed["group"]["processed"]["call_id"], "o1");
}

/// Each webhook gets the events its `events` list names (empty: all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_filtered_by_each_webhooks_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_url(dir.path())).await.unwrap();
    let all = Target::start("key-all", Mode::Ok).await;
    let misses = Target::start("key-misses", Mode::Ok).await;
    let answers = Target::start("key-answers", Mode::Ok).await;
    let (_config_tx, config_rx) = watch::channel(snapshot(
        vec![
            webhook("all", &all.url, &[]),
            webhook(
                "misses",
                &misses.url,
                &[WebhookEvent::CallMissed, WebhookEvent::VoicemailLeft],
            ),
            webhook("answers", &answers.url, &[WebhookEvent::CallAnswered]),
        ],
        Vec::new(),
    ));
    let clock = TestClock::default();
    let dispatcher = Dispatcher::with_options(store.clone(), config_rx, clock.options());
    ingest(&store, two_calls("f", Timestamp::now() - secs(200))).await;
    dispatcher.fan_out().await.unwrap();
    let mut by_webhook: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in store.webhook_outbox().await.unwrap() {
        by_webhook
            .entry(row.webhook)
            .or_default()
            .insert(row.event_id);
    }
    let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(by_webhook["all"], expected_ids("f"));
    assert_eq!(
        by_webhook["misses"],
        set(&["f2:call.missed", "f2:voicemail.left"])
    );
    assert_eq!(by_webhook["answers"], set(&["f1:call.answered"]));

    let _running = start(&dispatcher);
    wait_until("every target has its events", || {
        all.ids() == expected_ids("f")
            && misses.ids() == by_webhook["misses"]
            && answers.ids() == by_webhook["answers"]
    })
    .await;
    for (name, t) in [("all", &all), ("misses", &misses), ("answers", &answers)] {
        t.assert_clean(name);
    }
    assert!(
        misses
            .received()
            .iter()
            .all(|r| r.event == "call.missed" || r.event == "voicemail.left")
    );
}

/// The backlog alert fires once per crossing, the miss-rate alert once per window, each to
/// its `notify` webhooks only; the daily summary once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_fire_once_and_the_summary_once_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_url(dir.path())).await.unwrap();
    let alerts = vec![
        AlertSpec {
            name: "backlog".into(),
            when: AlertCondition {
                agent_miss_rate_above: None,
                window: None,
                unprocessed_above: Some(1),
            },
            notify: vec!["crm".into()],
        },
        AlertSpec {
            name: "misses".into(),
            when: AlertCondition {
                agent_miss_rate_above: Some(0.5),
                window: Some("1h".into()),
                unprocessed_above: None,
            },
            notify: vec!["crm".into()],
        },
    ];
    // `crm` lists no `alert` but is notified; `ops` takes every event but is not notified.
    let (_config_tx, config_rx) = watch::channel(snapshot(
        vec![
            webhook("crm", "http://127.0.0.1:9/crm", &[WebhookEvent::CallMissed]),
            webhook("ops", "http://127.0.0.1:9/ops", &[]),
        ],
        alerts,
    ));
    let clock = TestClock::default();
    let hour = clock
        .now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .hour();
    let options = Options {
        summary_hour_utc: Some(u8::try_from(hour).unwrap()),
        ..clock.options()
    };
    let dispatcher = Dispatcher::with_options(store.clone(), config_rx, options);

    // Two minutes ago: well within the callback SLA, so no `callback.due` in the way.
    let t0 = Timestamp::now() - secs(120);
    ingest(&store, missed("a1", "+380671113001", t0)).await;
    ingest(&store, missed("a2", "+380671113002", t0 + secs(30))).await;
    let first = dispatcher.check().await.unwrap();
    // Two open groups > 1: the backlog alert; anna missed 2 of 2 > 0.5: the miss-rate alert.
    assert_eq!(first.alerts, 2, "{first:?}");
    assert_eq!(first.summaries, 1, "{first:?}");
    let again = dispatcher.check().await.unwrap();
    assert_eq!(again, webhooks::CheckOutcome::default());

    // Back to 0 open groups, then above again: a second crossing. Anna misses more, within
    // the same window: no second miss-rate alert.
    let now = clock.now();
    for client in ["+380671113001", "+380671113002"] {
        store
            .add_handling(&Handling {
                target: HandleTarget::Client(client.into()),
                reason: HandleReason::Spam,
                note: None,
                by: "supervisor".into(),
                at: now,
            })
            .await
            .unwrap();
    }
    assert_eq!(dispatcher.check().await.unwrap().alerts, 0);
    let t1 = Timestamp::now() - secs(30);
    ingest(&store, missed("a3", "+380671113003", t1)).await;
    ingest(&store, missed("a4", "+380671113004", t1 + secs(10))).await;
    assert_eq!(dispatcher.check().await.unwrap().alerts, 1);
    assert_eq!(dispatcher.check().await.unwrap().alerts, 0);

    let events = store.webhook_events().await.unwrap();
    let alerts: Vec<_> = events.iter().filter(|e| e.event == "alert").collect();
    let kinds: Vec<String> = alerts
        .iter()
        .map(|e| {
            let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            assert_eq!(body["id"], e.id.as_str());
            format!(
                "{}:{}",
                body["alert"]["name"].as_str().unwrap(),
                body["alert"]["agent"].as_str().unwrap_or("-")
            )
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["backlog:-", "backlog:-", "misses:anna"],
        "{kinds:?}"
    );
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e.event == "summary.top_missers")
        .collect();
    assert_eq!(summaries.len(), 1);
    assert_eq!(
        summaries[0].targets,
        Some(vec!["crm".to_owned(), "ops".to_owned()])
    );

    // Alerts go to `crm` only; the summary to both.
    dispatcher.fan_out().await.unwrap();
    let outbox = store.webhook_outbox().await.unwrap();
    let to = |event: &str| {
        outbox
            .iter()
            .filter(|r| r.event == event)
            .map(|r| r.webhook.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(to("alert"), ["crm", "crm", "crm"]);
    let mut summary_to = to("summary.top_missers");
    summary_to.sort_unstable();
    assert_eq!(summary_to, ["crm", "ops"]);
}
