//! `/`: the overview a supervisor keeps open — the live board, the oldest unprocessed groups
//! with their Handle buttons, the agents table and the heat map — each linking to its page.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::Reports as _;
use tonic::Request;

use super::filter::FilterQuery;
use super::html::{self, Nav};
use super::{DashboardState, User, heatmap, html_response, live, pages, unprocessed};

/// Groups shown on the overview; the rest are one click away.
const OVERVIEW_GROUPS: u32 = 8;

/// `GET /`.
pub async fn page(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let default = FilterQuery::default();
    let groups_filter = pb::ReportFilter {
        limit: OVERVIEW_GROUPS,
        ..Default::default()
    };
    let (board, groups, agents, heat) = tokio::join!(
        state.board(),
        unprocessed::groups(&state, pb::UnprocessedView::Open, groups_filter),
        state
            .reports
            .agents(Request::new(pb::AgentsRequest { filter: None })),
        heatmap::report(&state, &default),
    );
    let notice = q
        .handled
        .as_deref()
        .map(|g| html::notice_banner(&format!("Group {g} handled.")))
        .unwrap_or_default();
    let groups = match groups {
        Ok(r) => {
            let more = if r.meta.as_ref().is_some_and(|m| m.truncated) {
                format!("the oldest {OVERVIEW_GROUPS}; ")
            } else {
                String::new()
            };
            format!(
                "<h2>Unprocessed <small>{more}<a href=\"/unprocessed\">see all</a></small></h2>\
                 <div class=\"compact\">{}</div>",
                unprocessed::table(&r.groups, &zone, &user, "/")
            )
        }
        Err(e) => format!("<h2>Unprocessed</h2>{}", html::error_banner(e.message())),
    };
    let agents = match agents {
        Ok(r) => format!(
            "<h2>Agents <small>last 30 days · <a href=\"/agents\">details</a></small></h2>{}",
            pages::agents_table(&r.into_inner(), &default)
        ),
        Err(e) => format!("<h2>Agents</h2>{}", html::error_banner(e.message())),
    };
    let heat = match heat {
        Ok(r) => format!(
            "<h2>Heat map <small>last 30 days · <a href=\"/heatmap\">details</a></small></h2>{}\
             <div class=\"scroll picture\">{}</div>",
            heatmap::zones_note(&r),
            heatmap::svg(&r)
        ),
        Err((_, m)) => format!("<h2>Heat map</h2>{}", html::error_banner(&m)),
    };
    let body = format!(
        "<h1 class=\"sr-only\">Overview</h1>{notice}<div class=\"overview\">{}\
         <section class=\"card\" id=\"unprocessed\">{groups}</section></div>\
         <section class=\"card\" id=\"agents\">{agents}</section>\
         <section class=\"card\" id=\"heatmap\">{heat}</section>",
        live::section(board.as_ref(), &zone),
    );
    html_response(
        StatusCode::OK,
        html::page(
            "Overview",
            Nav::Overview,
            Some(&user.viewer()),
            &zone,
            &body,
        ),
    )
}
