//! `/unprocessed`: the to-do list of missed clients, oldest loss first, with a Handle form on
//! each group; `?view=processed` shows how each closed group was processed, by whom, when.
//!
//! Handling posts to `/unprocessed/handle`, which checks the session's CSRF token, then the
//! role, then calls `Reports::HandleGroup` with the user as the [`Caller`] — the same call as
//! `dialtone handle` — and redirects back (post/redirect/get: a reload does not post again).

use std::fmt::Write as _;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::Reports as _;
use serde::Deserialize;
use tonic::Request;

use super::filter::{self, Fields, FilterQuery, PAGE_ROWS};
use super::html::{self, Nav, Zone, code, escape, human, list, ts, url_encode};
use super::{DashboardState, User, html_response, local_path, status_code};
use crate::reports::HandleReason;
use crate::reports_service::Caller;

/// The Handle form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HandleForm {
    csrf: String,
    group_id: String,
    reason: String,
    note: String,
    back: String,
}

fn reason_label(r: HandleReason) -> &'static str {
    match r {
        HandleReason::Spam => "spam",
        HandleReason::WrongNumber => "wrong number",
        HandleReason::ResolvedElsewhere => "resolved elsewhere",
        HandleReason::Duplicate => "duplicate",
        HandleReason::Other => "other (say why)",
    }
}

fn handle_form(g: &pb::UnprocessedGroup, csrf: &str, back: &str) -> String {
    let mut options = String::new();
    for r in HandleReason::ALL {
        let _ = write!(
            options,
            "<option value=\"{}\">{}</option>",
            r.code(),
            reason_label(r)
        );
    }
    format!(
        "<form method=\"post\" action=\"/unprocessed/handle\" class=\"handle\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"group_id\" value=\"{gid}\">\
         <input type=\"hidden\" name=\"back\" value=\"{back}\">\
         <select name=\"reason\" aria-label=\"Reason\">{options}</select>\
         <input type=\"text\" name=\"note\" placeholder=\"Note\" aria-label=\"Note\" maxlength=\"500\">\
         <button type=\"submit\">Handle</button></form>",
        csrf = escape(csrf),
        gid = escape(&g.group_id),
        back = escape(back),
    )
}

fn client_cell(g: &pb::UnprocessedGroup) -> String {
    if g.anonymous || g.client.is_empty() {
        "<span class=\"badge\">anonymous</span>".into()
    } else {
        format!(
            "<a href=\"/calls?caller={}\" class=\"client\">{}</a>",
            url_encode(&g.client),
            escape(&g.client)
        )
    }
}

fn how(p: &pb::Processing) -> String {
    match pb::ProcessedHow::try_from(p.how) {
        Ok(pb::ProcessedHow::Handled) => format!("handled: {}", code(&p.reason)),
        Ok(pb::ProcessedHow::CallbackAnswered) => "callback answered".into(),
        Ok(pb::ProcessedHow::InboundAnswered) => "answered on a later call".into(),
        _ => "—".into(),
    }
}

/// When the group's calls were missed: the count, the first miss, and the last when later.
fn missed_cell(g: &pb::UnprocessedGroup, zone: &Zone) -> String {
    let first = ts(g.first_missed_at.as_ref()).map_or(String::new(), |t| zone.time_el(t));
    let last = match ts(g.last_missed_at.as_ref()) {
        Some(t) if g.missed_count > 1 => format!("<br><small>last {}</small>", zone.time_el(t)),
        _ => String::new(),
    };
    format!(
        "<span class=\"first\"><b class=\"times\">{}×</b> {first}</span>{last}",
        g.missed_count
    )
}

/// How long the client has been lost (now − first), and between misses when there were
/// several.
fn lost_cell(g: &pb::UnprocessedGroup) -> String {
    let between = if g.missed_count > 1 {
        format!(
            "<br><small>{} between misses</small>",
            human(html::dur(g.first_to_last.as_ref()))
        )
    } else {
        String::new()
    };
    format!(
        "<b>{}</b>{between}",
        human(html::dur(g.first_to_now.as_ref()))
    )
}

/// The groups as a table. Open groups get a Handle form each when the user may handle;
/// processed ones show how, by whom and when.
pub fn table(groups: &[pb::UnprocessedGroup], zone: &Zone, user: &User, back: &str) -> String {
    if groups.is_empty() {
        return "<p class=\"empty\">Nothing here: every missed client has been dealt with.</p>"
            .into();
    }
    let processed = groups.iter().any(|g| g.processed.is_some());
    let last = if processed {
        "<th scope=\"col\">Processed</th><th scope=\"col\">By, when</th>"
    } else if user.can_handle() {
        "<th scope=\"col\">Handle</th>"
    } else {
        ""
    };
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"groups\"><thead><tr>\
         <th scope=\"col\">Client</th><th scope=\"col\">Dialled</th>\
         <th scope=\"col\">Missed</th><th scope=\"col\">Lost for</th>\
         <th scope=\"col\" class=\"num\">Callbacks</th><th scope=\"col\">Last reason</th>\
         <th scope=\"col\">Agents</th>{last}</tr></thead><tbody>"
    );
    for g in groups {
        let tail = match &g.processed {
            Some(p) => {
                let note = if p.note.is_empty() {
                    String::new()
                } else {
                    format!("<br><small class=\"note\">{}</small>", escape(&p.note))
                };
                format!(
                    "<td class=\"how\">{}{note}</td><td class=\"when\"><span class=\"by\">{}</span><br>\
                     <small>{}</small></td>",
                    how(p),
                    escape(&p.by),
                    ts(p.at.as_ref()).map_or(String::new(), |t| zone.time_el(t))
                )
            }
            None if user.can_handle() => {
                format!(
                    "<td class=\"act\">{}</td>",
                    handle_form(g, user.csrf(), back)
                )
            }
            None => String::new(),
        };
        let _ = write!(
            out,
            "<tr id=\"group-{gid}\"><td class=\"client\">{client}</td>\
             <td data-label=\"Dialled\">{numbers}</td><td class=\"missed\">{missed}</td>\
             <td class=\"lost\" data-label=\"Lost for\">{lost}</td>\
             <td class=\"num\" data-label=\"Callbacks\">{attempts}</td>\
             <td data-label=\"Last reason\">{reason}</td><td data-label=\"Agents\">{agents}</td>{tail}</tr>",
            gid = escape(&g.group_id),
            client = client_cell(g),
            numbers = list(&g.numbers),
            missed = missed_cell(g, zone),
            lost = lost_cell(g),
            attempts = g.callback_attempts,
            reason = code(&g.last_reason),
            agents = list(&g.agents),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Loads the groups of `view` with `filter`.
pub async fn groups(
    state: &DashboardState,
    view: pb::UnprocessedView,
    filter: pb::ReportFilter,
) -> Result<pb::UnprocessedReport, tonic::Status> {
    state
        .reports
        .unprocessed(Request::new(pb::UnprocessedRequest {
            filter: Some(filter),
            view: view as i32,
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// `GET /unprocessed`.
pub async fn page(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FilterQuery>,
) -> Response {
    let zone = state.zone();
    let processed = q.view.as_deref() == Some("processed");
    let view = if processed {
        pb::UnprocessedView::Processed
    } else {
        pb::UnprocessedView::Open
    };
    let tabs = format!(
        "<nav class=\"tabs\"><a href=\"/unprocessed\"{}>To do</a>\
         <a href=\"/unprocessed?view=processed\"{}>Processed</a></nav>",
        if processed {
            ""
        } else {
            " aria-current=\"page\""
        },
        if processed {
            " aria-current=\"page\""
        } else {
            ""
        },
    );
    let notice = q
        .handled
        .as_deref()
        .map(|g| html::notice_banner(&format!("Group {g} handled.")))
        .unwrap_or_default();
    let fields = Fields {
        who: true,
        reason: true,
        caller: true,
        ..Fields::default()
    };
    let mut form = filter::form("/unprocessed", &q, fields, &state.snapshot());
    if processed {
        form = form.replacen(
            "<button",
            "<input type=\"hidden\" name=\"view\" value=\"processed\"><button",
            1,
        );
    }
    let (status, content) = match q.to_filter(&zone, PAGE_ROWS) {
        Err(e) => (StatusCode::BAD_REQUEST, html::error_banner(&e)),
        Ok(f) => match groups(&state, view, f).await {
            Ok(r) => {
                let back = match (processed, q.filter_query()) {
                    (true, _) => "/unprocessed?view=processed".to_owned(),
                    (false, f) if f.is_empty() => "/unprocessed".to_owned(),
                    (false, f) => format!("/unprocessed?{}", f.trim_start_matches('&')),
                };
                let count = format!(
                    "<p class=\"count\"><b>{}</b> {}</p>",
                    r.groups.len(),
                    if processed {
                        "processed groups"
                    } else {
                        "clients waiting for a callback"
                    }
                );
                (
                    StatusCode::OK,
                    format!(
                        "{}{count}{}",
                        filter::period(r.meta.as_ref(), &zone),
                        table(&r.groups, &zone, &user, &back)
                    ),
                )
            }
            Err(e) => (status_code(&e), html::error_banner(e.message())),
        },
    };
    let body = format!(
        "<h1>Unprocessed missed calls</h1>{tabs}{notice}{form}<section id=\"groups\">{content}</section>"
    );
    html_response(
        status,
        html::page(
            "Unprocessed",
            Nav::Unprocessed,
            Some(&user.viewer()),
            &zone,
            &body,
        ),
    )
}

/// A refused state change: a page saying why, with 403.
fn forbidden(state: &DashboardState, user: &User, title: &str, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1>{}<p><a href=\"/unprocessed\">Back to the unprocessed list</a></p>",
        escape(title),
        html::error_banner(message)
    );
    html_response(
        StatusCode::FORBIDDEN,
        html::page(title, Nav::None, Some(&user.viewer()), &state.zone(), &body),
    )
}

/// 403 for a form without this session's CSRF token (a forged cross-site post, or a page
/// from before a restart).
pub fn csrf_refused(state: &DashboardState, user: &User) -> Response {
    forbidden(
        state,
        user,
        "Request refused",
        "This form did not carry this session's security token, so nothing was changed. \
         Reload the page and try again.",
    )
}

/// `POST /unprocessed/handle`.
pub async fn handle(
    State(state): State<DashboardState>,
    user: User,
    form: Result<Form<HandleForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(s) = &user.session
        && !state.auth.check_csrf(&s.id, &form.csrf)
    {
        return csrf_refused(&state, &user);
    }
    if !user.can_handle() {
        return forbidden(
            &state,
            &user,
            "Not allowed",
            &format!(
                "{} has the {} role, which can read reports but not handle groups. \
                 Ask a supervisor to handle this group.",
                user.principal.name, user.principal.role
            ),
        );
    }
    let mut request = Request::new(pb::HandleGroupRequest {
        group_id: form.group_id.trim().to_owned(),
        reason: form.reason.trim().to_owned(),
        note: form.note.trim().to_owned(),
        ..Default::default()
    });
    request
        .extensions_mut()
        .insert(Caller(user.principal.name.clone()));
    let back = local_path(&form.back).unwrap_or("/unprocessed");
    match state.reports.handle_group(request).await {
        Ok(_) => {
            let sep = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!(
                "{back}{sep}handled={}",
                url_encode(form.group_id.trim())
            ))
            .into_response()
        }
        Err(e) => {
            let body = format!(
                "<h1>Not handled</h1>{}<p><a href=\"{}\">Back</a></p>",
                html::error_banner(e.message()),
                escape(back)
            );
            html_response(
                status_code(&e),
                html::page(
                    "Not handled",
                    Nav::None,
                    Some(&user.viewer()),
                    &state.zone(),
                    &body,
                ),
            )
        }
    }
}
