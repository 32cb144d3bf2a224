//! The supervisors' web dashboard: server-rendered pages over the same code paths as the gRPC
//! `Reports` service — every page calls [`ReportsService`] through the
//! [`Reports`](dialtone_proto::v1::reports_server::Reports) trait, so a page and
//! `dialtone report` can never disagree.
//!
//! Pages: `/` (overview: live board, unprocessed list with Handle buttons, agents table, heat
//! map), `/live` (updated by server-sent events from `/live/events`), `/unprocessed`
//! (`?view=processed`; Handle posts to `/unprocessed/handle`), `/missed`, `/agents`,
//! `/callbacks`, `/calls`, `/heatmap` (and `/heatmap.svg`, the picture alone). `/login`,
//! `/logout` and `/assets/…` complete it. Styles and the small script are embedded in the
//! binary ([`include_str!`]): no build step, no CDN.
//!
//! Access: see [`crate::auth`]. Serve the router with connection info so failed logins are
//! counted per client address:
//! `axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())`.
//! `/healthz`, `/readyz` and `/metrics` are not part of this router: merge the ops router
//! beside it and they stay open.

mod filter;
mod heatmap;
pub mod html;
mod live;
mod login;
mod media;
mod overview;
mod pages;
mod unprocessed;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::Reports as _;
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::auth::{Auth, Principal, Role, SessionInfo, bearer_token};
use crate::reports_service::{LiveSource, PresenceStream, ReportsService};
pub use html::escape;
use html::{Viewer, Zone};

/// What the dashboard serves from: the reports, the configuration (time zone, names), the
/// live board and access control.
#[derive(Clone)]
pub struct DashboardState {
    reports: ReportsService,
    config: watch::Receiver<Arc<Snapshot>>,
    live: Option<Arc<dyn LiveSource>>,
    auth: Auth,
    /// Where the media nodes write recordings and voicemail (served under `/media/`).
    media_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for DashboardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardState")
            .field("reports", &self.reports)
            .field("live", &self.live.is_some())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl DashboardState {
    /// Pages over `reports`, with the configuration `config` (the same watch the reports
    /// use), guarded by `auth`. Without [`DashboardState::with_live`] the live board comes
    /// from `reports` (its own live source, if it has one).
    pub fn new(
        reports: ReportsService,
        config: watch::Receiver<Arc<Snapshot>>,
        auth: Auth,
    ) -> Self {
        DashboardState {
            reports,
            config,
            live: None,
            auth,
            media_root: None,
        }
    }

    /// Serves the recordings folder `root` under `/media/` (the links the reports carry when
    /// the reports service has [`ReportsService::with_media_base_url`] `/media`).
    #[must_use]
    pub fn with_media_root(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.media_root = Some(root.into());
        self
    }

    /// Takes the live board from `live`.
    #[must_use]
    pub fn with_live(mut self, live: Arc<dyn LiveSource>) -> Self {
        self.live = Some(live);
        self
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.config.borrow().clone()
    }

    /// The zone times are shown in: the schedules' zone when they all share one (a call
    /// center in one city), UTC otherwise — labelled on every page either way.
    fn zone(&self) -> Zone {
        let snapshot = self.snapshot();
        let mut zones = snapshot.schedules.values();
        match zones.next() {
            Some(first) if zones.all(|s| s.timezone == first.timezone) => Zone {
                tz: first.tz.clone(),
                name: first.timezone.clone(),
            },
            _ => Zone::utc(),
        }
    }

    async fn board(&self) -> Result<pb::LiveBoard, Status> {
        match &self.live {
            Some(live) => live.board(true).await,
            None => self
                .reports
                .live(Request::new(pb::LiveRequest {
                    omit_contacts: true,
                }))
                .await
                .map(tonic::Response::into_inner),
        }
    }

    async fn watch(&self) -> Result<PresenceStream, Status> {
        match &self.live {
            Some(live) => live.watch(true).await,
            None => self
                .reports
                .watch_live(Request::new(pb::LiveRequest {
                    omit_contacts: true,
                }))
                .await
                .map(tonic::Response::into_inner),
        }
    }
}

/// The dashboard's routes (see the module docs).
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/live", get(live::page))
        .route("/live/events", get(live::events))
        .route("/unprocessed", get(unprocessed::page))
        .route("/unprocessed/handle", post(unprocessed::handle))
        .route("/missed", get(pages::missed))
        .route("/agents", get(pages::agents))
        .route("/callbacks", get(pages::callbacks))
        .route("/calls", get(pages::calls))
        .route("/heatmap", get(heatmap::page))
        .route("/heatmap.svg", get(heatmap::svg_file))
        .route("/media/{*path}", get(media::file))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Headers every answer carries: no inline script or style may run (everything comes from
/// `/assets`), the pages cannot be framed (clickjacking a Handle button), and pages with
/// client data are not cached.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             media-src 'self' https: http:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The signed-in user of a request: a browser session (with its CSRF token) or a bearer
/// token (API-style access; no CSRF token needed, since browsers never add that header by
/// themselves). Extracting it answers everybody else: a browser without a session is sent to
/// `/login`, a wrong bearer token gets the login failure page (401), a throttled address 429.
#[derive(Debug, Clone)]
pub(crate) struct User {
    principal: Principal,
    session: Option<SessionInfo>,
}

impl User {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.principal.name,
            role: self.principal.role,
            csrf: self.session.as_ref().map(|s| s.csrf.as_str()),
        }
    }

    fn can_handle(&self) -> bool {
        self.principal.role.allows(Role::Supervisor)
    }

    /// The session's CSRF token for forms (empty with a bearer token, which needs none).
    fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }
}

impl FromRequestParts<DashboardState> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(session) =
            cookie(&parts.headers, state.auth.cookie_name()).and_then(|c| state.auth.session(c))
        {
            return Ok(User {
                principal: session.principal.clone(),
                session: Some(session),
            });
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(bearer_token);
            let ip = client_ip(parts, &state.auth);
            return match state.auth.authenticate(ip, token) {
                Ok(principal) => Ok(User {
                    principal,
                    session: None,
                }),
                Err(denied) => Err(login::denied(state, denied, &next)),
            };
        }
        if parts.method == Method::GET && parts.uri.path() != "/live/events" {
            let to = format!("/login?next={}", html::url_encode(&next));
            return Err(Redirect::to(&to).into_response());
        }
        Err(login::denied(
            state,
            crate::auth::Denied::Unauthenticated,
            &next,
        ))
    }
}

/// A cookie's value from the `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The client's address for the failure throttle.
fn client_ip(parts: &Parts, auth: &Auth) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    auth.client_address(peer, forwarded)
}

/// Whether `next` is a path on this site (not `//evil.example` nor a scheme): where a login
/// or a handling may send the browser back to.
fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    ok.then_some(next)
}

/// Whether a browser request comes from one of our own pages. Browsers say where a request
/// comes from (`Sec-Fetch-Site`, or at least `Origin`); clients that say nothing (curl, the
/// CLI) are not browsers and cannot be tricked into a cross-site request.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// An HTML answer with a status.
fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The HTTP status that fits a failed report call.
fn status_code(s: &Status) -> StatusCode {
    match s.code() {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::FailedPrecondition | tonic::Code::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
