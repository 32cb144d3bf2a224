//! Recordings over HTTP: a recorded call through standalone mode, then its `recording_url` in
//! the call log is fetched from the dashboard's `/media/` route — only with a credential, only
//! WAV files inside the recordings folder, with byte ranges for a player that seeks.

use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

mod support;
use support::reports_client;
use support::sipp::{ensure_sipp, sipp};
use support::up::{config_of, e2e_manifests, register_contact, start};

/// The e2e call center with full recording on its line.
fn config() -> tempfile::TempDir {
    let text = e2e_manifests();
    let recorded = text.replace(
        "  routes: {open: sales}",
        "  routes: {open: sales}\n  recording: {mode: full}",
    );
    assert_ne!(recorded, text, "recording switched on");
    config_of(&recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_served_to_signed_in_users_only() {
    ensure_sipp();
    let config = config();
    let data = tempfile::tempdir().expect("tempdir");
    let (running, shutdown) = start(config.path(), data.path()).await;
    let url = format!("http://{}", running.grpc);
    let http = format!("http://{}", running.http);

    let mut anna = sipp(
        "media-node/tests/sipp/agent_answer.xml",
        &["-rtp_echo".into()],
    );
    anna.ready().await;
    let mut router = RouterClient::connect(url.clone()).await.expect("router");
    register_contact(&mut router, "anna", anna.port).await;
    let carrier = sipp(
        "tests/sipp/carrier_call_audio.xml",
        &[
            "-s".into(),
            "+380441230000".into(),
            running.sip_udp[0].to_string(),
        ],
    );
    let (c, a) = tokio::join!(carrier.outcome(), anna.outcome());
    c.expect("the carrier's call went through");
    a.expect("anna answered");

    let mut reports = reports_client(&url, data.path()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let link = loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        if let Some(row) = calls.iter().find(|r| !r.recording_url.is_empty()) {
            break row.recording_url.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recording in the call log: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        link.starts_with("/media/") && link.ends_with(".wav"),
        "{link}"
    );

    let token = std::fs::read_to_string(data.path().join("supervisor.token"))
        .expect("supervisor.token")
        .trim()
        .to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let on_disk = std::fs::read(
        data.path()
            .join("recordings")
            .join(link.trim_start_matches("/media/")),
    )
    .expect("the recording is on disk where the link says");
    assert!(on_disk.len() > 44, "more than a WAV header");

    // Signed in: the whole file, then a range of it.
    let whole = client
        .get(format!("{http}{link}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET recording");
    assert_eq!(whole.status(), 200);
    assert_eq!(
        whole.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"audio/wav"[..])
    );
    let body = whole.bytes().await.expect("body");
    assert_eq!(body.as_ref(), on_disk.as_slice(), "the file as written");
    assert_eq!(&body[..4], b"RIFF");
    let part = client
        .get(format!("{http}{link}"))
        .bearer_auth(&token)
        .header("range", "bytes=4-11")
        .send()
        .await
        .expect("GET range");
    assert_eq!(part.status(), 206);
    let total = on_disk.len();
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes 4-11/{total}").as_str())
    );
    assert_eq!(
        part.bytes().await.expect("range body").as_ref(),
        &on_disk[4..12]
    );

    // Not signed in: sent to the login page, nothing served.
    let anonymous = client
        .get(format!("{http}{link}"))
        .send()
        .await
        .expect("GET without credential");
    assert_eq!(anonymous.status(), 303, "to the login page");
    // A wrong token gets the same refusal as any wrong credential.
    let wrong = client
        .get(format!("{http}{link}"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("GET with a wrong token");
    assert!(wrong.status().is_client_error(), "{}", wrong.status());
    // Nothing outside the recordings folder, nothing but WAV.
    std::fs::write(data.path().join("outside.wav"), b"RIFF").expect("write");
    for path in [
        "/media/../outside.wav",
        "/media/%2e%2e/outside.wav",
        "/media/calls/../../outside.wav",
        "/media/../supervisor.token",
    ] {
        let r = client
            .get(format!("{http}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET traversal");
        assert_eq!(r.status(), 404, "{path}");
    }

    shutdown.fire();
    running.join().await;
}
