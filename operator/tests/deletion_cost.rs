//! Pod deletion cost end to end: the operator, against the fake API server, reads each ready
//! media-node pod's `dialtone_active_calls` from a fake metrics endpoint (axum on a loopback
//! port per pod, named `ops` in the pod's spec, the pod's `status.podIP` 127.0.0.1) and keeps
//! the pod's `controller.kubernetes.io/pod-deletion-cost` annotation near it, round by round on
//! the operator's manual clock.

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dialtone_operator::ManualClock;
use dialtone_operator::desired::common::{Component, labels};
use dialtone_operator::desired::scaling::DELETION_COST_ANNOTATION;
use dialtone_operator::testing::fake_api::FakeApi;
use harness::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// A fake media node's `/metrics`, serving whatever the returned counter holds.
async fn metrics_endpoint(calls: u32) -> (u16, Arc<AtomicU32>) {
    let gauge = Arc::new(AtomicU32::new(calls));
    let served = gauge.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let served = served.clone();
            async move {
                format!(
                    "# HELP dialtone_active_calls Calls active on this media node\n\
                     # TYPE dialtone_active_calls gauge\n\
                     dialtone_active_calls {}\n\
                     # TYPE dialtone_calls counter\n\
                     dialtone_calls_total 1234\n# EOF\n",
                    served.load(Ordering::SeqCst)
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, gauge)
}

/// A pod as the ReplicaSet controller and the kubelet would leave it: media-node labels (or
/// `other` labels), the `ops` port, and a status with the pod IP and the Ready condition.
async fn pod(fake: &FakeApi, name: &str, ops_port: u16, ready: bool, media_node: bool) {
    let api: Api<Pod> = Api::namespaced(fake.client(), NS);
    let labels: BTreeMap<String, String> = if media_node {
        labels("acme", Component::MediaNode)
    } else {
        BTreeMap::from([("app".to_owned(), "something-else".to_owned())])
    };
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{
            "name": "media-node",
            "image": IMAGE,
            "ports": [
                {"name": "sip-udp", "containerPort": 5060, "protocol": "UDP"},
                {"name": "ops", "containerPort": ops_port, "protocol": "TCP"}
            ]
        }]}
    }))
    .expect("a pod");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("the pod is created");
    let status = json!({"status": {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the pod's status is set");
}

fn cost(fake: &FakeApi, name: &str) -> Option<String> {
    fake.get::<Pod>(NS, name)
        .and_then(|p| p.metadata.annotations)
        .and_then(|a| a.get(DELETION_COST_ANNOTATION).cloned())
}

fn pod_patches(fake: &FakeApi) -> u64 {
    fake.requests().matching(|verb, path| {
        verb == "patch" && path.contains("/pods/") && !path.ends_with("/status")
    })
}

#[tokio::test]
async fn annotations_follow_the_active_call_counts() {
    let fake = FakeApi::start().await;
    apply_demo(&fake).await;
    let (port_a, calls_a) = metrics_endpoint(5).await;
    let (port_b, calls_b) = metrics_endpoint(0).await;
    let (port_c, calls_c) = metrics_endpoint(120).await;
    let (port_starting, _) = metrics_endpoint(7).await;
    let (port_other, _) = metrics_endpoint(9).await;
    // A port nothing listens on: the scrape fails, the pod is left alone.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("an address").port()
    };
    pod(&fake, "acme-media-node-a", port_a, true, true).await;
    pod(&fake, "acme-media-node-b", port_b, true, true).await;
    pod(&fake, "acme-media-node-c", port_c, true, true).await;
    pod(
        &fake,
        "acme-media-node-starting",
        port_starting,
        false,
        true,
    )
    .await;
    pod(&fake, "acme-media-node-broken", closed, true, true).await;
    pod(&fake, "not-a-media-node", port_other, true, false).await;

    let clock = ManualClock::new(at(START));
    let operator = Operator::start(&fake, &clock, "operator-0");
    // The first round runs as soon as the pod cache is filled.
    fake.wait_until(WAIT, "the first deletion costs", |f| {
        cost(f, "acme-media-node-a").as_deref() == Some("5")
            && cost(f, "acme-media-node-b").as_deref() == Some("0")
            && cost(f, "acme-media-node-c").as_deref() == Some("120")
    })
    .await;
    let first = operator
        .wait_for("the first round", |a| a.cost_rounds >= 1)
        .await;
    assert_eq!(first.cost_patches, 3);
    assert_eq!(first.cost_scrape_failures, 1, "the broken node");
    assert_eq!(cost(&fake, "acme-media-node-starting"), None, "not ready");
    assert_eq!(cost(&fake, "acme-media-node-broken"), None, "no metrics");
    assert_eq!(cost(&fake, "not-a-media-node"), None, "not a media node");
    assert_eq!(pod_patches(&fake), 3);

    // Nothing happens until the interval passes on the operator's clock.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(operator.activity().cost_rounds, 1);

    // a gets busy, c drifts within a tenth (near enough: no request), b stays idle.
    calls_a.store(40, Ordering::SeqCst);
    calls_c.store(115, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    let second = operator
        .wait_for("the second round", |a| a.cost_rounds >= 2)
        .await;
    assert_eq!(second.cost_patches, 4, "only a was patched");
    assert_eq!(cost(&fake, "acme-media-node-a").as_deref(), Some("40"));
    assert_eq!(cost(&fake, "acme-media-node-b").as_deref(), Some("0"));
    assert_eq!(cost(&fake, "acme-media-node-c").as_deref(), Some("120"));
    assert_eq!(pod_patches(&fake), 4);

    // c's calls end: an idle node must look idle at once; b picks up calls.
    calls_c.store(0, Ordering::SeqCst);
    calls_b.store(3, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    operator
        .wait_for("the third round", |a| a.cost_rounds >= 3)
        .await;
    assert_eq!(cost(&fake, "acme-media-node-a").as_deref(), Some("40"));
    assert_eq!(cost(&fake, "acme-media-node-b").as_deref(), Some("3"));
    assert_eq!(cost(&fake, "acme-media-node-c").as_deref(), Some("0"));
    assert_eq!(pod_patches(&fake), 6);
    // Scale-down would now remove c (lowest cost), then b, then a.

    // A pod that becomes ready joins the next round.
    let api: Api<Pod> = Api::namespaced(fake.client(), NS);
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    api.patch_status(
        "acme-media-node-starting",
        &PatchParams::default(),
        &Patch::Merge(&ready),
    )
    .await
    .expect("the pod turns ready");
    // The watch delivers the change asynchronously: keep advancing until the round sees it.
    let mut rounds = 3;
    while cost(&fake, "acme-media-node-starting").is_none() {
        rounds += 1;
        assert!(rounds < 50, "the ready pod never got a deletion cost");
        clock.advance(Duration::from_secs(10));
        operator
            .wait_for("another round", |a| a.cost_rounds >= rounds)
            .await;
    }
    assert_eq!(
        cost(&fake, "acme-media-node-starting").as_deref(),
        Some("7")
    );
    operator.stop().await;
}
