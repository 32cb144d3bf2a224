//! The load heat map as a picture: `/heatmap` (page) and `/heatmap.svg` (the picture alone).
//!
//! One row per weekday, one column per hour (in the schedules' zone). The upper band of a row
//! is the missed calls — the redder, the more — with the open hours outlined in green; the
//! lower band is the agents available on average in that hour. An hour in which clients
//! called and (almost) nobody was available is hatched: the blind zones, visible at a glance.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::Reports as _;
use tonic::Request;

use super::filter::{self, Fields, FilterQuery};
use super::html::{self, Nav, escape};
use super::{DashboardState, User, html_response, status_code};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LEFT: u32 = 44;
const TOP: u32 = 22;
const CELL_W: u32 = 30;
const MISS_H: u32 = 28;
const AGENTS_H: u32 = 16;
const GAP: u32 = 8;
const ROW: u32 = MISS_H + AGENTS_H + GAP;
const LEGEND_H: u32 = 34;

/// On average fewer agents than this in an hour with calls: a blind zone.
pub const BLIND_BELOW: f64 = 0.5;

/// An hour counts as open when at least half of it was open over the period's such days.
const OPEN_FROM: f64 = 0.5;

fn cell(cells: &[pb::HeatmapCell], day: u32, hour: u32) -> Option<&pb::HeatmapCell> {
    cells.iter().find(|c| c.weekday == day && c.hour == hour)
}

fn is_open(c: Option<&pb::HeatmapCell>) -> bool {
    c.is_some_and(|c| c.open_share >= OPEN_FROM)
}

/// White → deep red by `t` in 0..=1.
fn red(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(255.0, 178.0),
        mix(240.0, 24.0),
        mix(235.0, 43.0)
    )
}

/// Pale → mid blue by `t` in 0..=1.
fn blue(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(240.0, 107.0),
        mix(246.0, 174.0),
        mix(252.0, 214.0)
    )
}

fn agents_label(n: f64) -> String {
    if (n - n.round()).abs() < 0.05 {
        format!("{}", n.round() as i64)
    } else {
        format!("{n:.1}")
    }
}

/// The SVG of a heat map report.
pub fn svg(report: &pb::HeatmapReport) -> String {
    let width = LEFT + 24 * CELL_W + 6;
    let height = TOP + 7 * ROW + LEGEND_H;
    let max_missed = report
        .cells
        .iter()
        .map(|c| c.missed)
        .max()
        .unwrap_or(0)
        .max(1);
    let max_agents = report
        .cells
        .iter()
        .map(|c| c.available_agents)
        .fold(1.0_f64, f64::max);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         class=\"heatmap\" role=\"img\" font-family=\"system-ui, sans-serif\" \
         aria-label=\"Missed calls per weekday and hour, open hours and agents available\">\
         <defs><pattern id=\"blind\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fde2e1\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d1242f\" stroke-width=\"2.5\"/>\
         </pattern></defs><rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    for hour in 0..24 {
        let x = LEFT + hour * CELL_W + CELL_W / 2;
        let _ = write!(
            out,
            "<text x=\"{x}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#57606a\">{hour:02}</text>",
            TOP - 8
        );
    }
    let mut outline = String::new();
    for (d, day) in DAYS.iter().enumerate() {
        let weekday = d as u32 + 1;
        let y = TOP + d as u32 * ROW;
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{}\" font-size=\"13\" font-weight=\"600\" fill=\"#24292f\">{day}</text>\
             <text x=\"4\" y=\"{}\" font-size=\"9\" fill=\"#57606a\">agents</text>",
            y + MISS_H / 2 + 5,
            y + MISS_H + AGENTS_H - 4
        );
        for hour in 0..24 {
            let c = cell(&report.cells, weekday, hour);
            let x = LEFT + hour * CELL_W;
            let (inbound, missed, agents, open_share, days) = c.map_or((0, 0, 0.0, 0.0, 0), |c| {
                (
                    c.inbound,
                    c.missed,
                    c.available_agents,
                    c.open_share,
                    c.days,
                )
            });
            let t = f64::from(missed) / f64::from(max_missed);
            // No calls: grey. Calls, none missed: almost white. Then pink to deep red.
            let fill = match (inbound, missed) {
                (0, _) => "#f6f8fa".to_owned(),
                (_, 0) => red(0.03),
                _ => red(0.15 + 0.85 * t),
            };
            let blind = inbound > 0 && agents < BLIND_BELOW;
            let tip = format!(
                "{day} {hour:02}:00–{:02}:00 · {inbound} inbound, {missed} missed · {} agents \
                 available on average · open {:.0}% · {days} days",
                (hour + 1) % 24,
                agents_label(agents),
                open_share * 100.0
            );
            let _ = write!(
                out,
                "<g><title>{tip}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{MISS_H}\" \
                 fill=\"{fill}\" stroke=\"#ffffff\" stroke-width=\"1\"/>",
                tip = escape(&tip),
                w = CELL_W,
            );
            if missed > 0 {
                let ink = if t > 0.45 { "#ffffff" } else { "#24292f" };
                let _ = write!(
                    out,
                    "<text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"600\" \
                     text-anchor=\"middle\" fill=\"{ink}\">{missed}</text>",
                    x + CELL_W / 2,
                    y + MISS_H / 2 + 4
                );
            }
            let ay = y + MISS_H;
            let afill = if blind {
                "url(#blind)".to_owned()
            } else if agents > 0.0 {
                blue(agents / max_agents)
            } else {
                "#ffffff".to_owned()
            };
            let (ink, weight) = if blind {
                ("#a40e26", "700")
            } else {
                ("#24292f", "400")
            };
            let label = if agents > 0.0 || blind {
                agents_label(agents)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"{ay}\" width=\"{CELL_W}\" height=\"{AGENTS_H}\" fill=\"{afill}\" \
                 stroke=\"#ffffff\" stroke-width=\"1\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" \
                 font-weight=\"{weight}\" text-anchor=\"middle\" fill=\"{ink}\">{label}</text></g>",
                x + CELL_W / 2,
                ay + AGENTS_H - 4
            );
            if is_open(c) {
                let (x0, x1, y1) = (x, x + CELL_W, y + MISS_H);
                let _ = write!(
                    outline,
                    "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\"/>\
                     <line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\"/>"
                );
                if hour == 0 || !is_open(cell(&report.cells, weekday, hour - 1)) {
                    let _ = write!(
                        outline,
                        "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{x0}\" y2=\"{y1}\"/>"
                    );
                }
                if hour == 23 || !is_open(cell(&report.cells, weekday, hour + 1)) {
                    let _ = write!(
                        outline,
                        "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y1}\"/>"
                    );
                }
            }
        }
    }
    let _ = write!(
        out,
        "<g stroke=\"#1a7f37\" stroke-width=\"2.5\" stroke-linecap=\"square\">{outline}</g>"
    );
    let ly = TOP + 7 * ROW + 6;
    let _ = write!(
        out,
        "<g font-size=\"11\" fill=\"#24292f\">\
         <rect x=\"{LEFT}\" y=\"{ly}\" width=\"14\" height=\"14\" fill=\"{}\"/>\
         <rect x=\"{}\" y=\"{ly}\" width=\"14\" height=\"14\" fill=\"{}\"/>\
         <text x=\"{}\" y=\"{}\">missed: few → many</text>\
         <rect x=\"{}\" y=\"{ly}\" width=\"22\" height=\"14\" fill=\"none\" stroke=\"#1a7f37\" stroke-width=\"2.5\"/>\
         <text x=\"{}\" y=\"{}\">open hours</text>\
         <rect x=\"{}\" y=\"{ly}\" width=\"14\" height=\"14\" fill=\"{}\"/>\
         <text x=\"{}\" y=\"{}\">agents available</text>\
         <rect x=\"{}\" y=\"{ly}\" width=\"14\" height=\"14\" fill=\"url(#blind)\"/>\
         <text x=\"{}\" y=\"{}\">blind zone: calls, nobody there</text></g></svg>",
        red(0.15),
        LEFT + 16,
        red(1.0),
        LEFT + 36,
        ly + 11,
        LEFT + 160,
        LEFT + 188,
        ly + 11,
        LEFT + 268,
        blue(0.7),
        LEFT + 288,
        ly + 11,
        LEFT + 398,
        LEFT + 418,
        ly + 11,
    );
    out
}

/// The blind zones in words (for screen readers and for a quick list).
fn blind_list(report: &pb::HeatmapReport) -> String {
    let mut rows: Vec<&pb::HeatmapCell> = report
        .cells
        .iter()
        .filter(|c| c.inbound > 0 && c.available_agents < BLIND_BELOW)
        .collect();
    if rows.is_empty() {
        return "<p class=\"hint\">No blind zone: someone was available whenever clients called.</p>"
            .into();
    }
    // Open hours first (nobody there while the office is open is the worse gap), then by
    // missed calls.
    rows.sort_by(|a, b| {
        let open = |c: &pb::HeatmapCell| c.open_share >= OPEN_FROM;
        open(b)
            .cmp(&open(a))
            .then(b.missed.cmp(&a.missed))
            .then(a.weekday.cmp(&b.weekday))
            .then(a.hour.cmp(&b.hour))
    });
    let mut out = String::from("<h2>Blind zones</h2><ul class=\"blind\">");
    for c in rows {
        let day = DAYS
            .get(c.weekday.saturating_sub(1) as usize)
            .unwrap_or(&"?");
        let _ = write!(
            out,
            "<li><b>{day} {:02}:00</b> — {} call{}, {} missed, {} agents available{}</li>",
            c.hour,
            c.inbound,
            if c.inbound == 1 { "" } else { "s" },
            c.missed,
            agents_label(c.available_agents),
            if c.open_share >= OPEN_FROM {
                " (open)"
            } else {
                " (closed)"
            }
        );
    }
    out.push_str("</ul>");
    out
}

/// Loads the heat map for `q`.
pub async fn report(
    state: &DashboardState,
    q: &FilterQuery,
) -> Result<pb::HeatmapReport, (StatusCode, String)> {
    let f = q
        .to_filter(&state.zone(), 0)
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    state
        .reports
        .heatmap(Request::new(pb::HeatmapRequest { filter: Some(f) }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| (status_code(&e), e.message().to_owned()))
}

/// "Hours in …" for the time zones a heat map used.
pub fn zones_note(report: &pb::HeatmapReport) -> String {
    let zones = if report.time_zones.is_empty() {
        "UTC".to_owned()
    } else {
        report.time_zones.join(", ")
    };
    format!(
        "<p class=\"hint\">Hours in <b>{}</b> (each number's schedule zone).</p>",
        escape(&zones)
    )
}

/// `GET /heatmap`.
pub async fn page(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let fields = Fields::default();
    let form = filter::form("/heatmap", &q, fields, &state.snapshot());
    let (status, content) = match report(&state, &q).await {
        Ok(r) => (
            StatusCode::OK,
            format!(
                "{}{}<div class=\"scroll picture\">{}</div>{}",
                filter::period(r.meta.as_ref(), &zone),
                zones_note(&r),
                svg(&r),
                blind_list(&r)
            ),
        ),
        Err((s, m)) => (s, html::error_banner(&m)),
    };
    let body = format!("<h1>Heat map</h1>{form}{content}");
    html_response(
        status,
        html::page("Heat map", Nav::Heatmap, Some(&user.viewer()), &zone, &body),
    )
}

/// `GET /heatmap.svg`: the picture alone (for embedding in a wiki or a report).
pub async fn svg_file(
    State(state): State<DashboardState>,
    _user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    match report(&state, &q).await {
        Ok(r) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg(&r)).into_response(),
        Err((s, m)) => (s, m).into_response(),
    }
}
