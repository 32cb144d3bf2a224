//! A call arriving on one media node reaches an agent registered through another, with every
//! part in its own process as in a cluster: `dialtone reporter`, `dialtone router` and two
//! `dialtone media-node`s (A and B, sharing the digest nonce secret) on loopback.
//!
//! anna's softphone registers through node B (SIPp, digest; through a relay on 127.0.0.2
//! that drops the SHA-256 challenges SIPp cannot answer, as in the agent dial-out test). The
//! router then holds her contact with node B's id and SIP address. A carrier (SIPp from the
//! Carrier's inbound source) calls the line on node A; node A's plan names anna's contact
//! held by node B, node A rings it (directly: the contact is reachable from node A on
//! loopback), anna answers, the call is bridged and ends; the reporter's call log and agents
//! report show the call answered by anna.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

mod support;
use support::processes::{self, media_node};
use support::reports_client;
use support::sipp::{ensure_sipp, sipp, sipp_at};

/// The e2e manifests (a carrier whose inbound source is 127.0.0.1, anna and bohdan rung
/// together on +380441230000).
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_node_a_rings_an_agent_registered_through_node_b() {
    ensure_sipp();
    let config = config_dir();
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let (reporter_data, router_data, a_data, b_data) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    // The reporter takes the supervisor token it finds in its data folder.
    std::fs::write(
        reporter_data.join("supervisor.token"),
        "cross-node-supervisor\n",
    )
    .expect("token");

    let (_reporter, reporter_url) = processes::reporter(&config, reporter_data);
    let (router, router_addr) =
        processes::router(&config, router_data, "127.0.0.1:0", &reporter_url);
    let router_url = format!("http://{router_addr}");
    let (node_a, sip_a) = media_node(
        "node-a",
        &config,
        &router_url,
        &reporter_url,
        "34600-34699",
        a_data,
    );
    let (node_b, sip_b) = media_node(
        "node-b",
        &config,
        &router_url,
        &reporter_url,
        "34700-34799",
        b_data,
    );
    assert_ne!(sip_a, sip_b);

    // anna's phone (the SIPp that answers), registered through node B by another SIPp.
    let mut anna = sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    anna.ready().await;
    let relay = support::agent_dial::Relay::start(sip_b);
    sipp_at(
        "127.0.0.2",
        "tests/sipp/cross_node_register.xml",
        &[
            "-set".into(),
            "contact_port".into(),
            anna.port.to_string(),
            relay.front.to_string(),
        ],
    )
    .outcome()
    .await
    .unwrap_or_else(|e| {
        panic!(
            "anna's softphone registered through node B (401, then 200): {e}\n{}",
            node_b.logs()
        )
    });

    // The router learns the registration from node B (asynchronously): held by node B, at
    // node B's SIP address.
    let mut router_client = RouterClient::connect(router_url.clone())
        .await
        .expect("router");
    let anna_uri = format!("sip:anna@127.0.0.1:{}", anna.port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let contact = loop {
        let contacts = router_client
            .lookup_contacts(pb::LookupContactsRequest {
                agent: "anna".into(),
                ..Default::default()
            })
            .await
            .expect("lookup contacts")
            .into_inner()
            .contacts;
        if let Some(c) = contacts.into_iter().find(|c| c.uri == anna_uri) {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B never told the router about anna's contact:\n{}",
            node_b.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(contact.node_id, "node-b", "{contact:?}");
    assert_eq!(contact.node_address, sip_b.to_string(), "{contact:?}");

    // The carrier calls the line on node A.
    let carrier = sipp(
        "media-node/tests/sipp/carrier_call.xml",
        &["-s".into(), "+380441230000".into(), sip_a.to_string()],
    );
    let (c, a) = tokio::join!(carrier.outcome(), anna.outcome());
    if let Err(e) = c {
        panic!(
            "the carrier's call on node A failed: {e}\nnode A:\n{}\nrouter:\n{}",
            node_a.logs(),
            router.logs()
        );
    }
    a.unwrap_or_else(|e| {
        panic!(
            "anna's phone was not rung and answered: {e}\n{}",
            node_a.logs()
        )
    });

    // The reporter has the call, answered by anna (events from node A's spool).
    let reporter_dir = reporter_data.to_owned();
    let mut reports = reports_client(&reporter_url, &reporter_dir).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        if let Some(row) = calls
            .into_iter()
            .find(|r| r.status == "answered" && r.ended_at.is_some())
        {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answered call never reached the reports:\n{}",
            node_a.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.caller, "+380501234567", "{row:?}");
    assert_eq!(row.number, "+380441230000", "{row:?}");
    assert_eq!(row.answered_by, "anna", "{row:?}");
    let agents = reports
        .agents(pb::AgentsRequest::default())
        .await
        .expect("agents report")
        .into_inner()
        .agents;
    let anna_row = agents
        .iter()
        .find(|r| r.agent == "anna")
        .expect("anna's row");
    assert_eq!(
        (anna_row.offered, anna_row.answered, anna_row.missed),
        (1, 1, 0),
        "{anna_row:?}"
    );
    // bohdan is not registered anywhere: never offered.
    assert!(
        agents.iter().all(|r| r.agent != "bohdan" || r.offered == 0),
        "{agents:?}"
    );
}
