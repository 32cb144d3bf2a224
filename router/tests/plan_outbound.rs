//! `Router.PlanOutbound` over real gRPC on loopback: the plan of an agent's call out from a
//! softphone — the caller ID the number policy gives, the carriers in order, the agent's
//! reservation — and the refusals.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{RouterCore, RouterService, SystemClock};
use tokio::sync::watch;
use tonic::transport::Channel;

/// The demo's call center (its numbers +380441234567 and +380441234568, anna with
/// maxConcurrentCalls 1, a blocklist with +380931110000).
fn demo() -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir)
        .expect("demo")
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(SourceFile {
                path: p.display().to_string(),
                text: std::fs::read_to_string(&p).expect("read"),
            });
        }
    }
    let env = Environment {
        prompts: PromptCatalog::Unchecked,
    };
    load(&files, &env).snapshot.expect("demo loads")
}

/// A router on loopback and its configuration's sender (kept by the test: the router stops
/// following the configuration once it is dropped).
async fn start() -> (RouterClient<Channel>, watch::Sender<Arc<Snapshot>>) {
    let (config, rx) = watch::channel(Arc::new(demo()));
    let core = RouterCore::new(
        rx,
        Arc::new(SystemClock),
        Arc::new(HttpOwnerSource::new().expect("http client")),
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouterService::new(core).into_server())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let client = RouterClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    (client, config)
}

fn ask(call: &str, agent: &str, dialled: &str) -> pb::PlanOutboundRequest {
    pb::PlanOutboundRequest {
        call_id: call.into(),
        agent: agent.into(),
        dialled: dialled.into(),
        node_id: "node-a".into(),
        hold: None,
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
async fn the_caller_id_is_the_number_the_client_called_and_the_agent_is_reserved() {
    let (mut client, _config) = start().await;
    register(&mut client, "anna").await;

    // A client unknown to the router: the first PhoneNumber.
    let plan = client
        .plan_outbound(ask("out-1", "anna", "380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        plan.refused,
        pb::OutboundRefusal::Unspecified as i32,
        "{plan:?}"
    );
    assert_eq!(plan.number, "+380501234567", "digits are normalised");
    assert_eq!(plan.caller_id, "+380441234567");
    assert!(!plan.carriers.is_empty(), "{plan:?}");
    assert!(
        plan.carriers.iter().all(|c| c.ends_with("-trunk")),
        "the number's carriers: {plan:?}"
    );

    // anna (maxConcurrentCalls 1) is now taken: a second call out is refused as busy.
    let busy = client
        .plan_outbound(ask("out-2", "anna", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        busy.refused,
        pb::OutboundRefusal::AgentBusy as i32,
        "{busy:?}"
    );
    client
        .release_agents(pb::ReleaseAgentsRequest {
            call_id: "out-1".into(),
            agents: Vec::new(),
        })
        .await
        .expect("release");

    // The client calls the second line: that is the caller ID they are called back from.
    client
        .plan_call(pb::PlanCallRequest {
            call_id: "in-1".into(),
            number: "+380441234568".into(),
            caller: "+380501234567".into(),
            ..Default::default()
        })
        .await
        .expect("plan call");
    let plan = client
        .plan_outbound(ask("out-3", "anna", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        plan.refused,
        pb::OutboundRefusal::Unspecified as i32,
        "{plan:?}"
    );
    assert_eq!(plan.caller_id, "+380441234568");
}

#[tokio::test]
async fn refusals_say_why() {
    let (mut client, _config) = start().await;
    register(&mut client, "bohdan").await;
    let refused = |plan: &pb::PlanOutboundResponse| {
        pb::OutboundRefusal::try_from(plan.refused).expect("known refusal")
    };

    let invalid = client
        .plan_outbound(ask("x-1", "bohdan", "101"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(refused(&invalid), pb::OutboundRefusal::InvalidNumber);
    let blocked = client
        .plan_outbound(ask("x-2", "bohdan", "+380931110000"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(refused(&blocked), pb::OutboundRefusal::BlockedDestination);
    assert!(blocked.reason.contains("blocklisted"), "{blocked:?}");

    // Logged out, or never registered (taras): no call out.
    client
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "bohdan".into(),
            state: pb::AgentState::Offline as i32,
            ..Default::default()
        })
        .await
        .expect("logs out");
    let offline = client
        .plan_outbound(ask("x-3", "bohdan", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(refused(&offline), pb::OutboundRefusal::AgentUnavailable);
    let unregistered = client
        .plan_outbound(ask("x-5", "taras", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        refused(&unregistered),
        pb::OutboundRefusal::AgentUnavailable
    );
    assert!(
        unregistered.reason.contains("not registered"),
        "{unregistered:?}"
    );

    let unknown = client
        .plan_outbound(ask("x-4", "nobody", "+380501234567"))
        .await
        .expect_err("unknown agent");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// `agent`'s line on the live board.
async fn line(client: &mut RouterClient<Channel>, agent: &str) -> pb::AgentPresence {
    client
        .get_live_board(pb::GetLiveBoardRequest::default())
        .await
        .expect("live board")
        .into_inner()
        .agents
        .into_iter()
        .find(|a| a.agent == agent)
        .expect("the agent's line")
}

fn state(line: &pb::AgentPresence) -> pb::AgentState {
    pb::AgentState::try_from(line.state).expect("known state")
}

/// What the media node reports for an agent's call out: the client answered, later the call
/// ended (the node releases the call's agents).
async fn talk_and_hang_up(client: &mut RouterClient<Channel>, call: &str, agent: &str) {
    client
        .report_leg_event(pb::LegEvent {
            call_id: call.into(),
            leg_id: "softphone".into(),
            agent: agent.into(),
            node_id: "node-a".into(),
            kind: pb::LegEventKind::Answered as i32,
            ..Default::default()
        })
        .await
        .expect("answered");
    let on_call = line(client, agent).await;
    assert_eq!(state(&on_call), pb::AgentState::OnCall, "{on_call:?}");
    // Busy to offers meanwhile.
    let offer = client
        .reserve_agents(pb::ReserveAgentsRequest {
            call_id: format!("in-{call}"),
            agents: vec![agent.into()],
            ..Default::default()
        })
        .await
        .expect("reserve")
        .into_inner();
    assert!(offer.reserved.is_empty(), "{offer:?}");
    client
        .release_agents(pb::ReleaseAgentsRequest {
            call_id: call.into(),
            agents: Vec::new(),
        })
        .await
        .expect("release");
}

#[tokio::test]
async fn wrap_up_dnd_and_away_dial_out_and_come_back_as_they_were() {
    let (mut client, _config) = start().await;
    register(&mut client, "taras").await;
    let go = pb::OutboundRefusal::Unspecified as i32;

    // taras answers a support queue call (wrap-up 15 s) and calls a client back meanwhile.
    for kind in [pb::LegEventKind::Answered, pb::LegEventKind::Ended] {
        client
            .report_leg_event(pb::LegEvent {
                call_id: "in-1".into(),
                leg_id: "leg-1".into(),
                agent: "taras".into(),
                node_id: "node-a".into(),
                kind: kind as i32,
                queue: "support".into(),
                ..Default::default()
            })
            .await
            .expect("queue call");
    }
    assert_eq!(
        state(&line(&mut client, "taras").await),
        pb::AgentState::WrapUp
    );
    let plan = client
        .plan_outbound(ask("out-1", "taras", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(plan.refused, go, "wrap-up dials out: {plan:?}");
    talk_and_hang_up(&mut client, "out-1", "taras").await;
    let back = line(&mut client, "taras").await;
    assert_eq!(
        state(&back),
        pb::AgentState::WrapUp,
        "the wrap-up still runs: {back:?}"
    );

    // DND stays DND.
    client
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "taras".into(),
            state: pb::AgentState::Dnd as i32,
            ..Default::default()
        })
        .await
        .expect("dnd");
    let plan = client
        .plan_outbound(ask("out-2", "taras", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(plan.refused, go, "DND dials out: {plan:?}");
    talk_and_hang_up(&mut client, "out-2", "taras").await;
    assert_eq!(
        state(&line(&mut client, "taras").await),
        pb::AgentState::Dnd
    );

    // Away keeps its label.
    client
        .set_agent_state(pb::SetAgentStateRequest {
            agent: "taras".into(),
            state: pb::AgentState::Away as i32,
            away_label: "lunch".into(),
            ..Default::default()
        })
        .await
        .expect("away");
    let plan = client
        .plan_outbound(ask("out-3", "taras", "+380501234567"))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(plan.refused, go, "away dials out: {plan:?}");
    talk_and_hang_up(&mut client, "out-3", "taras").await;
    let back = line(&mut client, "taras").await;
    assert_eq!(state(&back), pb::AgentState::Away, "{back:?}");
    assert_eq!(back.away_label, "lunch", "{back:?}");
}
