//! The tabular reports: missed calls, the unprocessed list, agents, top missers, callbacks
//! and the call log — each a gRPC call, rows mapped once to JSON objects.

use super::*;
const MISSED: &[Column] = &[
    Column::text("call_id").hidden(),
    Column::time("started_at"),
    Column::text("caller"),
    Column::text("number"),
    Column::text("reason"),
    Column::text("agents_alerted"),
    Column::text("status"),
    Column::flag("voicemail"),
    Column::seconds("waited_seconds").title("waited"),
    Column::text("voicemail_url").hidden(),
    Column::time("ended_at").hidden(),
    Column::flag("anonymous").hidden(),
    Column::text("direction").hidden(),
    Column::text("number_name").hidden(),
    Column::text("trace_id").hidden(),
];

/// A missed call as a row.
pub fn missed_row(c: &pb::MissedCall) -> Row {
    obj(json!({
        "call_id": c.call_id,
        "started_at": time(c.started_at.as_ref()),
        "caller": opt(&c.caller),
        "number": opt(&c.number),
        "reason": c.reason,
        "agents_alerted": c.agents_alerted,
        "status": c.status,
        "voicemail": c.voicemail,
        "waited_seconds": secs(c.waited.as_ref()),
        "voicemail_url": opt(&c.voicemail_url),
        "ended_at": time(c.ended_at.as_ref()),
        "anonymous": c.anonymous,
        "direction": opt(c.direction().code()),
        "number_name": opt(&c.number_name),
        "trace_id": opt(&c.trace_id),
    }))
}

pub(super) async fn missed(a: MissedArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        status: text(&a.status),
        reason: text(&a.reason.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .missed(pb::MissedRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.calls.iter().map(missed_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: MISSED,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "missed call", "missed calls"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}

const UNPROCESSED: &[Column] = &[
    Column::text("group_id").hidden(),
    Column::text("client"),
    Column::flag("anonymous").hidden(),
    Column::text("numbers"),
    Column::time("first_missed_at"),
    Column::time("last_missed_at"),
    Column::seconds("first_to_last_seconds").hidden(),
    Column::seconds("first_to_now_seconds").title("lost_for"),
    Column::count("missed_count").title("missed"),
    Column::count("callback_attempts").title("callbacks"),
    Column::time("last_callback_at").hidden(),
    Column::text("last_reason"),
    Column::text("agents"),
    Column::text("call_ids").hidden(),
    Column::text("processed_how").title("how"),
    Column::time("processed_at"),
    Column::text("processed_by").title("by"),
    Column::text("processed_reason").title("reason"),
    Column::text("processed_note").title("note"),
    Column::text("processed_call_id").hidden(),
];

/// Whether the unprocessed table shows a column in a view: the to-do list shows how long each
/// client has been lost; the processed view shows how, when and by whom groups were closed.
fn unprocessed_column(view: pb::UnprocessedView, key: &str) -> bool {
    let processing = key.starts_with("processed_");
    match view {
        pb::UnprocessedView::Processed => {
            processing
                || matches!(
                    key,
                    "client" | "last_missed_at" | "missed_count" | "last_reason"
                )
        }
        pb::UnprocessedView::All => {
            !processing || matches!(key, "processed_how" | "processed_by" | "processed_reason")
        }
        _ => !processing,
    }
}

fn processed_how(how: pb::ProcessedHow) -> &'static str {
    match how {
        pb::ProcessedHow::Unspecified => "",
        pb::ProcessedHow::CallbackAnswered => "callback_answered",
        pb::ProcessedHow::InboundAnswered => "inbound_answered",
        pb::ProcessedHow::Handled => "handled",
    }
}

/// An unprocessed group as a row (processing flattened into `processed_*`).
pub fn group_row(g: &pb::UnprocessedGroup) -> Row {
    let p = g.processed.as_ref();
    let field = |f: fn(&pb::Processing) -> &str| p.map_or(Value::Null, |p| opt(f(p)));
    obj(json!({
        "group_id": g.group_id,
        "client": opt(&g.client),
        "anonymous": g.anonymous,
        "numbers": g.numbers,
        "first_missed_at": time(g.first_missed_at.as_ref()),
        "last_missed_at": time(g.last_missed_at.as_ref()),
        "first_to_last_seconds": secs(g.first_to_last.as_ref()),
        "first_to_now_seconds": secs(g.first_to_now.as_ref()),
        "missed_count": g.missed_count,
        "callback_attempts": g.callback_attempts,
        "last_callback_at": time(g.last_callback_at.as_ref()),
        "last_reason": g.last_reason,
        "agents": g.agents,
        "call_ids": g.call_ids,
        "processed_how": p.map_or(Value::Null, |p| opt(processed_how(p.how()))),
        "processed_at": p.map_or(Value::Null, |p| time(p.at.as_ref())),
        "processed_by": field(|p| &p.by),
        "processed_reason": field(|p| &p.reason),
        "processed_note": field(|p| &p.note),
        "processed_call_id": field(|p| &p.call_id),
    }))
}

pub(super) async fn unprocessed(a: UnprocessedArgs) -> Result<(), Failure> {
    let view = if a.all {
        pb::UnprocessedView::All
    } else if a.processed {
        pb::UnprocessedView::Processed
    } else {
        pb::UnprocessedView::Open
    };
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        reason: text(&a.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Server)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .unprocessed(pb::UnprocessedRequest {
            filter: Some(filter),
            view: view as i32,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let columns: Vec<Column> = UNPROCESSED
        .iter()
        .map(|c| {
            if unprocessed_column(view, c.key) {
                *c
            } else {
                c.hidden()
            }
        })
        .collect();
    let rows: Vec<Row> = report.groups.iter().map(group_row).collect();
    let what = match view {
        pb::UnprocessedView::Processed => ("processed group", "processed groups"),
        pb::UnprocessedView::All => ("group", "groups"),
        _ => ("unprocessed group", "unprocessed groups"),
    };
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: &columns,
            summary: format!(
                "{} (last miss {})",
                plural(rows.len(), what.0, what.1),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}

const AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::text("display_name").hidden(),
    Column::count("offered"),
    Column::count("answered"),
    Column::count("missed"),
    Column::count("declined"),
    Column::rate("miss_rate"),
    Column::seconds("avg_time_to_answer_seconds").title("avg_answer"),
    Column::count("short_calls").title("short"),
    Column::count("short_calls_agent_hung_up").title("short_agent"),
    Column::count("short_calls_client_hung_up").title("short_client"),
    Column::count("missed_without_callback").title("no_callback"),
];

/// An agents-table row.
pub fn agent_row(r: &pb::AgentRow) -> Row {
    obj(json!({
        "agent": r.agent,
        "display_name": opt(&r.display_name),
        "offered": r.offered,
        "answered": r.answered,
        "missed": r.missed,
        "declined": r.declined,
        "miss_rate": r.miss_rate,
        "avg_time_to_answer_seconds": r.avg_time_to_answer_seconds,
        "short_calls": r.short_calls,
        "short_calls_agent_hung_up": r.short_calls_agent_hung_up,
        "short_calls_client_hung_up": r.short_calls_client_hung_up,
        "missed_without_callback": r.missed_without_callback,
    }))
}

pub(super) async fn agents(a: AgentsArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent.agent),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .agents(pb::AgentsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.agents.iter().map(agent_row).collect();
    let footer: Vec<Row> = report.total.iter().map(agent_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: AGENTS,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer,
            truncated: truncated(meta),
        },
    );
    Ok(())
}

pub(super) async fn top_missers(a: TopMissersArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        limit: a.limit,
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .top_missers(pb::TopMissersRequest {
            filter: Some(filter),
            min_offered: a.min_offered,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.agents.iter().map(agent_row).collect();
    let meta = report.meta.as_ref();
    let floor = if a.min_offered > 0 {
        format!(" offered at least {}", a.min_offered)
    } else {
        String::new()
    };
    emit(
        a.out.format,
        &Page {
            columns: AGENTS,
            summary: format!(
                "top {} by miss rate{floor}, {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: false,
        },
    );
    Ok(())
}

const CALLBACK_GROUPS: &[Column] = &[
    Column::text("group_id").hidden(),
    Column::text("client"),
    Column::text("numbers"),
    Column::time("first_missed_at"),
    Column::time("first_callback_at"),
    Column::seconds("time_to_callback_seconds").title("time_to_callback"),
    Column::text("callback_agent"),
    Column::text("status"),
    Column::count("attempts"),
    Column::flag("reached"),
    Column::text("agents_missed"),
];

const CALLBACK_AGENTS: &[Column] = &[
    Column::text("agent"),
    Column::count("called_back"),
    Column::count("within_sla"),
    Column::count("late"),
    Column::count("never"),
    Column::rate("share_within_sla"),
    Column::seconds("avg_time_to_callback_seconds").title("avg_to_callback"),
];

fn callback_agent_row(r: &pb::CallbackAgentRow) -> Row {
    obj(json!({
        "agent": r.agent,
        "called_back": r.called_back,
        "within_sla": r.within_sla,
        "late": r.late,
        "never": r.never,
        "share_within_sla": r.share_within_sla,
        "avg_time_to_callback_seconds": r.avg_time_to_callback_seconds,
    }))
}

pub(super) async fn callbacks(a: CallbacksArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent),
        status: text(&a.status),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .callbacks(pb::CallbacksRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let meta = report.meta.as_ref();
    let sla = match secs(report.sla.as_ref()) {
        Value::Number(n) => n.as_f64().map(output::human_seconds),
        _ => None,
    }
    .unwrap_or_else(|| "?".into());
    let page = if a.per_agent {
        let rows: Vec<Row> = report.agents.iter().map(callback_agent_row).collect();
        Page {
            columns: CALLBACK_AGENTS,
            summary: format!(
                "{}, SLA {sla}, first miss {}",
                plural(rows.len(), "agent", "agents"),
                period_text(meta)
            ),
            rows,
            footer: report.total.iter().map(callback_agent_row).collect(),
            truncated: false,
        }
    } else {
        let rows: Vec<Row> = report
            .groups
            .iter()
            .map(|g| {
                obj(json!({
                    "group_id": g.group_id,
                    "client": opt(&g.client),
                    "numbers": g.numbers,
                    "first_missed_at": time(g.first_missed_at.as_ref()),
                    "first_callback_at": time(g.first_callback_at.as_ref()),
                    "time_to_callback_seconds": secs(g.time_to_callback.as_ref()),
                    "callback_agent": opt(&g.callback_agent),
                    "status": g.status,
                    "attempts": g.attempts,
                    "reached": g.reached,
                    "agents_missed": g.agents_missed,
                }))
            })
            .collect();
        let count = |s: &str| report.groups.iter().filter(|g| g.status == s).count();
        Page {
            columns: CALLBACK_GROUPS,
            summary: format!(
                "{}: {} within the SLA ({sla}), {} late, {} never; first miss {}",
                plural(rows.len(), "missed group", "missed groups"),
                count("within_sla"),
                count("late"),
                count("never"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        }
    };
    emit(a.out.format, &page);
    Ok(())
}

const CALLS: &[Column] = &[
    Column::text("call_id").hidden(),
    Column::time("started_at"),
    Column::time("ended_at").hidden(),
    Column::text("direction"),
    Column::text("caller"),
    Column::text("number"),
    Column::text("status"),
    Column::text("reason"),
    Column::text("agents"),
    Column::text("answered_by"),
    Column::seconds("wait_seconds").title("wait"),
    Column::seconds("talk_seconds").title("talk"),
    Column::text("hangup_party").title("hung_up"),
    Column::text("recording_url").hidden(),
    Column::flag("voicemail").hidden(),
    Column::text("voicemail_url").hidden(),
    Column::flag("callback").hidden(),
    Column::text("carrier").hidden(),
    Column::text("trace_id").hidden(),
];

fn call_row(c: &pb::CallRow) -> Row {
    obj(json!({
        "call_id": c.call_id,
        "started_at": time(c.started_at.as_ref()),
        "ended_at": time(c.ended_at.as_ref()),
        "direction": opt(c.direction().code()),
        "caller": opt(&c.caller),
        "number": opt(&c.number),
        "status": c.status,
        "reason": opt(&c.reason),
        "agents": c.agents,
        "answered_by": opt(&c.answered_by),
        "wait_seconds": secs(c.wait.as_ref()),
        "talk_seconds": secs(c.talk.as_ref()),
        "hangup_party": opt(c.hangup_party().code()),
        "recording_url": opt(&c.recording_url),
        "voicemail": c.voicemail,
        "voicemail_url": opt(&c.voicemail_url),
        "callback": c.callback,
        "carrier": opt(&c.carrier),
        "trace_id": opt(&c.trace_id),
    }))
}

pub(super) async fn calls(a: CallsArgs) -> Result<(), Failure> {
    let filter = pb::ReportFilter {
        number: num(&a.number.number),
        agent: text(&a.agent.agent),
        status: text(&a.status),
        reason: text(&a.reason.reason),
        caller: num(&a.caller.caller),
        limit: a.limit.limit.unwrap_or(0),
        ..a.period.filter(DefaultStart::Today)?
    };
    let direction = match a.direction {
        None => pb::Direction::Unspecified,
        Some(DirectionArg::Inbound) => pb::Direction::Inbound,
        Some(DirectionArg::Outbound) => pb::Direction::Outbound,
    };
    let conn = &a.out.conn;
    let report = conn
        .connect()
        .await?
        .calls(pb::CallsRequest {
            filter: Some(filter),
            direction: direction as i32,
        })
        .await
        .map_err(|s| conn.failure(&s))?
        .into_inner();
    let rows: Vec<Row> = report.calls.iter().map(call_row).collect();
    let meta = report.meta.as_ref();
    emit(
        a.out.format,
        &Page {
            columns: CALLS,
            summary: format!(
                "{}, {}",
                plural(rows.len(), "call", "calls"),
                period_text(meta)
            ),
            rows,
            footer: Vec::new(),
            truncated: truncated(meta),
        },
    );
    Ok(())
}
