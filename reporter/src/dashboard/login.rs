//! `/login` and `/logout`.
//!
//! Login takes a token (the same one the CLI uses) and answers a wrong one with the same
//! page, status and headers whatever was wrong — unknown, altered, empty — so the answer
//! says nothing about how close a guess was. Too many failures from one address get 429 with
//! `Retry-After` for a doubling time (see [`crate::auth`]).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{self, Nav, escape};
use super::{DashboardState, User, client_ip, html_response, local_path, same_origin};
use crate::auth::Denied;

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    token: String,
    next: String,
}

/// `?next=` of the login page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Next {
    next: String,
}

fn login_page(state: &DashboardState, next: &str, message: Option<&str>) -> String {
    let next = local_path(next).unwrap_or("/");
    let banner = message.map(html::error_banner).unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h1>Sign in</h1>{banner}\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label>Access token<input type=\"password\" name=\"token\" id=\"token\" \
         autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"hint\">Standalone: the token is in <code>supervisor.token</code> in the data \
         folder. In a cluster: ask whoever manages the dashboard tokens Secret.</p></section>",
        next = escape(next)
    );
    html::page("Sign in", Nav::None, None, &state.zone(), &body)
}

/// `GET /login`.
pub async fn form(State(state): State<DashboardState>, Query(q): Query<Next>) -> Response {
    html_response(StatusCode::OK, login_page(&state, &q.next, None))
}

/// The answer to a refused credential: 401 with the login page (one text for every wrong
/// credential), or 429 with `Retry-After` while the address is throttled.
pub fn denied(state: &DashboardState, denied: Denied, next: &str) -> Response {
    match denied {
        Denied::Unauthenticated => {
            let mut res = html_response(
                StatusCode::UNAUTHORIZED,
                login_page(state, next, Some("That token was not accepted.")),
            );
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dialtone\""),
            );
            res
        }
        Denied::Throttled(after) => {
            let secs = after.as_secs().max(1);
            let message = format!(
                "Too many failed sign-in attempts from your address. Try again in {secs} s."
            );
            let mut res = html_response(
                StatusCode::TOO_MANY_REQUESTS,
                login_page(state, next, Some(&message)),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
    }
}

/// `POST /login`: a session cookie and back to `next`, or [`denied`].
pub async fn submit(
    State(state): State<DashboardState>,
    parts: Parts,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    // A login has no session yet, so no CSRF token: refuse logins posted from other sites
    // instead (they would sign the victim in as the attacker).
    if !same_origin(&parts.headers) {
        let body = login_page(
            &state,
            &form.next,
            Some("Sign in from this dashboard's own login page."),
        );
        return html_response(StatusCode::FORBIDDEN, body);
    }
    let ip = client_ip(&parts, &state.auth);
    match state.auth.login(ip, &form.token) {
        Ok((_, cookie)) => {
            let to = local_path(&form.next).unwrap_or("/");
            let mut res = Redirect::to(to).into_response();
            if let Ok(v) = HeaderValue::from_str(&state.auth.set_cookie(&cookie)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(d) => self::denied(&state, d, &form.next),
    }
}

/// The logout form's field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`: ends the session (CSRF-checked, so another site cannot sign people out).
pub async fn logout(
    State(state): State<DashboardState>,
    user: User,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(s) = &user.session {
        if !state.auth.check_csrf(&s.id, &form.csrf) {
            return super::unprocessed::csrf_refused(&state, &user);
        }
        state.auth.logout(&s.id);
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&state.auth.clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
