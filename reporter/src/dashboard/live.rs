//! The live board: `/live`, and `/live/events`, the server-sent events that keep it current.
//!
//! The page is complete without JavaScript (a reload shows the board now). With it, the
//! script opens an `EventSource` on `/live/events`, which relays the router's presence stream:
//! every change arrives as the *rendered* HTML of the agent's or queue's line, which the
//! script swaps in by id. Rendering stays in one place (here, escaped), and the script stays a
//! few lines.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::presence_update::Update;
use jiff::Timestamp;
use serde_json::json;
use tokio_stream::StreamExt as _;

use super::html::{self, Nav, Zone, escape, human, ts};
use super::{DashboardState, User, html_response, status_code};

/// An agent state's code and its colour class.
pub fn state_code(state: i32) -> &'static str {
    match pb::AgentState::try_from(state) {
        Ok(pb::AgentState::Available) => "available",
        Ok(pb::AgentState::Ringing) => "ringing",
        Ok(pb::AgentState::OnCall) => "on_call",
        Ok(pb::AgentState::WrapUp) => "wrap_up",
        Ok(pb::AgentState::Dnd) => "dnd",
        Ok(pb::AgentState::Away) => "away",
        Ok(pb::AgentState::Offline) => "offline",
        Ok(pb::AgentState::Unspecified) | Err(_) => "unknown",
    }
}

fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// One agent's line: colour by state, the away label, since when (clock time, and for how
/// long, which the script keeps ticking), and the calls they are on.
pub fn agent_line(a: &pb::AgentPresence, zone: &Zone, now: Timestamp) -> String {
    let state = state_code(a.state);
    let label = if state == "away" && !a.away_label.is_empty() {
        format!("away: {}", escape(&a.away_label))
    } else {
        state.replace('_', " ")
    };
    let name = if a.display_name.is_empty() {
        &a.agent
    } else {
        &a.display_name
    };
    let ext = if a.extension.is_empty() {
        String::new()
    } else {
        format!(" <span class=\"ext\">{}</span>", escape(&a.extension))
    };
    let since = match ts(a.since.as_ref()) {
        Some(s) => format!(
            "<span class=\"since\" data-since=\"{}\">since <time datetime=\"{s}\">{}</time> · \
             <span data-for>{}</span></span>",
            millis(s),
            escape(&zone.clock(s)),
            human(now.duration_since(s))
        ),
        None => String::new(),
    };
    let calls = if a.active_calls > 0 {
        format!(
            "<span class=\"calls\">{}/{} calls</span>",
            a.active_calls,
            a.max_concurrent_calls.max(a.active_calls)
        )
    } else {
        String::new()
    };
    format!(
        "<li class=\"agent st-{state}\" id=\"agent-{id}\" data-agent=\"{id}\">\
         <span class=\"dot\" aria-hidden=\"true\"></span>\
         <span class=\"who\"><b class=\"name\">{name}</b>{ext}</span>\
         <span class=\"state\" data-state>{label}</span>{since}{calls}</li>",
        id = escape(&a.agent),
        name = escape(name),
    )
}

/// One queue's row: waiting callers and the longest wait (ticking from the oldest caller's
/// arrival when someone waits).
pub fn queue_row(q: &pb::QueueStatus, now: Timestamp) -> String {
    let wait = match ts(q.oldest_joined_at.as_ref()) {
        Some(joined) if q.waiting > 0 => format!(
            "<span data-since=\"{}\"><span data-for>{}</span></span>",
            millis(joined),
            human(now.duration_since(joined))
        ),
        _ if q.waiting > 0 => human(html::dur(q.longest_wait.as_ref())),
        _ => "—".into(),
    };
    let busy = if q.waiting > 0 {
        " class=\"waiting\""
    } else {
        ""
    };
    format!(
        "<tr id=\"queue-{id}\"{busy}><th scope=\"row\">{id}</th><td class=\"num\">{}</td>\
         <td class=\"num\">{wait}</td><td class=\"num\">{}/{}</td></tr>",
        q.waiting,
        q.available,
        q.members,
        id = escape(&q.queue),
    )
}

fn agents_html(board: &pb::LiveBoard, zone: &Zone, now: Timestamp) -> String {
    let mut out = String::new();
    for a in &board.agents {
        out.push_str(&agent_line(a, zone, now));
    }
    out
}

fn queues_html(board: &pb::LiveBoard, now: Timestamp) -> String {
    let mut out = String::new();
    for q in &board.queues {
        out.push_str(&queue_row(q, now));
    }
    out
}

/// The board's section (also on the overview). `board` is the router's answer: its error is
/// shown in place (the rest of the page still works without a router).
pub fn section(board: Result<&pb::LiveBoard, &tonic::Status>, zone: &Zone) -> String {
    let mut out = String::from(
        "<section class=\"card live\" id=\"live\" data-live-events=\"/live/events\">\
         <h2>Live board <span class=\"live-status\" id=\"live-status\">static</span></h2>",
    );
    match board {
        Ok(b) => {
            let now = ts(b.at.as_ref()).unwrap_or_else(Timestamp::now);
            let _ = write!(
                out,
                "<ul class=\"agents\" id=\"live-agents\" data-now=\"{}\">{}</ul>\
                 <table class=\"queues\"><thead><tr><th scope=\"col\">Queue</th>\
                 <th scope=\"col\" class=\"num\">Waiting</th>\
                 <th scope=\"col\" class=\"num\">Longest wait</th>\
                 <th scope=\"col\" class=\"num\">Available</th></tr></thead>\
                 <tbody id=\"live-queues\">{}</tbody></table>",
                millis(now),
                agents_html(b, zone, now),
                queues_html(b, now)
            );
        }
        Err(e) => out.push_str(&html::error_banner(e.message())),
    }
    out.push_str("</section>");
    out
}

/// `GET /live`.
pub async fn page(State(state): State<DashboardState>, user: User) -> Response {
    let zone = state.zone();
    let board = state.board().await;
    let status = match &board {
        Ok(_) => StatusCode::OK,
        Err(e) => status_code(e),
    };
    let legend: String = [
        "available",
        "ringing",
        "on_call",
        "wrap_up",
        "dnd",
        "away",
        "offline",
    ]
    .iter()
    .map(|s| {
        format!(
            "<li class=\"agent st-{s}\"><span class=\"dot\" aria-hidden=\"true\"></span>{}</li>",
            s.replace('_', " ")
        )
    })
    .collect();
    let body = format!(
        "<h1 class=\"sr-only\">Live board</h1>{}<ul class=\"legend\">{legend}</ul>",
        section(board.as_ref(), &zone)
    );
    html_response(
        status,
        html::page("Live board", Nav::Live, Some(&user.viewer()), &zone, &body),
    )
}

/// The SSE event for one presence update.
fn event(update: pb::PresenceUpdate, zone: &Zone) -> Option<Event> {
    let now = ts(update.at.as_ref()).unwrap_or_else(Timestamp::now);
    let (name, data) = match update.update? {
        Update::Snapshot(b) => (
            "board",
            json!({
                "now": millis(now),
                "agents": agents_html(&b, zone, now),
                "queues": queues_html(&b, now),
            }),
        ),
        Update::Agent(a) => (
            "agent",
            json!({"now": millis(now), "id": format!("agent-{}", a.agent), "html": agent_line(&a, zone, now)}),
        ),
        Update::Queue(q) => (
            "queue",
            json!({"now": millis(now), "id": format!("queue-{}", q.queue), "html": queue_row(&q, now)}),
        ),
        Update::AgentRemoved(name) => ("remove", json!({"id": format!("agent-{name}")})),
        Update::QueueRemoved(name) => ("remove", json!({"id": format!("queue-{name}")})),
    };
    Some(Event::default().event(name).data(data.to_string()))
}

/// `GET /live/events`: the router's presence stream as server-sent events. The stream ends
/// when the router's does; the browser reconnects after a second and starts again from a
/// snapshot (the first message of every watch).
pub async fn events(State(state): State<DashboardState>, _user: User) -> Response {
    let stream = match state.watch().await {
        Ok(s) => s,
        Err(e) => return (status_code(&e), e.message().to_owned()).into_response(),
    };
    let zone = state.zone();
    let hello = tokio_stream::once(Ok::<_, Infallible>(
        Event::default()
            .retry(Duration::from_secs(1))
            .comment("live board"),
    ));
    let updates = stream
        .map_while(Result::ok)
        .filter_map(move |u| event(u, &zone))
        .map(Ok::<_, Infallible>);
    let mut res = Sse::new(hello.chain(updates))
        .keep_alive(KeepAlive::default())
        .into_response();
    // Behind an nginx Ingress: pass each event on at once instead of buffering the stream.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
