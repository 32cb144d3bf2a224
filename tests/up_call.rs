//! A real SIP call through standalone mode, end to end: SIPp as the carrier → the media node →
//! the router's plan → two SIPp agents rung at once, one answers → events through the spool →
//! the reporter's store → the `calls` and `agents` reports over gRPC.

use std::path::Path;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

mod support;
use support::reports_client;
use support::sipp::{ensure_sipp, sipp};
use support::up::{register_contact, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_standalone_mode_reaches_the_reports() {
    ensure_sipp();
    let data = tempfile::tempdir().expect("tempdir");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e");
    let (running, shutdown) = start(&config, data.path()).await;
    let sip = running.sip_udp[0];
    let url = format!("http://{}", running.grpc);

    let mut anna = sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    let mut bohdan = sipp("media-node/tests/sipp/agent_ring.xml", &[]);
    anna.ready().await;
    bohdan.ready().await;
    let mut router = RouterClient::connect(url.clone()).await.expect("router");
    for (agent, port) in [("anna", anna.port), ("bohdan", bohdan.port)] {
        register_contact(&mut router, agent, port).await;
    }
    let carrier = sipp(
        "media-node/tests/sipp/carrier_call.xml",
        &["-s".into(), "+380441230000".into(), sip.to_string()],
    );
    let (c, a, b) = tokio::join!(carrier.success(), anna.success(), bohdan.success());
    assert!(c, "the carrier's call succeeded (INVITE → 200 → ACK → BYE)");
    assert!(a, "anna answered");
    assert!(b, "bohdan rang and got CANCEL");

    // The call reaches the reporter through the spool and the Ingest service.
    let mut reports = reports_client(&url, data.path()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner();
        if let Some(row) = calls.calls.into_iter().find(|r| r.status == "answered") {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answered call never reached the reports"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.caller, "+380501234567");
    assert_eq!(row.number, "+380441230000");
    let agents = reports
        .agents(pb::AgentsRequest::default())
        .await
        .expect("agents report")
        .into_inner();
    let anna_row = agents
        .agents
        .iter()
        .find(|r| r.agent == "anna")
        .expect("anna's row");
    assert_eq!(
        (anna_row.offered, anna_row.answered, anna_row.missed),
        (1, 1, 0)
    );
    // Bohdan rang, but a colleague answered: offered, not missed.
    let bohdan_row = agents
        .agents
        .iter()
        .find(|r| r.agent == "bohdan")
        .expect("bohdan's row");
    assert_eq!((bohdan_row.offered, bohdan_row.missed), (1, 0));

    shutdown.fire();
    running.join().await;
}
