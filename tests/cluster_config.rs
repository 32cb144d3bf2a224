//! The cluster configuration source against the fake Kubernetes API server: the snapshot of
//! `examples/demo` published as the operator publishes it (the operator's own builders), loaded
//! at start, then watched: a ForwardingScheme change reaches the receiver without a restart, a
//! broken ConfigMap keeps the last good snapshot, and a half-published pair (new ConfigMap, old
//! Secret) waits for its other half instead of failing.

// Included by path so the test also runs before `pub mod cluster_config;` is in src/lib.rs;
// `crate::config_watch` inside it resolves to the library's module through this shim.
#[allow(dead_code)]
#[path = "../src/cluster_config.rs"]
mod cluster_config;
mod config_watch {
    pub use dialtone::config_watch::*;
}
#[path = "../operator/src/testing/fake_api/mod.rs"]
mod fake_api;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_config::{load_snapshot, watch_snapshot};
use config_watch::ReloadStatus;
use dialtone_model::Snapshot;
use dialtone_model::loader::{Manifests, SourceFile, read_files};
use dialtone_model::resources::CallCenter;
use dialtone_operator::BuildContext;
use dialtone_operator::desired::snapshot::{
    SNAPSHOT_NAME, SnapshotBundle, desired_snapshot_configmap, desired_snapshot_secret,
};
use fake_api::FakeApi;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;

const NS: &str = "telephony";
/// Deadline of every wait (generous: the machine may be busy; no assertion on speed).
const WAIT: Duration = Duration::from_secs(30);

fn demo_files() -> Vec<SourceFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/demo")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| SourceFile {
            text: std::fs::read_to_string(dir.join(&n)).expect("a demo file"),
            path: format!("examples/demo/{n}"),
        })
        .collect()
}

fn manifests(files: &[SourceFile]) -> Manifests {
    let (manifests, problems) = read_files(files);
    assert!(problems.is_empty(), "{problems:?}");
    manifests
}

/// The demo CallCenter as the API server hands it over (with a uid), which owns the snapshot.
fn call_center(m: &Manifests) -> CallCenter {
    let mut cc = m.call_centers[0].resource.clone();
    cc.metadata.uid = Some("6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b".to_owned());
    cc
}

/// The snapshot ConfigMap and Secret the operator would publish for `m`.
fn snapshot_objects(m: &Manifests) -> (ConfigMap, Secret) {
    let cc = call_center(m);
    let bundle = SnapshotBundle::render(m).expect("the bundle renders");
    let ctx = BuildContext::new(
        "ghcr.io/dialtone-dev/dialtone:0.1.0",
        jiff::Timestamp::now(),
    );
    let cm = desired_snapshot_configmap(&cc, &bundle.manifests_yaml, &bundle.secrets_yaml, &ctx)
        .expect("the snapshot ConfigMap");
    let secret =
        desired_snapshot_secret(&cc, &bundle.secrets_yaml, &ctx).expect("the snapshot Secret");
    (cm, secret)
}

/// The demo with one more step in the `sales` scheme: 5 steps instead of 4.
fn with_longer_sales(mut m: Manifests) -> Manifests {
    let scheme = m
        .schemes
        .iter_mut()
        .find(|s| s.resource.metadata.name.as_deref() == Some("sales"))
        .expect("the sales scheme");
    let mut spec = serde_json::to_value(&scheme.resource.spec).expect("JSON");
    let steps = spec["steps"].as_array_mut().expect("steps");
    let last = steps.len() - 1;
    steps.insert(last, json!({"hangup": {}}));
    scheme.resource.spec = serde_json::from_value(spec).expect("a scheme spec");
    m
}

/// Replaces an object (PUT with its current resourceVersion), as `kubectl replace` does.
async fn replace_config_map(api: &Api<ConfigMap>, mut cm: ConfigMap) {
    let live = api.get(SNAPSHOT_NAME).await.expect("the ConfigMap");
    cm.metadata.resource_version = live.metadata.resource_version;
    api.replace(SNAPSHOT_NAME, &PostParams::default(), &cm)
        .await
        .expect("the ConfigMap is replaced");
}

async fn replace_secret(api: &Api<Secret>, mut secret: Secret) {
    let live = api.get(SNAPSHOT_NAME).await.expect("the Secret");
    secret.metadata.resource_version = live.metadata.resource_version;
    api.replace(SNAPSHOT_NAME, &PostParams::default(), &secret)
        .await
        .expect("the Secret is replaced");
}

fn sales_steps(s: &Snapshot) -> usize {
    s.schemes["sales"].steps.len()
}

/// Waits until the published snapshot satisfies `f`; how long it took.
async fn wait_for_snapshot(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    what: &str,
    f: impl Fn(&Snapshot) -> bool,
) -> Duration {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if f(&rx.borrow_and_update()) {
            return start.elapsed();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the watcher stopped before {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

async fn wait_for_status(
    rx: &mut watch::Receiver<ReloadStatus>,
    what: &str,
    f: impl Fn(&ReloadStatus) -> bool,
) -> ReloadStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        {
            let s = rx.borrow_and_update();
            if f(&s) {
                return s.clone();
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the watcher stopped before {what}"),
            Err(_) => panic!("timed out waiting for {what}: {:?}", rx.borrow()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_changes_reach_the_receiver_and_broken_ones_keep_the_last_good_snapshot() {
    let fake = FakeApi::start().await;
    let client = fake.client();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);

    // Nothing published yet: the component cannot start.
    let missing = load_snapshot(client.clone(), NS, SNAPSHOT_NAME).await;
    assert!(
        matches!(
            missing,
            Err(cluster_config::ClusterConfigError::Missing { .. })
        ),
        "{missing:?}"
    );

    let demo = manifests(&demo_files());
    let (cm, secret) = snapshot_objects(&demo);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("the snapshot Secret is created");
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("the snapshot ConfigMap is created");

    // At start: loaded once.
    let first = load_snapshot(client.clone(), NS, SNAPSHOT_NAME)
        .await
        .expect("the demo snapshot loads");
    assert_eq!(sales_steps(&first), 4);
    assert!(
        !first.agents.is_empty(),
        "agents with their credentials from the Secret"
    );

    let (tx, mut rx) = watch::channel(first);
    let (status_tx, mut status) = watch::channel(ReloadStatus::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn({
        let client = client.clone();
        async move {
            watch_snapshot(client, NS, SNAPSHOT_NAME, tx, status_tx, stop_rx).await;
        }
    });
    // The first attempt loads what is there once both watches have listed their object.
    let initial = wait_for_status(&mut status, "the initial load", |s| s.attempts >= 1).await;
    assert!(initial.errors.is_empty(), "{:?}", initial.errors);

    // A ForwardingScheme change, as the operator would publish it (same Secret): reaches the
    // receiver without a restart.
    let (longer, _) = snapshot_objects(&with_longer_sales(demo.clone()));
    let changed_at = Instant::now();
    replace_config_map(&config_maps, longer.clone()).await;
    let latency = wait_for_snapshot(&mut rx, "the changed scheme", |s| sales_steps(s) == 5).await;
    eprintln!(
        "a ForwardingScheme change reached the receiver {:?} after the replace returned ({:?} \
         after it was sent)",
        latency,
        changed_at.elapsed()
    );
    let good = rx.borrow().clone();
    let after_good = status.borrow().clone();
    assert!(after_good.errors.is_empty(), "{:?}", after_good.errors);

    // A broken ConfigMap: refused, every problem reported, the last good snapshot kept.
    let mut broken = longer.clone();
    broken
        .data
        .as_mut()
        .expect("data")
        .get_mut("manifests.yaml")
        .expect("manifests")
        .push_str("---\napiVersion: dialtone.dev/v1alpha1\nkind: ForwardingScheme\nmetadata: {name: bad, namespace: telephony}\nspec:\n  steps:\n    - queue: {name: no-such-queue}\n");
    replace_config_map(&config_maps, broken).await;
    let refused = wait_for_status(&mut status, "the refused reload", |s| {
        s.attempts > after_good.attempts
    })
    .await;
    assert!(
        refused.errors.iter().any(|e| e.contains("no-such-queue")),
        "{:?}",
        refused.errors
    );
    assert!(
        Arc::ptr_eq(&rx.borrow(), &good),
        "the last good snapshot stays published"
    );
    assert_eq!(sales_steps(&rx.borrow()), 5);

    // Fixed again (back to the demo as it was): published.
    replace_config_map(&config_maps, cm.clone()).await;
    wait_for_snapshot(&mut rx, "the fixed snapshot", |s| sales_steps(s) == 4).await;
    let fixed = status.borrow().clone();
    assert!(fixed.errors.is_empty(), "{:?}", fixed.errors);

    // A publication in two halves: a new agent whose credentials are in the new Secret. The
    // ConfigMap arrives first (its secrets-hash names the new Secret): no attempt, no error —
    // it waits; the Secret completes the pair and one attempt publishes it.
    let mut files = demo_files();
    files.push(SourceFile {
        path: "zoe.yaml".to_owned(),
        text: "apiVersion: dialtone.dev/v1alpha1\nkind: Agent\nmetadata: {name: zoe, namespace: telephony, labels: {team: support}}\nspec:\n  displayName: Zoe\n  extension: \"299\"\n  sipCredentialsSecretRef: {name: agent-zoe}\n  destinations: [{softphone: {}}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: agent-zoe, namespace: telephony}\ntype: Opaque\nstringData: {username: zoe, password: zoe-pass}\n".to_owned(),
    });
    let (cm_zoe, secret_zoe) = snapshot_objects(&manifests(&files));
    replace_config_map(&config_maps, cm_zoe).await;
    // Give the watch a moment to deliver the ConfigMap alone. (Were it loaded alone, it would
    // fail on the dangling agent-zoe reference and count an attempt with errors, which the
    // attempt count below would show.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status.borrow().attempts,
        fixed.attempts,
        "half a publication is not loaded"
    );
    assert!(!rx.borrow().agents.contains_key("zoe"));
    replace_secret(&secrets, secret_zoe).await;
    wait_for_snapshot(&mut rx, "the agent of the two-part publication", |s| {
        s.agents.contains_key("zoe")
    })
    .await;
    let completed = status.borrow().clone();
    assert_eq!(
        completed.attempts,
        fixed.attempts + 1,
        "one attempt, no failure"
    );
    assert!(completed.errors.is_empty(), "{:?}", completed.errors);

    // One list and one watch per object, open throughout: no re-list, no new watch.
    let requests = fake.requests();
    assert_eq!(requests.verb("list"), 2, "{requests:?}");
    assert_eq!(requests.verb("watch"), 2, "{requests:?}");

    stop_tx.send_replace(true);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the watcher stops on shutdown")
        .expect("the watcher task did not panic");
}
