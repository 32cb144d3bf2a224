//! The report pages: `/missed`, `/agents`, `/callbacks`, `/calls`. Each reads its filter from
//! the query string, calls the gRPC report of the same name through the `Reports` trait, and
//! renders its rows.

use std::cmp::Ordering;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::Reports as _;
use tonic::Request;

use super::filter::{self, Fields, FilterQuery, PAGE_ROWS};
use super::html::{self, Nav, Zone, code, dur, escape, human, human_secs, list, percent, ts};
use super::{DashboardState, User, html_response, status_code};

/// A miss rate at or above this is shown red: a quarter of the calls that rang this agent
/// went unanswered by them.
pub const HIGH_MISS_RATE: f64 = 0.25;
/// At or above this, amber.
pub const WARN_MISS_RATE: f64 = 0.10;

/// Renders a page whose content is `content` (or the failure of its report call).
fn respond(
    title: &str,
    nav: Nav,
    user: &User,
    zone: &Zone,
    head: &str,
    content: Result<String, (StatusCode, String)>,
) -> Response {
    let (status, content) = match content {
        Ok(c) => (StatusCode::OK, c),
        Err((s, m)) => (s, html::error_banner(&m)),
    };
    let body = format!("<h1>{}</h1>{head}{content}", escape(title));
    html_response(
        status,
        html::page(title, nav, Some(&user.viewer()), zone, &body),
    )
}

fn failed(e: &tonic::Status) -> (StatusCode, String) {
    (status_code(e), e.message().to_owned())
}

fn bad_filter(e: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, e)
}

/// A status dot and code: red missed, yellow called back, green answered.
pub fn status_badge(status: &str) -> String {
    let colour = match status {
        "missed" | "never" => "red",
        "called_back" | "late" => "yellow",
        "answered" | "within_sla" => "green",
        _ => "grey",
    };
    format!(
        "<span class=\"status {colour}\"><span class=\"dot\" aria-hidden=\"true\"></span>{}</span>",
        escape(status)
    )
}

/// A player for a recording link the browser can fetch (a path on this site or http(s));
/// other links (a storage path without a media route) are shown as text.
fn player(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    if url.starts_with('/') || url.starts_with("https://") || url.starts_with("http://") {
        format!(
            "<audio controls preload=\"none\" src=\"{}\"></audio>",
            escape(url)
        )
    } else {
        format!("<small class=\"path\">{}</small>", escape(url))
    }
}

fn client_link(number: &str, anonymous: bool) -> String {
    if anonymous || number.is_empty() {
        "<span class=\"badge\">anonymous</span>".into()
    } else {
        format!(
            "<a href=\"/calls?caller={}\">{}</a>",
            html::url_encode(number),
            escape(number)
        )
    }
}

/// `GET /missed`.
pub async fn missed(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let fields = Fields {
        who: true,
        reason: true,
        caller: true,
        statuses: Some(&["missed", "called_back"]),
        ..Fields::default()
    };
    let head = filter::form("/missed", &q, fields, &state.snapshot());
    let content = async {
        let f = q.to_filter(&zone, PAGE_ROWS).map_err(bad_filter)?;
        let r = state
            .reports
            .missed(Request::new(pb::MissedRequest { filter: Some(f) }))
            .await
            .map_err(|e| failed(&e))?
            .into_inner();
        let mut out = filter::period(r.meta.as_ref(), &zone);
        let _ = write!(
            out,
            "<p class=\"count\"><b>{}</b> missed calls</p><div class=\"scroll\"><table>\
             <thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Client</th>\
             <th scope=\"col\">Dialled</th><th scope=\"col\">Reason</th>\
             <th scope=\"col\">Agents alerted</th><th scope=\"col\" class=\"num\">Waited</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Voicemail</th></tr></thead><tbody>",
            r.calls.len()
        );
        for c in &r.calls {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                ts(c.started_at.as_ref()).map_or(String::new(), |t| zone.time_el(t)),
                client_link(&c.caller, c.anonymous),
                escape(&c.number),
                code(&c.reason),
                list(&c.agents_alerted),
                human(dur(c.waited.as_ref())),
                status_badge(&c.status),
                player(&c.voicemail_url),
            );
        }
        out.push_str("</tbody></table></div>");
        Ok(out)
    }
    .await;
    respond("Missed calls", Nav::Missed, &user, &zone, &head, content)
}

/// The agents table's columns: (key, heading, numeric).
const AGENT_COLUMNS: [(&str, &str); 9] = [
    ("agent", "Agent"),
    ("offered", "Offered"),
    ("answered", "Answered"),
    ("missed", "Missed"),
    ("declined", "Declined"),
    ("miss_rate", "Miss rate"),
    ("avg_time_to_answer", "Avg answer"),
    ("short_calls", "Short calls"),
    ("missed_without_callback", "Missed, no callback"),
];

fn compare(a: &pb::AgentRow, b: &pb::AgentRow, key: &str) -> Ordering {
    match key {
        "offered" => a.offered.cmp(&b.offered),
        "answered" => a.answered.cmp(&b.answered),
        "missed" => a.missed.cmp(&b.missed),
        "declined" => a.declined.cmp(&b.declined),
        "miss_rate" => a.miss_rate.total_cmp(&b.miss_rate),
        "avg_time_to_answer" => a
            .avg_time_to_answer_seconds
            .total_cmp(&b.avg_time_to_answer_seconds),
        "short_calls" => a.short_calls.cmp(&b.short_calls),
        "missed_without_callback" => a.missed_without_callback.cmp(&b.missed_without_callback),
        _ => a.agent.cmp(&b.agent),
    }
}

fn miss_class(rate: f64) -> &'static str {
    if rate >= HIGH_MISS_RATE {
        " bad"
    } else if rate >= WARN_MISS_RATE {
        " warn"
    } else {
        ""
    }
}

fn agent_row(r: &pb::AgentRow, total: bool) -> String {
    let name = if total {
        "<b>Team</b>".to_owned()
    } else if r.display_name.is_empty() || r.display_name == r.agent {
        escape(&r.agent)
    } else {
        format!(
            "{} <small>{}</small>",
            escape(&r.display_name),
            escape(&r.agent)
        )
    };
    format!(
        "<tr{}><th scope=\"row\">{name}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num rate{}\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\" title=\"agent hung up {} · client hung up {}\">{}</td>\
         <td class=\"num\">{}</td></tr>",
        if total { " class=\"total\"" } else { "" },
        r.offered,
        r.answered,
        r.missed,
        r.declined,
        miss_class(r.miss_rate),
        percent(r.miss_rate),
        human_secs(r.avg_time_to_answer_seconds),
        r.short_calls_agent_hung_up,
        r.short_calls_client_hung_up,
        r.short_calls,
        r.missed_without_callback,
    )
}

/// The agents table sorted by `q.sort` (`q.dir`), with sorting links in the headings.
pub fn agents_table(report: &pb::AgentsReport, q: &FilterQuery) -> String {
    let key = q
        .sort
        .as_deref()
        .filter(|k| AGENT_COLUMNS.iter().any(|(c, _)| c == k))
        .unwrap_or("agent");
    let desc = q.dir.as_deref() == Some("desc");
    let mut rows: Vec<&pb::AgentRow> = report.agents.iter().collect();
    rows.sort_by(|a, b| {
        let o = compare(a, b, key).then_with(|| a.agent.cmp(&b.agent));
        if desc { o.reverse() } else { o }
    });
    let keep = q.filter_query();
    let mut out = String::from("<div class=\"scroll\"><table class=\"agents-table\"><thead><tr>");
    for (i, (col, label)) in AGENT_COLUMNS.iter().enumerate() {
        // The current column toggles; another starts with the direction that puts the
        // interesting end first (names A→Z, figures highest first).
        let next_desc = if *col == key { !desc } else { *col != "agent" };
        let arrow = match (*col == key, desc) {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        };
        let sorted = if *col == key {
            if desc {
                " aria-sort=\"descending\""
            } else {
                " aria-sort=\"ascending\""
            }
        } else {
            ""
        };
        let class = if i == 0 { "" } else { " class=\"num\"" };
        let _ = write!(
            out,
            "<th scope=\"col\"{class}{sorted}><a href=\"/agents?sort={col}&amp;dir={}{}\">{label}{arrow}</a></th>",
            if next_desc { "desc" } else { "asc" },
            escape(&keep),
        );
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(&agent_row(r, false));
    }
    out.push_str("</tbody>");
    if let Some(t) = &report.total {
        let _ = write!(out, "<tfoot>{}</tfoot>", agent_row(t, true));
    }
    out.push_str("</table></div>");
    out
}

/// `GET /agents`.
pub async fn agents(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let fields = Fields {
        who: true,
        ..Fields::default()
    };
    let head = filter::form("/agents", &q, fields, &state.snapshot());
    let content = async {
        let f = q.to_filter(&zone, PAGE_ROWS).map_err(bad_filter)?;
        let r = state
            .reports
            .agents(Request::new(pb::AgentsRequest { filter: Some(f) }))
            .await
            .map_err(|e| failed(&e))?
            .into_inner();
        Ok(format!(
            "{}{}<p class=\"hint\">Miss rate = missed / (answered + missed); \
             amber from {}, red from {}. Calls a colleague answered first are not misses.</p>",
            filter::period(r.meta.as_ref(), &zone),
            agents_table(&r, &q),
            percent(WARN_MISS_RATE),
            percent(HIGH_MISS_RATE)
        ))
    }
    .await;
    respond("Agents", Nav::Agents, &user, &zone, &head, content)
}

fn sla_row(r: &pb::CallbackAgentRow, total: bool) -> String {
    let name = if total {
        "<b>Team</b>".into()
    } else {
        escape(&r.agent)
    };
    format!(
        "<tr{}><th scope=\"row\">{name}</th><td class=\"share\">\
         <meter min=\"0\" max=\"1\" low=\"0.5\" high=\"0.8\" optimum=\"1\" value=\"{:.3}\">{}</meter> \
         <b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        if total { " class=\"total\"" } else { "" },
        r.share_within_sla,
        percent(r.share_within_sla),
        percent(r.share_within_sla),
        r.called_back,
        r.within_sla,
        r.late,
        r.never,
        human_secs(r.avg_time_to_callback_seconds),
    )
}

/// `GET /callbacks`.
pub async fn callbacks(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let fields = Fields {
        who: true,
        caller: true,
        statuses: Some(&["within_sla", "late", "never"]),
        ..Fields::default()
    };
    let head = filter::form("/callbacks", &q, fields, &state.snapshot());
    let content = async {
        let f = q.to_filter(&zone, PAGE_ROWS).map_err(bad_filter)?;
        let r = state
            .reports
            .callbacks(Request::new(pb::CallbacksRequest { filter: Some(f) }))
            .await
            .map_err(|e| failed(&e))?
            .into_inner();
        let sla = human(dur(r.sla.as_ref()));
        let mut out = filter::period(r.meta.as_ref(), &zone);
        let _ = write!(
            out,
            "<h2>Per agent</h2><p class=\"hint\">Share of missed clients called back within \
             the SLA of <b>{sla}</b> from the first miss.</p><div class=\"scroll\">\
             <table class=\"sla\"><thead><tr><th scope=\"col\">Agent</th>\
             <th scope=\"col\">Within SLA</th><th scope=\"col\" class=\"num\">Called back</th>\
             <th scope=\"col\" class=\"num\">In time</th><th scope=\"col\" class=\"num\">Late</th>\
             <th scope=\"col\" class=\"num\">Never</th><th scope=\"col\" class=\"num\">Avg time</th>\
             </tr></thead><tbody>"
        );
        for a in &r.agents {
            out.push_str(&sla_row(a, false));
        }
        out.push_str("</tbody>");
        if let Some(t) = &r.total {
            let _ = write!(out, "<tfoot>{}</tfoot>", sla_row(t, true));
        }
        let _ = write!(
            out,
            "</table></div><h2>Missed clients</h2><div class=\"scroll\"><table><thead><tr>\
             <th scope=\"col\">Client</th><th scope=\"col\">First missed</th>\
             <th scope=\"col\">First callback</th><th scope=\"col\" class=\"num\">After</th>\
             <th scope=\"col\">By</th><th scope=\"col\">Status</th>\
             <th scope=\"col\" class=\"num\">Attempts</th><th scope=\"col\">Reached</th>\
             <th scope=\"col\">Missed by</th></tr></thead><tbody>"
        );
        for g in &r.groups {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td>\
                 <td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                client_link(&g.client, false),
                ts(g.first_missed_at.as_ref()).map_or(String::new(), |t| zone.time_el(t)),
                ts(g.first_callback_at.as_ref()).map_or("—".into(), |t| zone.time_el(t)),
                g.time_to_callback
                    .as_ref()
                    .map_or("—".into(), |d| human(dur(Some(d)))),
                if g.callback_agent.is_empty() {
                    "—".into()
                } else {
                    escape(&g.callback_agent)
                },
                status_badge(&g.status),
                g.attempts,
                if g.reached { "yes" } else { "no" },
                list(&g.agents_missed),
            );
        }
        out.push_str("</tbody></table></div>");
        Ok(out)
    }
    .await;
    respond("Callbacks", Nav::Callbacks, &user, &zone, &head, content)
}

/// `GET /calls`.
pub async fn calls(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let fields = Fields {
        who: true,
        reason: true,
        caller: true,
        direction: true,
        statuses: Some(&[
            "missed",
            "called_back",
            "answered",
            "not_answered",
            "blocked",
        ]),
    };
    let head = filter::form("/calls", &q, fields, &state.snapshot());
    let direction = match q.direction.as_deref() {
        Some("inbound") => pb::Direction::Inbound,
        Some("outbound") => pb::Direction::Outbound,
        _ => pb::Direction::Unspecified,
    };
    let content = async {
        let f = q.to_filter(&zone, PAGE_ROWS).map_err(bad_filter)?;
        let r = state
            .reports
            .calls(Request::new(pb::CallsRequest {
                filter: Some(f),
                direction: direction as i32,
            }))
            .await
            .map_err(|e| failed(&e))?
            .into_inner();
        let mut out = filter::period(r.meta.as_ref(), &zone);
        let _ = write!(
            out,
            "<p class=\"count\"><b>{}</b> calls</p><div class=\"scroll\"><table class=\"calls\">\
             <thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Direction</th><th scope=\"col\">From</th><th scope=\"col\">To</th>\
             <th scope=\"col\">Reason</th><th scope=\"col\">Agents</th>\
             <th scope=\"col\">Answered by</th><th scope=\"col\" class=\"num\">Wait</th>\
             <th scope=\"col\" class=\"num\">Talk</th><th scope=\"col\">Recording</th></tr></thead><tbody>",
            r.calls.len()
        );
        for c in &r.calls {
            let outbound = c.direction == pb::Direction::Outbound as i32;
            let dir = match (outbound, c.callback) {
                (true, true) => "callback",
                (true, false) => "outbound",
                _ => "inbound",
            };
            let talk = dur(c.talk.as_ref());
            let mut media = player(&c.recording_url);
            if !c.voicemail_url.is_empty() {
                let _ = write!(media, "<small>voicemail</small>{}", player(&c.voicemail_url));
            }
            // The trace id, for finding the call in the trace backend (shortened; whole in
            // the tooltip, selectable).
            let trace = if c.trace_id.is_empty() {
                String::new()
            } else {
                format!(
                    "<br><small class=\"trace\" title=\"trace {t}\">trace {}…</small>",
                    escape(c.trace_id.get(..8).unwrap_or(&c.trace_id)),
                    t = escape(&c.trace_id)
                )
            };
            let _ = write!(
                out,
                "<tr id=\"call-{}\"><td>{}{trace}</td><td>{}</td><td>{dir}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"media\">{media}</td></tr>",
                escape(&c.call_id),
                ts(c.started_at.as_ref()).map_or(String::new(), |t| zone.time_el(t)),
                status_badge(&c.status),
                if outbound {
                    escape(&c.caller)
                } else {
                    client_link(&c.caller, c.caller.is_empty())
                },
                if outbound {
                    client_link(&c.number, false)
                } else {
                    escape(&c.number)
                },
                if c.reason.is_empty() {
                    String::new()
                } else {
                    code(&c.reason)
                },
                list(&c.agents),
                escape(&c.answered_by),
                human(dur(c.wait.as_ref())),
                if talk.is_zero() {
                    "—".into()
                } else {
                    human(talk)
                },
            );
        }
        out.push_str("</tbody></table></div>");
        Ok(out)
    }
    .await;
    respond("Call log", Nav::Calls, &user, &zone, &head, content)
}
