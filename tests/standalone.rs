//! Standalone mode wired end to end in one process: the router's agent state changes reach
//! the reporter's store, the reporter's live board comes from the router, and `dialtone up`
//! as a process refuses broken manifests with `path:line` errors.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dialtone::shutdown::Shutdown;
use dialtone::standalone::{self, Settings};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_client::ReportsClient;

mod support;
use dialtone_proto::v1::router_client::RouterClient;
use support::reports_client;

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn agent_state_changes_reach_the_reporter_and_the_live_board() {
    let data = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        config: Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo"),
        data: data.path().to_owned(),
        database_url: None,
        grpc: any_port(),
        http: any_port(),
        sip: Some(any_port()),
    };
    let shutdown = Shutdown::new();
    let running = standalone::start(&settings, shutdown.clone())
        .await
        .expect("standalone starts on the demo");
    assert!(
        running.token_file.exists(),
        "supervisor.token written on first start"
    );
    let url = format!("http://{}", running.grpc);
    let mut router = RouterClient::connect(url.clone()).await.expect("router");
    router
        .register_contact(pb::RegisterContactRequest {
            agent: "anna".into(),
            uri: "sip:anna@127.0.0.1:5070".into(),
            expires: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            node_id: "test".into(),
            ..Default::default()
        })
        .await
        .expect("register");
    router
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "anna".into(),
            state: pb::AgentState::Dnd as i32,
            ..Default::default()
        })
        .await
        .expect("dnd");

    // offline → available → dnd: both changes are stored by the reporter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let states = running
            .store
            .agent_states(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX)
            .await
            .expect("query");
        let anna: Vec<_> = states.iter().filter(|s| s.agent == "anna").collect();
        if anna.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent states never reached the store: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The reporter's live board is the router's.
    let mut reports = reports_client(&url, data.path()).await;
    let board = reports
        .live(pb::LiveRequest::default())
        .await
        .expect("live")
        .into_inner();
    let anna = board
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .expect("anna");
    assert_eq!(anna.state, pb::AgentState::Dnd as i32);
    // Without the credential, the client-facing API answers the same whatever is wrong.
    let mut anonymous = ReportsClient::connect(url.clone()).await.expect("connect");
    let refused = anonymous
        .live(pb::LiveRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    shutdown.fire();
    running.join().await;
}

#[test]
fn up_refuses_broken_manifests_with_every_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("bad.yaml"),
        "apiVersion: dialtone.dev/v1alpha1\nkind: Schedule\nmetadata: {name: s}\nspec:\n  timezone: Mars/Olympus\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "up",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(tmp.path())
        .arg("--data")
        .arg(tmp.path().join("data"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5: Schedule/s: spec.timezone"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
