//! The JSON bodies of webhook events, built from CDRs and report rows (pure functions).
//!
//! The shapes are documented in the [module docs](super); this file is their one source.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cdr::{Cdr, CdrStatus, Direction, HangupParty, MissedReason};
use crate::reports::{AgentRow, UnprocessedGroup};
use crate::store::WebhookEventRow;
use crate::time::{rfc3339, seconds};

/// `call.started`: a call's `CallStarted` arrived.
pub const CALL_STARTED: &str = "call.started";
/// `call.answered`: an agent answered (inbound) or the client answered (outbound).
pub const CALL_ANSWERED: &str = "call.answered";
/// `call.missed`: an inbound call ended unanswered, with its reason.
pub const CALL_MISSED: &str = "call.missed";
/// `call.ended`: a call ended (its record is complete), with the recording link.
pub const CALL_ENDED: &str = "call.ended";
/// `voicemail.left`: the caller left a voicemail.
pub const VOICEMAIL_LEFT: &str = "voicemail.left";
/// `callback.due`: a missed group passed `callbackSlaMinutes` without any callback attempt.
pub const CALLBACK_DUE: &str = "callback.due";
/// `unprocessed.processed`: an unprocessed group was closed (automatically or by hand).
pub const UNPROCESSED_PROCESSED: &str = "unprocessed.processed";
/// `alert`: an alert of `spec.alerts` fired.
pub const ALERT: &str = "alert";
/// `summary.top_missers`: the daily summary of the agents with the highest miss rate.
pub const SUMMARY_TOP_MISSERS: &str = "summary.top_missers";

/// Every event name, in the order of the docs.
pub const ALL_EVENTS: [&str; 9] = [
    CALL_STARTED,
    CALL_ANSWERED,
    CALL_MISSED,
    CALL_ENDED,
    VOICEMAIL_LEFT,
    CALLBACK_DUE,
    UNPROCESSED_PROCESSED,
    ALERT,
    SUMMARY_TOP_MISSERS,
];

/// The `call` object of the call events: the call as its record stood when the event was
/// enqueued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPayload {
    /// The call's id.
    pub call_id: String,
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// Inbound: the client's number; outbound: the caller ID shown. `null` when withheld.
    pub caller: Option<String>,
    /// The caller withheld their number.
    pub anonymous: bool,
    /// Inbound: our number dialled (E.164); outbound: the client's number.
    pub number: String,
    /// The PhoneNumber resource name, when known.
    pub number_name: Option<String>,
    /// When the call started (INVITE arrival).
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// When it was answered.
    #[serde(with = "rfc3339::option")]
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    #[serde(with = "rfc3339::option")]
    pub ended_at: Option<Timestamp>,
    /// `in_progress`, `answered`, `missed`, `blocked`, `rejected` or `not_answered`.
    pub status: CdrStatus,
    /// The missed reason code (`not_answered`, `all_agents_unavailable`, …;
    /// `forbidden_destination` for a failed callback); `null` otherwise.
    pub reason: Option<MissedReason>,
    /// Agents alerted, in order of first alert.
    pub agents_alerted: Vec<String>,
    /// Agents who missed the call (alerted, not answered; declined included).
    pub agents_missed: Vec<String>,
    /// The agent who answered (inbound) or called (answered outbound).
    pub answered_by: Option<String>,
    /// Outbound: the agent who dialled or for whom the callback rang.
    pub agent: Option<String>,
    /// The first queue the call joined.
    pub queue: Option<String>,
    /// `client`, `agent` or `system`, once ended.
    pub hangup_party: Option<HangupParty>,
    /// Start to answer, or to the end when unanswered.
    pub wait_seconds: f64,
    /// Bridged time.
    pub talk_seconds: f64,
    /// The call ended in voicemail.
    pub voicemail: bool,
    /// The voicemail file, relative to the recordings storage.
    pub voicemail_path: Option<String>,
    /// The voicemail's link: `<media base>/<path>` when a media base URL is configured
    /// ([`super::Options::media_base_url`]), else the path.
    pub voicemail_url: Option<String>,
    /// The voicemail's length.
    pub voicemail_seconds: Option<f64>,
    /// The recording file, relative to the recordings storage.
    pub recording_path: Option<String>,
    /// The recording's link, as `voicemail_url`.
    pub recording_url: Option<String>,
    /// The recording's length.
    pub recording_seconds: Option<f64>,
    /// Outbound: the callback this call carries out.
    pub callback_id: Option<String>,
    /// The W3C trace id of the call.
    pub trace_id: Option<String>,
}

impl CallPayload {
    /// The call as `cdr` says.
    pub fn from_cdr(cdr: &Cdr) -> Self {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let voicemail_path = cdr.voicemail.as_ref().map(|v| v.path.clone());
        let recording_path = cdr.recording.as_ref().map(|r| r.path.clone());
        CallPayload {
            call_id: cdr.call_id.clone(),
            direction: cdr.direction,
            caller: cdr.caller.clone(),
            anonymous: cdr.anonymous,
            number: cdr.number.clone(),
            number_name: cdr.number_name.clone(),
            started_at: cdr.started_at,
            answered_at: cdr.answered_at,
            ended_at: cdr.ended_at,
            status: cdr.status,
            reason: cdr.missed,
            agents_alerted: owned(cdr.agents_alerted()),
            agents_missed: owned(cdr.agents_missed()),
            answered_by: cdr.answered_by.clone(),
            agent: cdr.agent.clone(),
            queue: cdr.queue.clone(),
            hangup_party: cdr.hangup_party,
            wait_seconds: seconds(cdr.wait()),
            talk_seconds: seconds(cdr.talk),
            voicemail: cdr.voicemail.is_some(),
            voicemail_url: voicemail_path.clone(),
            voicemail_path,
            voicemail_seconds: cdr.voicemail.as_ref().map(|v| seconds(v.duration)),
            recording_url: recording_path.clone(),
            recording_path,
            recording_seconds: cdr.recording.as_ref().map(|r| seconds(r.duration)),
            callback_id: cdr.callback_id.clone(),
            trace_id: cdr.trace_id.clone(),
        }
    }
}

/// The envelope every event shares: `id`, `event`, `occurred_at`, then the event's object.
#[derive(Debug, Serialize)]
struct Envelope<'a, B: Serialize> {
    id: &'a str,
    event: &'a str,
    #[serde(with = "rfc3339")]
    occurred_at: Timestamp,
    #[serde(flatten)]
    body: B,
}

fn row<B: Serialize>(
    id: String,
    event: &str,
    occurred_at: Timestamp,
    body: B,
    targets: Option<Vec<String>>,
) -> WebhookEventRow {
    let envelope = Envelope {
        id: &id,
        event,
        occurred_at,
        body,
    };
    // Plain structs of strings, numbers and RFC 3339 instants: serializing cannot fail; an
    // empty object would still be delivered rather than lose the event.
    let payload = serde_json::to_string(&envelope).unwrap_or_else(|_| "{}".to_owned());
    WebhookEventRow {
        id,
        event: event.to_owned(),
        occurred_at,
        payload,
        targets,
    }
}

#[derive(Serialize)]
struct CallBody<'a> {
    call: &'a CallPayload,
}

/// The call events a CDR gives, each with its deterministic id `{call_id}:{event}`:
///
/// - `call.started` — always (at `started_at`);
/// - `call.answered` — once answered (at `answered_at`);
/// - `call.missed` — an inbound missed call whose record is complete (at `ended_at`);
/// - `voicemail.left` — a complete record with a voicemail (at `ended_at`);
/// - `call.ended` — the record is complete: `CallEnded` arrived and no event before it is
///   missing, so the reason, recording and voicemail are final (at `ended_at`).
///
/// Each `call` object is the record as it stood when the event was enqueued, the first time
/// only: the ingestion enqueues with `ON CONFLICT DO NOTHING`.
pub fn call_events(cdr: &Cdr) -> Vec<WebhookEventRow> {
    call_events_since(cdr, Timestamp::MIN)
}

/// [`call_events`] that occurred at or after `oldest` (the others are not even serialized).
pub(crate) fn call_events_since(cdr: &Cdr, oldest: Timestamp) -> Vec<WebhookEventRow> {
    let mut due: Vec<(&str, Timestamp)> = vec![(CALL_STARTED, cdr.started_at)];
    if let Some(at) = cdr.answered_at {
        due.push((CALL_ANSWERED, at));
    }
    if let (true, Some(end)) = (cdr.complete, cdr.ended_at) {
        if cdr.direction == Direction::Inbound && cdr.status == CdrStatus::Missed {
            due.push((CALL_MISSED, end));
        }
        if cdr.voicemail.is_some() {
            due.push((VOICEMAIL_LEFT, end));
        }
        due.push((CALL_ENDED, end));
    }
    due.retain(|(_, at)| *at >= oldest);
    if due.is_empty() {
        return Vec::new();
    }
    let call = CallPayload::from_cdr(cdr);
    due.into_iter()
        .map(|(event, at)| {
            row(
                format!("{}:{event}", cdr.call_id),
                event,
                at,
                CallBody { call: &call },
                None,
            )
        })
        .collect()
}

/// `callback` of a `callback.due` event.
#[derive(Debug, Serialize)]
struct CallbackDue {
    #[serde(with = "rfc3339")]
    due_at: Timestamp,
    sla_minutes: u32,
}

#[derive(Serialize)]
struct GroupBody<'a> {
    group: &'a UnprocessedGroup,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackDue>,
}

/// `callback.due` for an open group, id `callback.due:{group_id}`, at `due_at`.
pub fn callback_due(
    group: &UnprocessedGroup,
    due_at: Timestamp,
    sla_minutes: u32,
) -> WebhookEventRow {
    row(
        format!("{CALLBACK_DUE}:{}", group.group_id),
        CALLBACK_DUE,
        due_at,
        GroupBody {
            group,
            callback: Some(CallbackDue {
                due_at,
                sla_minutes,
            }),
        },
        None,
    )
}

/// `unprocessed.processed` for a processed group, id `unprocessed.processed:{group_id}`, at the
/// processing instant. `None` when the group is still open.
pub fn group_processed(group: &UnprocessedGroup) -> Option<WebhookEventRow> {
    let at = group.processed.as_ref()?.at;
    Some(row(
        format!("{UNPROCESSED_PROCESSED}:{}", group.group_id),
        UNPROCESSED_PROCESSED,
        at,
        GroupBody {
            group,
            callback: None,
        },
        None,
    ))
}

/// The `alert` object of an `alert` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertPayload {
    /// The alert's name (`spec.alerts[].name`).
    pub name: String,
    /// `agent_miss_rate` or `unprocessed_backlog`.
    pub condition: &'static str,
    /// The threshold crossed: a share (0–1) or a number of groups.
    pub threshold: f64,
    /// The value seen: the agent's miss rate, or the number of open groups.
    pub value: f64,
    /// `agent_miss_rate`: the window as written (`1h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `agent_miss_rate`: the period the rate covers.
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// `agent_miss_rate`: the end of that period (the check's instant).
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// `agent_miss_rate`: the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `agent_miss_rate`: the agent's figures over the period (the agents report's row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<AgentRow>,
}

#[derive(Serialize)]
struct AlertBody<'a> {
    alert: &'a AlertPayload,
}

/// An `alert` event with the given id, sent to `notify`.
pub fn alert(
    id: String,
    at: Timestamp,
    payload: &AlertPayload,
    notify: Vec<String>,
) -> WebhookEventRow {
    row(id, ALERT, at, AlertBody { alert: payload }, Some(notify))
}

#[derive(Serialize)]
struct Summary<'a> {
    #[serde(with = "rfc3339")]
    from: Timestamp,
    #[serde(with = "rfc3339")]
    to: Timestamp,
    min_offered: u32,
    agents: &'a [AgentRow],
}

#[derive(Serialize)]
struct SummaryBody<'a> {
    summary: Summary<'a>,
}

/// The daily `summary.top_missers` of `date` (`YYYY-MM-DD`, UTC), id
/// `summary.top_missers:{date}`, over `[from, to)`, sent to `targets`.
pub fn top_missers_summary(
    date: &str,
    from: Timestamp,
    to: Timestamp,
    min_offered: u32,
    agents: &[AgentRow],
    targets: Vec<String>,
) -> WebhookEventRow {
    row(
        format!("{SUMMARY_TOP_MISSERS}:{date}"),
        SUMMARY_TOP_MISSERS,
        to,
        SummaryBody {
            summary: Summary {
                from,
                to,
                min_offered,
                agents,
            },
        },
        Some(targets),
    )
}

/// The body one webhook receives: the stored payload with its links made absolute when a
/// media base URL is configured (`call.recording_url`, `call.voicemail_url`).
pub(crate) fn for_delivery(payload: &str, media_base: Option<&str>) -> String {
    let Some(base) = media_base.filter(|b| !b.is_empty()) else {
        return payload.to_owned();
    };
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(payload) else {
        return payload.to_owned();
    };
    let Some(call) = json.get_mut("call").and_then(|c| c.as_object_mut()) else {
        return payload.to_owned();
    };
    let mut changed = false;
    for key in ["recording_url", "voicemail_url"] {
        if let Some(serde_json::Value::String(link)) = call.get_mut(key)
            && !link.is_empty()
            && !link.starts_with("http://")
            && !link.starts_with("https://")
        {
            *link = format!(
                "{}/{}",
                base.trim_end_matches('/'),
                link.trim_start_matches('/')
            );
            changed = true;
        }
    }
    if changed {
        json.to_string()
    } else {
        payload.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_get_the_media_base() {
        let body = r#"{"id":"c1:call.ended","call":{"recording_url":"recordings/c1.wav","voicemail_url":null}}"#;
        let out = for_delivery(body, Some("https://dialtone.example.com/media/"));
        let json: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            json["call"]["recording_url"],
            "https://dialtone.example.com/media/recordings/c1.wav"
        );
        assert!(json["call"]["voicemail_url"].is_null());
        assert_eq!(for_delivery(body, None), body);
        let alert = r#"{"id":"a","alert":{}}"#;
        assert_eq!(for_delivery(alert, Some("http://x")), alert);
    }
}
