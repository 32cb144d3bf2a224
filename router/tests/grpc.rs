//! The router over real gRPC on loopback, with a real tonic client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{Clock, RouterCore, RouterService};
use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

struct TestClock(Mutex<Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn snapshot_with_crm(crm_url: &str) -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir)
        .expect("demo")
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&p)
                .expect("read")
                .replace("https://crm.example.com/hooks/telephony", crm_url);
            files.push(SourceFile {
                path: p.display().to_string(),
                text,
            });
        }
    }
    let report = load(
        &files,
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    );
    report.snapshot.expect("demo loads")
}

struct Router {
    client: RouterClient<Channel>,
    clock: Arc<TestClock>,
    changes: mpsc::UnboundedReceiver<dialtone_router::presence::StateChange>,
    config: watch::Sender<Arc<Snapshot>>,
}

/// Monday 2026-11-23 10:00 in Kyiv.
const MONDAY_10: &str = "2026-11-23T08:00:00Z";

async fn start(crm_url: &str) -> Router {
    let (config, rx) = watch::channel(Arc::new(snapshot_with_crm(crm_url)));
    let clock = Arc::new(TestClock(Mutex::new(MONDAY_10.parse().expect("time"))));
    let (tx, changes) = mpsc::unbounded_channel();
    let core = RouterCore::new(
        rx,
        clock.clone(),
        Arc::new(HttpOwnerSource::new().expect("http client")),
        Some(tx),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(core.clone().run_timers(stop_rx));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouterService::new(core).into_server())
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    let client = RouterClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    Router {
        client,
        clock,
        changes,
        config,
    }
}

fn plan_of(resp: pb::PlanCallResponse) -> pb::CallPlan {
    match resp.outcome {
        Some(pb::plan_call_response::Outcome::Plan(p)) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn rejection_of(resp: pb::PlanCallResponse) -> pb::Rejection {
    match resp.outcome {
        Some(pb::plan_call_response::Outcome::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn register(client: &mut RouterClient<Channel>, agent: &str) {
    client
        .register_contact(pb::RegisterContactRequest {
            agent: agent.into(),
            uri: format!("sip:{agent}@127.0.0.1:5070"),
            expires: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            node_id: "node-a".into(),
            ..Default::default()
        })
        .await
        .expect("register");
}

#[tokio::test]
async fn plans_rejections_and_explanations() {
    let mut r = start("http://127.0.0.1:9/none").await;
    let plan = plan_of(
        r.client
            .plan_call(pb::PlanCallRequest {
                call_id: "c1".into(),
                number: "+380441234567".into(),
                caller: "+380501234567".into(),
                ..Default::default()
            })
            .await
            .expect("plan")
            .into_inner(),
    );
    assert_eq!(plan.scheme, "main-menu");
    assert_eq!(plan.welcome_prompt, "welcome");
    let schedule = plan.schedule.expect("schedule");
    assert_eq!(schedule.state, pb::ScheduleState::Open as i32);
    assert!(plan.schemes.contains_key("sales"), "menu option 1 resolved");
    assert!(
        plan.queues.contains_key("support"),
        "menu option 2 resolved"
    );

    let blocked = rejection_of(
        r.client
            .plan_call(pb::PlanCallRequest {
                call_id: "c2".into(),
                number: "+380441234567".into(),
                caller: "+88216000000".into(),
                ..Default::default()
            })
            .await
            .expect("plan")
            .into_inner(),
    );
    assert_eq!(blocked.kind, pb::RejectKind::Blocked as i32);
    assert_eq!(blocked.reason, "satellite numbers, never a client");

    let unknown = rejection_of(
        r.client
            .plan_call(pb::PlanCallRequest {
                call_id: "c3".into(),
                number: "+380449999999".into(),
                ..Default::default()
            })
            .await
            .expect("plan")
            .into_inner(),
    );
    assert_eq!(unknown.kind, pb::RejectKind::NotFound as i32);

    // Christmas, explained.
    let explained = r
        .client
        .explain_route(pb::ExplainRouteRequest {
            number: "+380441234568".into(),
            caller: "+380501234567".into(),
            at: Some(prost_types::Timestamp {
                seconds: "2026-12-25T10:00:00Z"
                    .parse::<Timestamp>()
                    .expect("time")
                    .as_second(),
                nanos: 0,
            }),
        })
        .await
        .expect("explain")
        .into_inner();
    let text = explained.notes.join("\n");
    assert!(text.contains("after-hours"), "{text}");
    assert!(text.to_lowercase().contains("holiday"), "{text}");
    let p = plan_of(explained.result.expect("result"));
    assert_eq!(p.schedule.expect("schedule").holiday, "Christmas");

    // Bad input gets a clear error, not a panic.
    let err = r
        .client
        .plan_call(pb::PlanCallRequest::default())
        .await
        .expect_err("empty number");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("number"));
}

#[tokio::test]
async fn presence_changes_are_streamed_and_recorded() {
    let mut r = start("http://127.0.0.1:9/none").await;
    let mut stream = r
        .client
        .watch_presence(pb::WatchPresenceRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = stream.message().await.expect("stream").expect("snapshot");
    let Some(pb::presence_update::Update::Snapshot(board)) = first.update else {
        panic!("the stream starts with a snapshot");
    };
    let anna = board
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .expect("anna");
    assert_eq!(
        anna.state,
        pb::AgentState::Offline as i32,
        "not registered yet"
    );

    register(&mut r.client, "anna").await;
    r.client
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "anna".into(),
            state: pb::AgentState::Away as i32,
            away_label: "lunch".into(),
            set_by: "test".into(),
        })
        .await
        .expect("set state");
    // The stream shows anna available (registered), then away: lunch.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&(pb::AgentState::Away as i32, "lunch".to_owned())) {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("an update within 10 s")
            .expect("stream")
            .expect("open");
        if let Some(pb::presence_update::Update::Agent(a)) = msg.update
            && a.agent == "anna"
        {
            seen.push((a.state, a.away_label));
        }
    }
    assert_eq!(seen[0].0, pb::AgentState::Available as i32, "{seen:?}");
    // Every change also went to the reporter link.
    let mut changes = Vec::new();
    while let Ok(c) = r.changes.try_recv() {
        changes.push(c);
    }
    assert!(
        changes.iter().filter(|c| c.agent == "anna").count() >= 2,
        "{changes:?}"
    );

    // Derived states cannot be set by hand.
    let err = r
        .client
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "anna".into(),
            state: pb::AgentState::OnCall as i32,
            ..Default::default()
        })
        .await
        .expect_err("on_call is derived");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Registration expiry turns the agent offline (the clock moves past the expiry).
    *r.clock.0.lock().expect("clock") = "2026-11-23T08:06:00Z".parse().expect("time");
    let board = r
        .client
        .get_live_board(pb::GetLiveBoardRequest::default())
        .await
        .expect("board")
        .into_inner();
    let anna = board
        .agents
        .iter()
        .find(|a| a.agent == "anna")
        .expect("anna");
    assert_eq!(anna.state, pb::AgentState::Offline as i32);
}

#[tokio::test]
async fn many_nodes_never_over_offer_one_agent() {
    let mut r = start("http://127.0.0.1:9/none").await;
    register(&mut r.client, "taras").await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let mut c = r.client.clone();
        tasks.push(tokio::spawn(async move {
            c.reserve_agents(pb::ReserveAgentsRequest {
                call_id: format!("call-{i}"),
                node_id: format!("node-{}", i % 4),
                agents: vec!["taras".into()],
                hold: None,
            })
            .await
            .expect("reserve")
            .into_inner()
        }));
    }
    let mut reserved = 0;
    for t in tasks {
        reserved += t.await.expect("task").reserved.len();
    }
    assert_eq!(reserved, 1, "taras has maxConcurrentCalls 1");
}

#[tokio::test]
async fn queue_offers_follow_arrival_order() {
    let mut r = start("http://127.0.0.1:9/none").await;
    register(&mut r.client, "taras").await;
    register(&mut r.client, "iryna").await;
    for (call, caller) in [("q1", "+380501111111"), ("q2", "+380502222222")] {
        r.client
            .queue_join(pb::QueueJoinRequest {
                call_id: call.into(),
                queue: "support".into(),
                caller: caller.into(),
                node_id: "node-a".into(),
            })
            .await
            .expect("join");
    }
    let second = r
        .client
        .queue_next_agent(pb::QueueNextAgentRequest {
            call_id: "q2".into(),
            queue: "support".into(),
            node_id: "node-a".into(),
        })
        .await
        .expect("next")
        .into_inner();
    assert!(
        matches!(second.outcome, Some(pb::queue_next_agent_response::Outcome::Wait(ref w)) if w.position == 2),
        "{second:?}"
    );
    let first = r
        .client
        .queue_next_agent(pb::QueueNextAgentRequest {
            call_id: "q1".into(),
            queue: "support".into(),
            node_id: "node-a".into(),
        })
        .await
        .expect("next")
        .into_inner();
    let Some(pb::queue_next_agent_response::Outcome::Offer(offer)) = first.outcome else {
        panic!("the head of the queue gets an offer: {first:?}");
    };
    assert_eq!(offer.targets.len(), 1, "longestIdle offers one agent");
}

#[tokio::test]
async fn owner_lookup_asks_the_crm_and_never_waits_past_the_timeout() {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/fast",
            post(|body: String| async move {
                if body.contains("+380501234567") {
                    axum::Json(serde_json::json!({"agent": "olena"}))
                } else {
                    axum::Json(serde_json::json!({"agent": null}))
                }
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut r = start(&format!("http://{addr}/fast")).await;
    let ask = |client: String| pb::GetOwnerRequest {
        client,
        webhook: "crm".into(),
        timeout: Some(prost_types::Duration {
            seconds: 0,
            nanos: 300_000_000,
        }),
        call_id: "c1".into(),
    };
    let found = r
        .client
        .get_owner(ask("+380501234567".into()))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(found.outcome, pb::OwnerLookupOutcome::Found as i32);
    assert_eq!(found.agent, "olena");
    let none = r
        .client
        .get_owner(ask("+380507654321".into()))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(none.outcome, pb::OwnerLookupOutcome::NotFound as i32);

    // An owner set through the API wins without asking the CRM.
    r.client
        .set_owner(pb::SetOwnerRequest {
            client: "+380507654321".into(),
            agent: "anna".into(),
            set_by: "supervisor".into(),
        })
        .await
        .expect("set owner");
    let stored = r
        .client
        .get_owner(ask("+380507654321".into()))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(stored.agent, "anna");
    assert_eq!(stored.source, "api:supervisor");

    // A hanging CRM gives TIMEOUT, bounded by the request's timeout (not the CRM's 30 s).
    let slow = Arc::new(snapshot_with_crm(&format!("http://{addr}/slow")));
    r.config.send_replace(slow);
    let started = tokio::time::Instant::now();
    let timed_out = r
        .client
        .get_owner(ask("+380509999999".into()))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(timed_out.outcome, pb::OwnerLookupOutcome::Timeout as i32);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "bounded by the timeout"
    );
}
