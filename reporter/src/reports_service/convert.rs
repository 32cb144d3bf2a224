//! Requests in, rows out: the proto filter to a [`Filter`] and a period, and the report rows of
//! [`crate::reports`] to their proto messages (codes as plain strings, times as protobuf
//! timestamps and durations). The row conversions are public so that tests and other
//! front ends (the dashboard) produce exactly what the gRPC service answers.

use std::collections::BTreeMap;

use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use jiff::{SignedDuration, Timestamp};
use tonic::Status;

use crate::cdr::{Direction, HangupParty, MissedReason};
use crate::reports::{
    AgentRow, CallRow, CallbackAgentRow, CallbackGroupRow, Filter, MissedRow, ProcessedHow,
    Processing, StatusCode, UnprocessedGroup,
};
use crate::store::StoreError;
use crate::time::{from_proto_timestamp, to_proto_timestamp};

/// Rows a report returns when the request sets no limit.
pub(crate) const DEFAULT_LIMIT: usize = 1000;

/// A parsed report request.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// The filters, with `from`/`to` set to the period.
    pub filter: Filter,
    /// Start of the period (defaults applied).
    pub from: Timestamp,
    /// End of the period, exclusive (defaults applied).
    pub to: Timestamp,
    /// Whether the request gave `from` / `to` itself.
    pub explicit: (bool, bool),
    /// Most rows to return.
    pub limit: usize,
    /// When the report is computed.
    pub now: Timestamp,
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn instant(ts: Option<&prost_types::Timestamp>, name: &str) -> Result<Option<Timestamp>, Status> {
    ts.map(|t| from_proto_timestamp(t).map_err(|e| invalid(format!("{name}: {e}"))))
        .transpose()
}

fn text(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Parses a report filter. Without `to` the period ends `now`; without `from` it starts
/// `span` before its end.
///
/// # Errors
///
/// `INVALID_ARGUMENT` for an unknown status or reason code, a timestamp out of range, or a
/// period whose start is not before its end.
pub(crate) fn parse_filter(
    filter: Option<&pb::ReportFilter>,
    now: Timestamp,
    span: SignedDuration,
) -> Result<Query, Status> {
    let default = pb::ReportFilter::default();
    let f = filter.unwrap_or(&default);
    let from = instant(f.from.as_ref(), "from")?;
    let to = instant(f.to.as_ref(), "to")?;
    let end = to.unwrap_or(now);
    let start = match from {
        Some(from) => from,
        None => end.checked_sub(span).map_err(invalid)?,
    };
    let parsed = Filter {
        from: Some(start),
        to: Some(end),
        number: text(&f.number),
        agent: text(&f.agent),
        caller: text(&f.caller),
        reason: text(&f.reason)
            .map(|r| r.parse::<MissedReason>())
            .transpose()
            .map_err(invalid)?,
        status: text(&f.status)
            .map(|s| s.parse::<StatusCode>())
            .transpose()
            .map_err(invalid)?,
    };
    parsed.validate().map_err(invalid)?;
    Ok(Query {
        filter: parsed,
        from: start,
        to: end,
        explicit: (from.is_some(), to.is_some()),
        limit: match f.limit {
            0 => DEFAULT_LIMIT,
            n => usize::try_from(n).unwrap_or(DEFAULT_LIMIT),
        },
        now,
    })
}

/// A store error as a gRPC status.
pub(crate) fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::Unavailable { .. } => Status::unavailable(e.to_string()),
        StoreError::Conflict { .. } => Status::aborted(e.to_string()),
        StoreError::Corrupt { .. } => Status::data_loss(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The `meta` of a report.
pub(crate) fn meta(q: &Query, truncated: bool) -> pb::ReportMeta {
    pb::ReportMeta {
        from: Some(to_proto_timestamp(q.from)),
        to: Some(to_proto_timestamp(q.to)),
        generated_at: Some(to_proto_timestamp(q.now)),
        truncated,
    }
}

/// Keeps at most `limit` rows; true when some were dropped.
pub(crate) fn truncate<T>(rows: &mut Vec<T>, limit: usize) -> bool {
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    truncated
}

pub(crate) fn duration(d: SignedDuration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs(),
        nanos: d.subsec_nanos(),
    }
}

fn seconds(secs: f64) -> prost_types::Duration {
    duration(SignedDuration::try_from_secs_f64(secs).unwrap_or_default())
}

fn ts(t: Timestamp) -> Option<prost_types::Timestamp> {
    Some(to_proto_timestamp(t))
}

fn direction(d: Direction) -> i32 {
    match d {
        Direction::Inbound => pb::Direction::Inbound as i32,
        Direction::Outbound => pb::Direction::Outbound as i32,
    }
}

fn hangup(p: Option<HangupParty>) -> i32 {
    p.and_then(|p| pb::HangupParty::from_code(p.code()))
        .unwrap_or(pb::HangupParty::Unspecified) as i32
}

/// Links to recordings: `base/path` when the reporter serves them over HTTP, else the path
/// relative to the recordings storage (the inner value is the base).
#[derive(Debug, Clone, Default)]
pub struct Links(pub Option<String>);

impl Links {
    /// The link of a file, or empty without one.
    pub fn url(&self, path: Option<&str>) -> String {
        match (path, self.0.as_deref()) {
            (None, _) => String::new(),
            (Some(p), None) => p.to_owned(),
            (Some(p), Some(base)) => {
                format!(
                    "{}/{}",
                    base.trim_end_matches('/'),
                    p.trim_start_matches('/')
                )
            }
        }
    }
}

/// A missed-calls row as its proto message.
pub fn missed_call(r: MissedRow, links: &Links) -> pb::MissedCall {
    pb::MissedCall {
        voicemail_url: links.url(r.voicemail_path.as_deref()),
        call_id: r.call_id,
        started_at: ts(r.started_at),
        caller: r.caller.unwrap_or_default(),
        number: r.number.unwrap_or_default(),
        reason: r.reason.code().to_owned(),
        agents_alerted: r.agents_alerted,
        voicemail: r.voicemail,
        ended_at: r.ended_at.and_then(ts),
        waited: Some(seconds(r.waited_seconds)),
        status: r.status.code().to_owned(),
        anonymous: r.anonymous,
        direction: direction(r.direction),
        number_name: r.number_name.unwrap_or_default(),
        trace_id: r.trace_id.unwrap_or_default(),
    }
}

/// A call-log row as its proto message.
pub fn call_row(r: CallRow, links: &Links) -> pb::CallRow {
    pb::CallRow {
        recording_url: links.url(r.recording_path.as_deref()),
        voicemail_url: links.url(r.voicemail_path.as_deref()),
        call_id: r.call_id,
        started_at: ts(r.started_at),
        ended_at: r.ended_at.and_then(ts),
        direction: direction(r.direction),
        caller: r.caller.unwrap_or_default(),
        number: r.number,
        status: r.status.code().to_owned(),
        reason: r.reason.map(|x| x.code().to_owned()).unwrap_or_default(),
        agents: r.agents,
        answered_by: r.answered_by.unwrap_or_default(),
        wait: Some(seconds(r.wait_seconds)),
        talk: Some(seconds(r.talk_seconds)),
        hangup_party: hangup(r.hangup_party),
        voicemail: r.voicemail,
        callback: r.callback,
        carrier: r.carrier.unwrap_or_default(),
        trace_id: r.trace_id.unwrap_or_default(),
    }
}

fn processing(p: Processing) -> pb::Processing {
    let how = match p.how {
        ProcessedHow::CallbackAnswered => pb::ProcessedHow::CallbackAnswered,
        ProcessedHow::InboundAnswered => pb::ProcessedHow::InboundAnswered,
        ProcessedHow::Handled => pb::ProcessedHow::Handled,
    };
    pb::Processing {
        how: how as i32,
        at: ts(p.at),
        by: p.by.unwrap_or_default(),
        reason: p.reason.map(|r| r.code().to_owned()).unwrap_or_default(),
        note: p.note.unwrap_or_default(),
        call_id: p.call_id.unwrap_or_default(),
    }
}

/// An unprocessed group as its proto message.
pub fn group(g: UnprocessedGroup) -> pb::UnprocessedGroup {
    pb::UnprocessedGroup {
        group_id: g.group_id,
        client: g.client.unwrap_or_default(),
        anonymous: g.anonymous,
        numbers: g.numbers,
        first_missed_at: ts(g.first_missed_at),
        last_missed_at: ts(g.last_missed_at),
        first_to_last: Some(seconds(g.first_to_last_seconds)),
        first_to_now: Some(seconds(g.first_to_now_seconds)),
        missed_count: g.missed_count,
        callback_attempts: g.callback_attempts,
        last_callback_at: g.last_callback_at.and_then(ts),
        last_reason: g.last_reason.code().to_owned(),
        agents: g.agents,
        call_ids: g.call_ids,
        processed: g.processed.map(processing),
    }
}

/// Agent display names from the configuration (empty for the total and unknown agents).
pub fn display_names(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .agents
        .values()
        .map(|a| (a.name.clone(), a.display_name.clone()))
        .collect()
}

/// An agents-table row as its proto message, with the agent's display name.
pub fn agent_row(r: AgentRow, names: &BTreeMap<String, String>) -> pb::AgentRow {
    pb::AgentRow {
        display_name: names.get(&r.agent).cloned().unwrap_or_default(),
        agent: r.agent,
        offered: r.offered,
        answered: r.answered,
        missed: r.missed,
        declined: r.declined,
        miss_rate: r.miss_rate,
        avg_time_to_answer_seconds: r.avg_time_to_answer_seconds,
        short_calls: r.short_calls,
        short_calls_agent_hung_up: r.short_calls_agent_hung_up,
        short_calls_client_hung_up: r.short_calls_client_hung_up,
        missed_without_callback: r.missed_without_callback,
    }
}

/// A callbacks-report group row as its proto message.
pub fn callback_group(r: CallbackGroupRow) -> pb::CallbackGroupRow {
    pb::CallbackGroupRow {
        group_id: r.group_id,
        client: r.client,
        numbers: r.numbers,
        first_missed_at: ts(r.first_missed_at),
        first_callback_at: r.first_callback_at.and_then(ts),
        time_to_callback: r.time_to_callback_seconds.map(seconds),
        callback_agent: r.callback_agent.unwrap_or_default(),
        status: r.status.code().to_owned(),
        attempts: r.attempts,
        reached: r.reached,
        agents_missed: r.agents_missed,
    }
}

/// A callbacks-report agent row as its proto message.
pub fn callback_agent(r: CallbackAgentRow) -> pb::CallbackAgentRow {
    pb::CallbackAgentRow {
        agent: r.agent,
        called_back: r.called_back,
        within_sla: r.within_sla,
        late: r.late,
        never: r.never,
        share_within_sla: r.share_within_sla,
        avg_time_to_callback_seconds: r.avg_time_to_callback_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T18:00:00Z".parse().expect("valid")
    }

    #[test]
    fn filters_parse_with_defaults_and_refuse_bad_codes() {
        let q = parse_filter(None, now(), SignedDuration::from_hours(24)).expect("defaults");
        assert_eq!(q.to, now());
        assert_eq!(
            q.from,
            "2026-11-22T18:00:00Z".parse::<Timestamp>().expect("valid")
        );
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.explicit, (false, false));
        let bad = |f: pb::ReportFilter| {
            parse_filter(Some(&f), now(), SignedDuration::from_hours(1))
                .expect_err("refused")
                .code()
        };
        assert_eq!(
            bad(pb::ReportFilter {
                reason: "bored".into(),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            bad(pb::ReportFilter {
                status: "purple".into(),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            bad(pb::ReportFilter {
                from: Some(to_proto_timestamp(now())),
                to: Some(to_proto_timestamp(now())),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn links_join_a_base_url() {
        assert_eq!(
            Links(None).url(Some("voicemail/c1.wav")),
            "voicemail/c1.wav"
        );
        assert_eq!(
            Links(Some("http://r:8080/media/".into())).url(Some("/voicemail/c1.wav")),
            "http://r:8080/media/voicemail/c1.wav"
        );
        assert_eq!(Links(None).url(None), "");
    }
}
