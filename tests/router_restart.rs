//! A router restart that loses the router's file: the media node tells the new router every
//! registration it holds (`SyncContacts` when its session opens again), so agents stay
//! reachable without registering again.
//!
//! `dialtone reporter`, `dialtone router` and one `dialtone media-node` run as separate
//! processes on loopback. anna's softphone registers through the node (SIPp, digest, through
//! the relay that hides the SHA-256 challenges from SIPp). The router is then killed
//! (SIGKILL), its `router-state.json` is replaced by one that knows nothing of anna but holds
//! a registration of bohdan's on this node that the node does not have, and the router is
//! started again on the same address. Without any REGISTER, the router must list anna's
//! contact again (held by the node, at its SIP address), must have forgotten bohdan's, and a
//! carrier's call must ring anna and be bridged.

use std::path::Path;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tonic::transport::Channel;

mod support;
use support::agent_dial::Relay;
use support::processes::{self, media_node};
use support::reports_client;
use support::sipp::{ensure_sipp, sipp, sipp_at};

/// The e2e call center: a carrier whose inbound source is 127.0.0.1, anna and bohdan rung
/// together on +380441230000.
fn config_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e")
}

/// The agent's contacts as the router lists them.
async fn contacts(router: &mut RouterClient<Channel>, agent: &str) -> Vec<pb::Contact> {
    router
        .lookup_contacts(pb::LookupContactsRequest {
            agent: agent.into(),
            ..Default::default()
        })
        .await
        .expect("lookup contacts")
        .into_inner()
        .contacts
}

/// A router state file holding only a registration of bohdan's on `node` (at `node_address`)
/// that the node itself does not have.
fn state_with_a_stale_contact(node: &str, node_address: &str) -> String {
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600);
    serde_json::json!({
        "version": 1,
        "agents": [{
            "agent": "bohdan",
            "choice": "available",
            "contacts": [{
                "uri": "sip:bohdan@127.0.0.1:9",
                "node": node,
                "node_address": node_address,
                "source": "127.0.0.2:9",
                "expires_at": expires.to_string(),
            }],
        }],
        "owners": [],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_router_relearns_registrations_from_the_media_node() {
    ensure_sipp();
    let config = config_dir();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let (reporter_data, router_data, node_data) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    std::fs::write(
        reporter_data.join("supervisor.token"),
        "restart-supervisor\n",
    )
    .expect("token");

    let (_reporter, reporter_url) = processes::reporter(&config, reporter_data);
    let (router, router_addr) =
        processes::router(&config, router_data, "127.0.0.1:0", &reporter_url);
    let router_url = format!("http://{router_addr}");
    let (node, sip) = media_node(
        "node-a",
        &config,
        &router_url,
        &reporter_url,
        "34800-34899",
        node_data,
    );

    // anna's phone (the SIPp that answers), registered through the node by another SIPp.
    let mut anna = sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    anna.ready().await;
    let relay = Relay::start(sip);
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
    .unwrap_or_else(|e| panic!("anna's softphone registered: {e}\n{}", node.logs()));
    let anna_uri = format!("sip:anna@127.0.0.1:{}", anna.port);

    // The first router learns it (from RegisterContact) and saves it to its file.
    let mut client = RouterClient::connect(router_url.clone())
        .await
        .expect("router");
    let state = router_data.join("router-state.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let known = contacts(&mut client, "anna")
            .await
            .iter()
            .any(|c| c.uri == anna_uri);
        let saved = std::fs::read_to_string(&state).is_ok_and(|t| t.contains(&anna_uri));
        if known && saved {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the router never held and saved anna's contact (held {known}, saved {saved}):\n{}",
            router.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGKILL: nothing is saved on the way out. The file is replaced so that anna can only
    // come back from the node.
    drop(client);
    drop(router);
    std::fs::remove_file(&state).expect("router-state.json removed");
    std::fs::write(
        &state,
        state_with_a_stale_contact("node-a", &sip.to_string()),
    )
    .expect("state file written");
    let (router, _) = processes::router(
        &config,
        router_data,
        &router_addr.to_string(),
        &reporter_url,
    );
    let mut client = RouterClient::connect(router_url.clone())
        .await
        .expect("restarted router");

    // The node's session comes back (with the link's backoff) and its sync lands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let contact = loop {
        if let Some(c) = contacts(&mut client, "anna")
            .await
            .into_iter()
            .find(|c| c.uri == anna_uri)
        {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted router never re-learned anna's contact:\nnode:\n{}\nrouter:\n{}",
            node.logs(),
            router.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(contact.node_id, "node-a", "{contact:?}");
    assert_eq!(contact.node_address, sip.to_string(), "{contact:?}");
    // The sync replaced everything the router had for this node: bohdan's restored contact,
    // which the node never held, is gone.
    let bohdan = contacts(&mut client, "bohdan").await;
    assert!(bohdan.is_empty(), "{bohdan:?}");

    // A carrier's call rings anna through the restarted router's plan and is bridged.
    let carrier = sipp(
        "media-node/tests/sipp/carrier_call.xml",
        &["-s".into(), "+380441230000".into(), sip.to_string()],
    );
    let (c, a) = tokio::join!(carrier.outcome(), anna.outcome());
    if let Err(e) = c {
        panic!(
            "the carrier's call failed: {e}\nnode:\n{}\nrouter:\n{}",
            node.logs(),
            router.logs()
        );
    }
    a.unwrap_or_else(|e| {
        panic!(
            "anna's phone was not rung and answered: {e}\n{}",
            node.logs()
        )
    });

    // The reporter has the call answered by anna.
    let mut reports = reports_client(&reporter_url, reporter_data).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls = reports
            .calls(pb::CallsRequest::default())
            .await
            .expect("calls report")
            .into_inner()
            .calls;
        if let Some(row) = calls.iter().find(|r| r.ended_at.is_some()) {
            assert_eq!(
                (row.status.as_str(), row.answered_by.as_str()),
                ("answered", "anna"),
                "{row:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached the reports:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
