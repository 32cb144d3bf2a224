//! Webhooks to CRMs: events as signed JSON, delivered from a durable outbox with retries.
//!
//! # How events flow
//!
//! 1. **Enqueue.** Every event is written once to `webhook_events` under a deterministic id,
//!    with `INSERT … ON CONFLICT DO NOTHING`, so nothing is ever enqueued twice:
//!    - the **call events** by the ingestion itself, in the transaction that rebuilds the
//!      call's CDR ([`Store::ingest`](crate::store::Store::ingest), see [`call_events`]):
//!      re-ingesting, replaying the journal or receiving events out of order never enqueues
//!      again. Call events that happened more than [`MAX_EVENT_AGE`] before they are
//!      ingested are not enqueued (a backfill is no news), and rebuilding CDRs after a policy
//!      change enqueues nothing;
//!    - the **checks** by the dispatcher every 30 s ([`checker::check`]): `callback.due`,
//!      `unprocessed.processed`, `alert`, `summary.top_missers`.
//! 2. **Fan out.** The dispatcher copies each event into `webhook_outbox`, one delivery per
//!    target: every webhook whose `events` list is empty or names the event; for `alert`, the
//!    alert's `notify` webhooks (whatever their `events` list); for `summary.top_missers`,
//!    webhooks that take every event or list `alert`, plus every alert's `notify` webhooks.
//!    Webhooks added later receive events enqueued after they appear.
//! 3. **Deliver.** One task per webhook claims its due deliveries, at most
//!    [`Options::concurrency`] in flight, each a `POST` with its own timeout
//!    ([`Options::request_timeout`], 5 s): a webhook that hangs or fails only delays itself.
//!    A 2xx is delivered. A timeout, connection error, 5xx, 408 or 429 is retried after an
//!    exponential backoff with jitter (1 s, 2 s, 4 s … at most 10 min); any other answer
//!    (4xx, 3xx: redirects are not followed) gives the delivery up at once. A delivery is given
//!    up after [`Options::max_attempts`] attempts or [`Options::max_age`] (24 h) in the
//!    outbox, whichever comes first (logged, counted in `dialtone_webhook_failed_total`).
//!    Delivery is *at least once*: a dispatcher killed mid-request makes that attempt again
//!    after its lease; receivers dedupe by `X-Dialtone-Delivery` (= the body's `id`).
//!
//! # Requests
//!
//! `POST <url>` with `Content-Type: application/json` and:
//!
//! - `X-Dialtone-Signature: sha256=<hex>` — HMAC-SHA256 of the exact body bytes under the key
//!   of the webhook's `secretRef` (absent when the webhook has no key);
//! - `X-Dialtone-Event: call.missed` — the event name;
//! - `X-Dialtone-Delivery: <id>` — the event's id, the same on every retry and for every
//!   webhook;
//! - `X-Dialtone-Attempt: <n>` — 1 for the first attempt.
//!
//! # Bodies
//!
//! Every body is an object with snake_case keys: `id` (deterministic, see below), `event`,
//! `occurred_at` (RFC 3339, UTC), and one object named after the kind of event.
//!
//! **Call events** (`call.started`, `call.answered`, `call.missed`, `call.ended`,
//! `voicemail.left`), id `{call_id}:{event}`; `call` is the record when the event was
//! enqueued ([`CallPayload`]):
//!
//! ```json
//! {"id": "c42:call.missed", "event": "call.missed", "occurred_at": "2026-11-23T09:14:07Z",
//!  "call": {"call_id": "c42", "direction": "inbound", "caller": "+380671234567",
//!           "anonymous": false, "number": "+380441234568", "number_name": "ads-landing",
//!           "started_at": "2026-11-23T09:13:40Z", "answered_at": null,
//!           "ended_at": "2026-11-23T09:14:07Z", "status": "missed", "reason": "not_answered",
//!           "agents_alerted": ["anna"], "agents_missed": ["anna"], "answered_by": null,
//!           "agent": null, "queue": null, "hangup_party": "client", "wait_seconds": 27.0,
//!           "talk_seconds": 0.0, "voicemail": true, "voicemail_path": "voicemail/c42.wav",
//!           "voicemail_url": "https://dialtone.example.com/media/voicemail/c42.wav",
//!           "voicemail_seconds": 12.0, "recording_path": null, "recording_url": null,
//!           "recording_seconds": null, "callback_id": null, "trace_id": "4bf9…"}}
//! ```
//!
//! `occurred_at` is the start (`call.started`), the answer (`call.answered`) or the end (the
//! others). `call.answered` covers inbound calls answered by an agent and outbound calls
//! answered by the client; `call.missed` is for inbound calls only (a failed callback shows
//! as `call.ended` with status `not_answered` and reason `forbidden_destination`);
//! `call.missed`, `voicemail.left` and `call.ended` wait until the record is complete.
//! `*_url` are `<media_base_url>/<path>` when [`Options::media_base_url`] is set, else the
//! path relative to the recordings storage.
//!
//! **`callback.due`**, id `callback.due:{group_id}`, at the SLA's end: `group` is the
//! unprocessed group as the `unprocessed` report shows it
//! ([`UnprocessedGroup`](crate::reports::UnprocessedGroup): `group_id`, `client`, `numbers`,
//! `first_missed_at`, `last_missed_at`, `missed_count`, `callback_attempts`, `last_reason`,
//! `agents`, `call_ids`, …) and `callback` is `{"due_at": …, "sla_minutes": 10}`. Sent once
//! per group that is still open, has no callback attempt and whose first miss is more than
//! `callbackSlaMinutes` old (anonymous groups cannot be called back and are skipped; groups
//! that fell due more than [`MAX_EVENT_AGE`] ago are not announced late).
//!
//! **`unprocessed.processed`**, id `unprocessed.processed:{group_id}`, at the processing:
//! `group` as above with `processed`: `{"how": "callback_answered" | "inbound_answered" |
//! "handled", "at": …, "by": …, "reason": "spam" | … | null, "note": …, "call_id": …}`.
//!
//! **`alert`**: `alert` is [`AlertPayload`]:
//!
//! - `agentMissRateAbove` (`condition: "agent_miss_rate"`), id
//!   `alert:{name}:{agent}:{instant}`: an agent's miss rate over the last `window` (default
//!   `1h`) is above the threshold (and the agent answered or missed at least one call); sent
//!   at most once per agent per window. `value` is the rate, `figures` the agent's row of the
//!   agents report over `[from, to)`.
//! - `unprocessedAbove` (`condition: "unprocessed_backlog"`), id
//!   `alert:{name}:unprocessed:{instant}`: the open groups of the to-do list went above the
//!   threshold; sent once per crossing (again only after the backlog went back to or below the
//!   threshold). `value` is the number of open groups.
//!
//! **`summary.top_missers`**, id `summary.top_missers:{YYYY-MM-DD}`, daily once
//! [`Options::summary_hour_utc`] (default 18:00 UTC) has passed, at that instant: `summary`
//! is `{"from", "to", "min_offered", "agents": [agents report rows]}` — the
//! [`Options::summary_top`] agents with the highest miss rate over the 24 hours before.
//!
//! # Starting it
//!
//! ```no_run
//! # async fn f(store: dialtone_reporter::store::Store,
//! #            config: tokio::sync::watch::Receiver<std::sync::Arc<dialtone_model::Snapshot>>,
//! #            shutdown: tokio::sync::watch::Receiver<bool>,
//! #            registry: &mut prometheus_client::registry::Registry) {
//! use dialtone_reporter::webhooks::{Dispatcher, http_client};
//! let dispatcher = Dispatcher::new(store, config);
//! dispatcher.metrics().register(registry);
//! let client = http_client().expect("a TLS client");
//! tokio::spawn(dispatcher.run(client, shutdown));
//! # }
//! ```

pub mod checker;
mod dispatch;
mod metrics;
pub mod payload;
pub mod sign;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_model::resources::call_center::{WebhookEvent, WebhookSpec};
use jiff::Timestamp;
use tokio::sync::watch;

pub use checker::CheckOutcome;
pub use dispatch::Dispatcher;
pub use metrics::WebhookMetrics;
pub use payload::{AlertPayload, CallPayload, call_events};
pub use sign::{ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign, verify};

use crate::store::Store;

/// Call events that happened longer ago than this when they are ingested, and check events
/// (`callback.due`, `unprocessed.processed`) older than this, are not enqueued: after a day,
/// a delivery is given up anyway ([`Options::max_age`]).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(24 * 3600);

/// "Now" for the dispatcher.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How the dispatcher delivers and checks.
#[derive(Clone)]
pub struct Options {
    /// How often events are fanned out and idle webhooks look for due deliveries (1 s).
    pub poll_interval: Duration,
    /// How often the checks run (30 s).
    pub check_interval: Duration,
    /// Each request's timeout, connecting included (5 s).
    pub request_timeout: Duration,
    /// Requests in flight per webhook (4).
    pub concurrency: usize,
    /// Backoff after the first failed attempt (1 s); doubles with each attempt.
    pub initial_backoff: Duration,
    /// Longest backoff (10 min).
    pub max_backoff: Duration,
    /// Attempts before a delivery is given up (150: about a day at the longest backoff).
    pub max_attempts: u32,
    /// Age in the outbox after which a delivery is given up (24 h).
    pub max_age: Duration,
    /// How long delivered and given-up deliveries are kept before they are deleted (7 days).
    pub keep: Duration,
    /// The UTC hour of the daily `summary.top_missers` (18); `None`: no summary.
    pub summary_hour_utc: Option<u8>,
    /// Agents in the summary (5).
    pub summary_top: usize,
    /// Fewest offered calls for an agent to be in the summary (1).
    pub summary_min_offered: u32,
    /// Base URL of the reporter's media route: recording and voicemail links become
    /// `<base>/<path>`; without it they are paths relative to the recordings storage.
    pub media_base_url: Option<String>,
    /// "Now" (the real clock by default; tests move it).
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            concurrency: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            max_attempts: 150,
            max_age: Duration::from_secs(24 * 3600),
            keep: Duration::from_secs(7 * 24 * 3600),
            summary_hour_utc: Some(18),
            summary_top: 5,
            summary_min_offered: 1,
            media_base_url: None,
            clock: Arc::new(Timestamp::now),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("poll_interval", &self.poll_interval)
            .field("check_interval", &self.check_interval)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency", &self.concurrency)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_attempts", &self.max_attempts)
            .field("max_age", &self.max_age)
            .field("keep", &self.keep)
            .field("summary_hour_utc", &self.summary_hour_utc)
            .field("media_base_url", &self.media_base_url)
            .finish_non_exhaustive()
    }
}

/// The name of a subscribable event, as `spec.webhooks[].events` writes it.
pub fn event_name(event: WebhookEvent) -> &'static str {
    match event {
        WebhookEvent::CallStarted => payload::CALL_STARTED,
        WebhookEvent::CallAnswered => payload::CALL_ANSWERED,
        WebhookEvent::CallMissed => payload::CALL_MISSED,
        WebhookEvent::CallEnded => payload::CALL_ENDED,
        WebhookEvent::VoicemailLeft => payload::VOICEMAIL_LEFT,
        WebhookEvent::CallbackDue => payload::CALLBACK_DUE,
        WebhookEvent::UnprocessedProcessed => payload::UNPROCESSED_PROCESSED,
        WebhookEvent::Alert => payload::ALERT,
        WebhookEvent::SummaryTopMissers => payload::SUMMARY_TOP_MISSERS,
    }
}

/// The webhook takes the event `name` by its `events` list (empty: every event).
pub fn accepts(webhook: &WebhookSpec, name: &str) -> bool {
    webhook.events.is_empty() || webhook.events.iter().any(|e| event_name(*e) == name)
}

/// Some configured webhook takes `event`.
pub(crate) fn subscribed(snapshot: &Snapshot, event: WebhookEvent) -> bool {
    let name = event_name(event);
    snapshot
        .call_center
        .spec
        .webhooks
        .iter()
        .any(|w| accepts(w, name))
}

/// The HTTP client deliveries use: rustls with the ring provider (reqwest is built without a
/// default one), no redirects (a webhook that moved is a configuration to fix, not a POST to
/// turn into a GET), a short connect timeout. Each request also gets
/// [`Options::request_timeout`].
///
/// # Errors
///
/// The TLS backend cannot be initialised.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // Installing twice is harmless: the second call reports the first provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .user_agent(concat!("dialtone-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs a [`Dispatcher`] with [`Options::default`] until `shutdown` turns true. Use
/// [`Dispatcher`] directly to set options or register its metrics.
pub async fn run(
    store: Store,
    config: watch::Receiver<Arc<Snapshot>>,
    client: reqwest::Client,
    shutdown: watch::Receiver<bool>,
) {
    Dispatcher::new(store, config).run(client, shutdown).await;
}

#[cfg(test)]
mod event_name_tests {
    use super::*;

    #[test]
    fn every_subscribable_event_is_named_as_the_manifests_write_it() {
        for event in [
            WebhookEvent::CallStarted,
            WebhookEvent::CallAnswered,
            WebhookEvent::CallMissed,
            WebhookEvent::CallEnded,
            WebhookEvent::VoicemailLeft,
            WebhookEvent::CallbackDue,
            WebhookEvent::UnprocessedProcessed,
            WebhookEvent::Alert,
            WebhookEvent::SummaryTopMissers,
        ] {
            let written = serde_json::to_value(event).unwrap_or_default();
            assert_eq!(written.as_str(), Some(event_name(event)), "{event:?}");
        }
        assert_eq!(
            event_name(WebhookEvent::SummaryTopMissers),
            "summary.top_missers"
        );
    }
}
