//! The dashboard in headless Chromium: what a supervisor does, clicked and read in a real
//! browser. One browser at a time (a lock): the machine has two cores.

use std::path::PathBuf;
use std::time::Duration;

use dialtone_proto::v1::AgentState;
use tokio::sync::Mutex;

use crate::fixture::{Data, Fixture, NOW, SUPERVISOR_TOKEN, presence};
use crate::webdriver::Browser;

static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// Signs in through the login form.
async fn sign_in(b: &Browser, fx: &Fixture, token: &str) {
    b.goto(&fx.url("/login")).await;
    let field = b.find("#token").await.expect("the token field");
    b.send_keys(&field, token).await;
    let button = b.find("#sign-in").await.expect("the button");
    b.click(&button).await;
    // The login lands on the overview; wait for it, or a navigation still under way would
    // override the test's next one.
    assert!(
        b.wait_url(&fx.url("/"), Duration::from_secs(5)).await,
        "signed in: {}",
        b.url().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_with_a_wrong_then_a_right_token() {
    let _one = ONE_BROWSER.lock().await;
    let fx = Fixture::start(Data::Day).await;
    let b = Browser::start(1280, 900).await;
    b.goto(&fx.url("/live")).await;
    assert!(
        b.wait_url("/login?next=%2Flive", Duration::from_secs(5))
            .await,
        "a stranger is sent to the login page"
    );
    let field = b.find("#token").await.unwrap();
    b.send_keys(&field, "certainly-not-the-token").await;
    b.click(&b.find("#sign-in").await.unwrap()).await;
    b.wait_text(".banner.error", Duration::from_secs(5), |t| {
        t == "That token was not accepted."
    })
    .await
    .expect("the wrong token is refused");
    assert!(b.url().await.ends_with("/login"), "still on the login page");
    let field = b.find("#token").await.unwrap();
    b.send_keys(&field, SUPERVISOR_TOKEN).await;
    b.click(&b.find("#sign-in").await.unwrap()).await;
    // After a failure the next attempt is slowed down (the throttle), and the redirect is a
    // navigation: wait for it with a deadline.
    assert!(
        b.wait_url("/live", Duration::from_secs(10)).await,
        "back where the user wanted to go"
    );
    assert!(
        b.text_of("#live h2")
            .await
            .unwrap()
            .starts_with("Live board")
    );
    assert_eq!(b.text_of(".who .user").await.unwrap(), "supervisor");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_live_board_follows_a_state_change_without_a_reload() {
    let _one = ONE_BROWSER.lock().await;
    let fx = Fixture::start(Data::Day).await;
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &fx, SUPERVISOR_TOKEN).await;
    b.goto(&fx.url("/live")).await;
    assert_eq!(
        b.text_of("#agent-anna [data-state]").await.unwrap(),
        "available"
    );
    b.wait_text("#live-status", Duration::from_secs(5), |t| t == "live")
        .await
        .expect("the event stream connects");
    // A marker that a reload would wipe.
    b.eval("window.__noReload = 42; return null").await;

    let mut on_call = presence("anna", "Anna Kovalenko", "101", AgentState::OnCall, NOW);
    on_call.active_calls = 1;
    fx.live.set_agent(on_call);
    let took = b
        .wait_text("#agent-anna [data-state]", Duration::from_secs(3), |t| {
            t == "on call"
        })
        .await
        .unwrap_or_else(|last| panic!("the board still says {last:?}"));
    eprintln!("the live board showed the change after {took:?}");
    assert!(took < Duration::from_secs(1), "within a second: {took:?}");

    let mut away = presence("anna", "Anna Kovalenko", "101", AgentState::Away, NOW);
    away.away_label = "meeting".into();
    fx.live.set_agent(away);
    b.wait_text("#agent-anna [data-state]", Duration::from_secs(3), |t| {
        t == "away: meeting"
    })
    .await
    .expect("the away label shows");
    assert_eq!(b.eval("return window.__noReload").await, 42, "no reload");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_handling_a_group_moves_it_to_the_processed_view() {
    let _one = ONE_BROWSER.lock().await;
    let fx = Fixture::start(Data::Day).await;
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &fx, SUPERVISOR_TOKEN).await;
    b.goto(&fx.url("/unprocessed")).await;
    let option = b
        .find("#group-c07 select option[value=\"other\"]")
        .await
        .expect("the Handle form of c07");
    b.click(&option).await;
    let note = b.find("#group-c07 input[name=note]").await.unwrap();
    b.send_keys(&note, "called from the office line").await;
    b.click(&b.find("#group-c07 button").await.unwrap()).await;
    assert!(
        b.wait_url("/unprocessed?handled=c07", Duration::from_secs(5))
            .await,
        "back on the list: {}",
        b.url().await
    );
    b.wait_text(".banner.notice", Duration::from_secs(5), |t| {
        t == "Group c07 handled."
    })
    .await
    .expect("the notice");
    assert!(
        b.find("#group-c07").await.is_err(),
        "gone from the to-do list"
    );

    b.click(
        &b.find("nav.tabs a[href$=\"view=processed\"]")
            .await
            .unwrap(),
    )
    .await;
    assert!(
        b.wait_url("/unprocessed?view=processed", Duration::from_secs(5))
            .await
    );
    b.wait_text("#group-c07 .how", Duration::from_secs(5), |how| {
        how.contains("handled: other") && how.contains("called from the office line")
    })
    .await
    .unwrap_or_else(|last| panic!("the processed view shows {last:?}"));
    assert_eq!(b.text_of("#group-c07 .by").await.unwrap(), "supervisor");
    b.quit().await;
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_screenshots_of_every_page() {
    let _one = ONE_BROWSER.lock().await;
    let fx = Fixture::start(Data::Week).await;
    let b = Browser::start(1366, 900).await;
    let dir = screenshots_dir();
    let shoot = async |name: &str, width: u32| {
        b.fit(width, 5000).await;
        // Let the event stream connect and the durations tick once.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = b.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    };
    b.goto(&fx.url("/login")).await;
    shoot("login", 1366).await;
    sign_in(&b, &fx, SUPERVISOR_TOKEN).await;
    for (name, path) in [
        ("overview", "/"),
        ("live", "/live"),
        ("unprocessed", "/unprocessed"),
        ("unprocessed-processed", "/unprocessed?view=processed"),
        ("missed", "/missed"),
        ("agents", "/agents?sort=miss_rate&dir=desc"),
        ("callbacks", "/callbacks"),
        ("calls", "/calls?from=2026-11-23"),
        ("heatmap", "/heatmap"),
    ] {
        b.goto(&fx.url(path)).await;
        shoot(name, 1366).await;
    }
    b.goto(&fx.url("/")).await;
    shoot("overview-phone", 390).await;
    b.quit().await;
}
