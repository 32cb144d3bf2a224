//! A router restart loses nothing that matters: agents' choices, registrations and owners
//! come back from the state file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_server::Router as _;
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{Clock, RouterCore, RouterService};
use jiff::Timestamp;
use tokio::sync::watch;
use tonic::Request;

struct TestClock(Mutex<Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn demo() -> dialtone_model::Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let files: Vec<SourceFile> = std::fs::read_dir(&dir)
        .expect("demo")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| SourceFile {
            text: std::fs::read_to_string(&p).expect("read"),
            path: p.display().to_string(),
        })
        .collect();
    load(
        &files,
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    )
    .snapshot
    .expect("demo loads")
}

type Config = watch::Sender<Arc<dialtone_model::Snapshot>>;

fn router(file: &Path, clock: Arc<TestClock>) -> (Arc<RouterCore>, RouterService, Config) {
    let (config, rx) = watch::channel(Arc::new(demo()));
    let core = RouterCore::with_state_file(
        rx,
        clock,
        Arc::new(HttpOwnerSource::new().expect("client")),
        None,
        file.to_owned(),
    );
    let svc = RouterService::new(core.clone());
    (core, svc, config)
}

async fn board_state(svc: &RouterService, agent: &str) -> (i32, String) {
    let board = svc
        .get_live_board(Request::new(pb::GetLiveBoardRequest::default()))
        .await
        .expect("board")
        .into_inner();
    let a = board
        .agents
        .into_iter()
        .find(|a| a.agent == agent)
        .expect("agent");
    (a.state, a.away_label)
}

#[tokio::test]
async fn choices_registrations_and_owners_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("router-state.json");
    let clock = Arc::new(TestClock(Mutex::new(
        "2026-11-23T08:00:00Z".parse().expect("t"),
    )));
    let (core, svc, _config) = router(&file, clock.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let persister = tokio::spawn(core.clone().run_persister(stop_rx));

    for agent in ["anna", "taras"] {
        svc.register_contact(Request::new(pb::RegisterContactRequest {
            agent: agent.into(),
            uri: format!("sip:{agent}@127.0.0.1:5070"),
            expires: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            node_id: "node-a".into(),
            ..Default::default()
        }))
        .await
        .expect("register");
    }
    svc.set_agent_state(Request::new(pb::SetAgentStateRequest {
        agent: "anna".into(),
        state: pb::AgentState::Away as i32,
        away_label: "lunch".into(),
        set_by: "anna".into(),
    }))
    .await
    .expect("away");
    svc.set_owner(Request::new(pb::SetOwnerRequest {
        client: "+380501234567".into(),
        agent: "olena".into(),
        set_by: "crm-import".into(),
    }))
    .await
    .expect("owner");
    // Shutdown writes the final state.
    stop_tx.send_replace(true);
    persister.await.expect("persister");
    assert!(file.exists());
    drop(svc);
    drop(core);

    // A new router on the same file, two minutes later.
    *clock.0.lock().expect("clock") = "2026-11-23T08:02:00Z".parse().expect("t");
    let (_core, svc, _config) = router(&file, clock.clone());
    assert_eq!(
        board_state(&svc, "anna").await,
        (pb::AgentState::Away as i32, "lunch".to_owned())
    );
    assert_eq!(
        board_state(&svc, "taras").await.0,
        pb::AgentState::Available as i32
    );
    let owner = svc
        .get_owner(Request::new(pb::GetOwnerRequest {
            client: "+380501234567".into(),
            ..Default::default()
        }))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(owner.agent, "olena");
    // The restored registration still expires when it would have.
    *clock.0.lock().expect("clock") = "2026-11-23T08:11:00Z".parse().expect("t");
    assert_eq!(
        board_state(&svc, "taras").await.0,
        pb::AgentState::Offline as i32
    );
}

#[tokio::test]
async fn a_corrupt_state_file_is_ignored_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("router-state.json");
    std::fs::write(&file, "{ not json").expect("write");
    let clock = Arc::new(TestClock(Mutex::new(
        "2026-11-23T08:00:00Z".parse().expect("t"),
    )));
    let (_core, svc, _config) = router(&file, clock);
    assert_eq!(
        board_state(&svc, "anna").await.0,
        pb::AgentState::Offline as i32
    );
}
