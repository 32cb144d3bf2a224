//! The web dashboard and its access control (issue 10), over a real server on loopback:
//!
//! - HTTP level (this file, reqwest): login answers every wrong token alike and slows down
//!   repeated failures; a right one sets an `HttpOnly`, `SameSite=Strict` session cookie; the
//!   overview has its four sections; a handling without the CSRF token, or by a viewer, is
//!   refused with 403; a supervisor's handling shows in the processed view with its reason and
//!   who; names are escaped; the pages answer their filters; `/live/events` streams changes;
//!   the gRPC guard applies the same rules to the client-facing API.
//! - In headless Chromium (`browser/scenarios.rs`, WebDriver): login wrong then right, the
//!   live board following a state change without a reload, handling a group, and a screenshot
//!   of every page into `docs/screenshots/`.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test with the error

mod support;

#[path = "corpus/day.rs"]
mod day;

#[path = "browser/data.rs"]
mod data;
#[path = "browser/fixture.rs"]
mod fixture;
#[path = "browser/scenarios.rs"]
mod scenarios;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use dialtone_proto::v1::{self as pb, AgentState};
use fixture::{Data, Fixture, SUPERVISOR_TOKEN, VIEWER_TOKEN, http, presence};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// `application/x-www-form-urlencoded` bodies (reqwest is built without its `form` feature).
trait FormBody {
    fn form_body<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
            .collect::<Vec<_>>()
            .join("&");
        self.header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
    }
}

/// Signs in with `token`; the `Cookie` header value to send.
async fn login(fx: &Fixture, token: &str) -> String {
    let res = http()
        .post(fx.url("/login"))
        .form_body(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "login with a good token"
    );
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// GET with a cookie: status and body.
async fn get(fx: &Fixture, path: &str, cookie: &str) -> (StatusCode, String) {
    let res = http()
        .get(fx.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn handle(fx: &Fixture, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(fx.url("/unprocessed/handle"))
        .header(COOKIE, cookie)
        .form_body(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_every_wrong_token_alike_and_a_right_one_gets_a_session() {
    let fx = Fixture::start(Data::Day).await;
    let mut answers = Vec::new();
    let altered = format!("{}0", &SUPERVISOR_TOKEN[..SUPERVISOR_TOKEN.len() - 1]);
    for token in ["not-a-token-at-all-0000", altered.as_str(), ""] {
        let res = http()
            .post(fx.url("/login"))
            .form_body(&[("token", token), ("next", "/")])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let cookie = res.headers().get(SET_COOKIE).cloned();
        let auth = res.headers().get("www-authenticate").cloned();
        answers.push((status, cookie, auth, res.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers[0].1.is_none(), "no cookie for a wrong token");
    assert!(answers[0].3.contains("That token was not accepted."));
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "unknown, altered and empty tokens get one answer"
    );

    let res = http()
        .post(fx.url("/login"))
        .form_body(&[("token", SUPERVISOR_TOKEN), ("next", "/agents")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/agents");
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("dialtone_session="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain http on loopback: not Secure"
    );

    // A login posted from another site is refused.
    let res = http()
        .post(fx.url("/login"))
        .header("origin", "https://evil.example")
        .form_body(&[("token", SUPERVISOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(SET_COOKIE).is_none());

    // An open redirect is not followed.
    let res = http()
        .post(fx.url("/login"))
        .form_body(&[("token", SUPERVISOR_TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_slowed_down_even_for_the_right_token() {
    let fx = Fixture::start(Data::Day).await;
    for i in 1..=5 {
        let res = http()
            .post(fx.url("/login"))
            .form_body(&[("token", format!("guess-number-{i:04}-xxxxxx"))])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = http()
        .post(fx.url("/login"))
        .form_body(&[("token", SUPERVISOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry}");
    // Bearer attempts count against the same address.
    let res = http()
        .get(fx.url("/agents"))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = http()
        .get(fx.url("/agents"))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "after the block, a good token works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_has_its_sections_and_strangers_are_sent_to_login() {
    let fx = Fixture::start(Data::Day).await;
    let res = http()
        .get(fx.url("/calls?status=missed"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        "/login?next=%2Fcalls%3Fstatus%3Dmissed"
    );
    let res = http().get(fx.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "/healthz needs no credential");
    let res = http().get(fx.url("/live/events")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let cookie = login(&fx, SUPERVISOR_TOKEN).await;
    let (status, page) = get(&fx, "/", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    for section in [
        "id=\"live\"",
        "id=\"unprocessed\"",
        "id=\"agents\"",
        "id=\"heatmap\"",
        "<svg",
        "id=\"agent-anna\"",
        "id=\"group-c07\"",
        "action=\"/unprocessed/handle\"",
        "name=\"viewport\"",
        "Times in <b>Europe/Kyiv</b>",
    ] {
        assert!(page.contains(section), "the overview lacks {section}");
    }
    // Bearer access for API-style clients; a wrong one gets the login failure page.
    let res = http()
        .get(fx.url("/agents"))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut wrong = Vec::new();
    for token in ["unknown-token-000000000", &VIEWER_TOKEN[1..]] {
        let res = http()
            .get(fx.url("/agents"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        wrong.push((res.status(), res.text().await.unwrap()));
    }
    assert_eq!(wrong[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong[0], wrong[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handling_needs_the_csrf_token_and_the_supervisor_role() {
    let fx = Fixture::start(Data::Day).await;
    let sup = login(&fx, SUPERVISOR_TOKEN).await;
    let (_, page) = get(&fx, "/unprocessed", &sup).await;
    let csrf = csrf_of(&page);
    let form = |csrf: &'static str| {
        vec![
            ("group_id", "c07"),
            ("reason", "wrong_number"),
            ("note", "<script>alert(1)</script>"),
            ("back", "/unprocessed"),
            ("csrf", csrf),
        ]
    };
    let res = handle(&fx, &sup, &form("")[..4]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let res = handle(&fx, &sup, &form("00ff")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a wrong CSRF token");
    assert!(res.text().await.unwrap().contains("security token"));

    let viewer = login(&fx, VIEWER_TOKEN).await;
    let (_, vpage) = get(&fx, "/unprocessed", &viewer).await;
    assert!(
        !vpage.contains("action=\"/unprocessed/handle\""),
        "no Handle for a viewer"
    );
    let vcsrf: &'static str = Box::leak(csrf_of(&vpage).into_boxed_str());
    let res = handle(&fx, &viewer, &form(vcsrf)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let text = res.text().await.unwrap();
    assert!(text.contains("ivan has the viewer role"), "{text}");
    // Another session's token does not pass either.
    let res = handle(&fx, &sup, &form(vcsrf)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let (_, processed) = get(&fx, "/unprocessed?view=processed", &sup).await;
    assert!(
        !processed.contains("id=\"group-c07\""),
        "nothing was handled yet"
    );
    let good: &'static str = Box::leak(csrf.into_boxed_str());
    let res = handle(&fx, &sup, &form(good)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/unprocessed?handled=c07");
    let (_, open) = get(&fx, "/unprocessed", &sup).await;
    assert!(!open.contains("id=\"group-c07\""));
    let (_, processed) = get(&fx, "/unprocessed?view=processed", &sup).await;
    let row = processed.split("id=\"group-c07\"").nth(1).unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("handled: <code>wrong_number</code>"), "{row}");
    assert!(
        row.contains("<span class=\"by\">supervisor</span>"),
        "{row}"
    );
    assert!(
        row.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the note is escaped"
    );
    assert!(
        !processed.contains("<script>alert"),
        "no raw script anywhere"
    );
    // Handling it again: the group is closed.
    let res = handle(&fx, &sup, &form(good)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_escaped_everywhere() {
    let mut board = fixture::demo_board();
    board.agents[0].display_name = "<script>alert('x')</script>".into();
    board.agents[0].away_label = "\"><img src=x onerror=alert(1)>".into();
    board.agents[0].state = AgentState::Away as i32;
    let fx = Fixture::start_with(Data::Day, board).await;
    let cookie = login(&fx, SUPERVISOR_TOKEN).await;
    for path in ["/", "/live"] {
        let (_, page) = get(&fx, path, &cookie).await;
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{path}"
        );
        assert!(page.contains("away: &quot;&gt;&lt;img src=x"), "{path}");
        assert!(
            !page.contains("<script>alert") && !page.contains("<img src=x"),
            "{path}"
        );
    }
    let (status, page) = get(&fx, "/missed?agent=%3Cscript%3E", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"&lt;script&gt;\"") && !page.contains("<script>\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_pages_answer_their_filters() {
    let fx = Fixture::start(Data::Day).await;
    let cookie = login(&fx, VIEWER_TOKEN).await;
    let (status, page) = get(&fx, "/missed?reason=not_answered", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<b>7</b> missed calls"),
        "c14b c16 c15 c14a c11 c08 c07"
    );
    assert!(!page.contains("<code>abandoned_short</code>"));
    let (_, page) = get(
        &fx,
        "/missed?from=2026-11-23&to=2026-11-23&agent=anna",
        &cookie,
    )
    .await;
    assert!(page.contains("<code>abandoned_short</code>"));
    assert!(
        !page.contains("<code>outside_business_hours</code>"),
        "olena's, not anna's"
    );
    let (status, page) = get(&fx, "/missed?from=yesterday", &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("is not a date"));

    let (_, page) = get(&fx, "/agents?sort=miss_rate&dir=desc", &cookie).await;
    let order: Vec<usize> = ["Bohdan", "Anna", "Olena"]
        .iter()
        .map(|n| page.find(&format!("<th scope=\"row\">{n}")).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "highest miss rate first"
    );
    assert!(page.contains("rate bad"), "a high miss rate is highlighted");
    assert!(page.contains("aria-sort=\"descending\""));

    let (_, page) = get(&fx, "/calls", &cookie).await;
    assert!(page.contains("<audio controls preload=\"none\" src=\"/media/recordings/c09.wav\">"));
    assert!(
        page.contains("status red")
            && page.contains("status yellow")
            && page.contains("status green")
    );
    let (_, page) = get(&fx, "/callbacks", &cookie).await;
    assert!(page.contains("<meter") && page.contains("<b>10m 00s</b>"));
    let (_, page) = get(&fx, "/heatmap", &cookie).await;
    assert!(page.contains("<svg") && page.contains("Blind zones"));
    let res = http()
        .get(fx.url("/heatmap.svg"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let (_, page) = get(&fx, "/unprocessed?view=processed", &cookie).await;
    assert!(page.contains("id=\"group-c14a\"") && page.contains("silent line"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_stream_the_boards_changes() {
    let fx = Fixture::start(Data::Day).await;
    let cookie = login(&fx, VIEWER_TOKEN).await;
    let mut res = http()
        .get(fx.url("/live/events"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let read_until = async |res: &mut reqwest::Response, seen: &mut String, what: &str| {
        while !seen.contains(what) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), res.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until(&mut res, &mut seen, "event: board").await;
    fx.live.set_agent(presence(
        "anna",
        "Anna Kovalenko",
        "101",
        AgentState::Ringing,
        fixture::NOW,
    ));
    read_until(&mut res, &mut seen, "event: agent").await;
    read_until(&mut res, &mut seen, "\n\n").await;
    let data = seen.split("event: agent\ndata: ").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(data.lines().next().unwrap()).unwrap();
    assert_eq!(json["id"], "agent-anna");
    assert!(json["html"].as_str().unwrap().contains("st-ringing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_guard_checks_credentials_and_roles() {
    use dialtone_proto::v1::reports_client::ReportsClient;
    use dialtone_reporter::reports_service::ReportsService;
    use tokio::sync::watch;

    let fx = Fixture::start(Data::Day).await;
    let (_tx, config) = watch::channel(std::sync::Arc::new(support::reporter::demo_snapshot()));
    let now = support::t(fixture::NOW);
    let reports = ReportsService::new(fx.store.clone(), config).with_clock(move || now);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guarded = fx.auth.grpc_guard(reports.into_server());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(guarded)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let with = |token: &str| {
        let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        ReportsClient::with_interceptor(channel.clone(), move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        })
    };
    let mut answers = Vec::new();
    for token in ["nobody-has-this-token", &SUPERVISOR_TOKEN[2..]] {
        let e = with(token)
            .agents(pb::AgentsRequest::default())
            .await
            .unwrap_err();
        answers.push((e.code(), e.message().to_owned()));
    }
    let e = ReportsClient::new(channel.clone())
        .agents(pb::AgentsRequest::default())
        .await
        .unwrap_err();
    answers.push((e.code(), e.message().to_owned()));
    assert_eq!(
        answers[0],
        (
            tonic::Code::Unauthenticated,
            "missing or invalid credential".into()
        )
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    assert!(
        with(VIEWER_TOKEN)
            .agents(pb::AgentsRequest::default())
            .await
            .is_ok()
    );
    let handle = pb::HandleGroupRequest {
        client: day::client("07"),
        reason: "duplicate".into(),
        ..Default::default()
    };
    let e = with(VIEWER_TOKEN)
        .handle_group(handle.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let group = with(SUPERVISOR_TOKEN)
        .handle_group(handle)
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(
        group.processed.unwrap().by,
        "supervisor",
        "the caller's name is the default by"
    );
}
