//! `spec.access` against the fake API server: the operator generates the internal token once
//! (a Secret owned by the CallCenter), keeps its value across reconciles and operator restarts,
//! points every component at it, mounts the tokens Secret into the reporter and the router only,
//! keeps both out of the snapshot, and says on the CallCenter how to fix an unusable Secret.

mod harness;

use dialtone_model::resources::CallCenter;
use dialtone_operator::ManualClock;
use dialtone_operator::desired::snapshot::{MANIFESTS_KEY, SECRETS_KEY};
use dialtone_operator::testing::fake_api::FakeApi;
use harness::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, PodSpec, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const TOKEN_SECRET: &str = "acme-internal-token";

async fn demo() -> (FakeApi, ManualClock, Operator) {
    let fake = FakeApi::start().await;
    apply_demo(&fake).await;
    let clock = ManualClock::new(at(START));
    let operator = Operator::start(&fake, &clock, "operator-0");
    fake.wait_until(WAIT, "the golden objects and Ready resources", |f| {
        all_golden_objects_exist(f) && all_ready(f)
    })
    .await;
    (fake, clock, operator)
}

/// The generated token's value, as stored.
fn token(fake: &FakeApi) -> Option<String> {
    let secret: Secret = fake.get(NS, TOKEN_SECRET)?;
    let bytes = secret.data?.get("token")?.0.clone();
    String::from_utf8(bytes).ok()
}

fn pod(fake: &FakeApi, name: &str) -> PodSpec {
    let d: Deployment = fake
        .get(NS, name)
        .unwrap_or_else(|| panic!("Deployment {name}"));
    d.spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("{name} has a pod template"))
}

fn container(pod: &PodSpec) -> &Container {
    pod.containers.first().expect("a container")
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.iter().flatten().find(|e| e.name == name)
}

#[tokio::test]
async fn the_internal_token_is_generated_once_and_every_component_uses_it() {
    let (fake, clock, operator) = demo().await;
    operator.settle().await;

    // Created: 32 random bytes in hex, owned by the CallCenter.
    let first = token(&fake).expect("the generated internal token");
    assert_eq!(first.len(), 64, "{first}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    let secret: Secret = fake.get(NS, TOKEN_SECRET).expect("the Secret");
    let cc: CallCenter = fake.get(NS, "acme").expect("the CallCenter");
    let owner = secret
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .expect("an owner reference");
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid)),
        ("CallCenter", cc.metadata.uid.as_ref())
    );
    assert_eq!(owner.controller, Some(true));

    // Every component's DIALTONE_INTERNAL_TOKEN refers to it.
    for name in ["acme-router", "acme-reporter", "acme-media-node"] {
        let pod = pod(&fake, name);
        let var = env(container(&pod), "DIALTONE_INTERNAL_TOKEN")
            .unwrap_or_else(|| panic!("{name} has DIALTONE_INTERNAL_TOKEN"));
        assert_eq!(var.value, None, "{name}: never the value itself");
        let selector = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{name}: from a Secret"));
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            (TOKEN_SECRET, "token"),
            "{name}"
        );
    }

    // The tokens Secret reaches the reporter and the router as a file, the media nodes not.
    for name in ["acme-router", "acme-reporter"] {
        let pod = pod(&fake, name);
        let c = container(&pod);
        assert_eq!(
            env(c, "DIALTONE_TOKENS_FILE").and_then(|e| e.value.as_deref()),
            Some("/etc/dialtone/tokens/tokens"),
            "{name}"
        );
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tokens")
            .and_then(|v| v.secret.as_ref())
            .unwrap_or_else(|| panic!("{name} has the tokens volume"));
        assert_eq!(volume.secret_name.as_deref(), Some("dashboard-tokens"));
        let item = volume.items.iter().flatten().next().expect("one key");
        assert_eq!(
            (item.key.as_str(), item.path.as_str()),
            ("tokens", "tokens")
        );
        assert!(
            c.volume_mounts.iter().flatten().any(|m| m.name == "tokens"
                && m.mount_path == "/etc/dialtone/tokens"
                && m.read_only == Some(true)),
            "{name} mounts it read-only"
        );
    }
    let media = pod(&fake, "acme-media-node");
    assert!(env(container(&media), "DIALTONE_TOKENS_FILE").is_none());
    assert!(!media.volumes.iter().flatten().any(|v| v.name == "tokens"));

    // Neither Secret is in the snapshot every component reads.
    let cm: ConfigMap = fake.get(NS, "dialtone-snapshot").expect("the snapshot");
    let manifests = cm.data.expect("data")[MANIFESTS_KEY].clone();
    assert!(!manifests.contains("dashboard-tokens") && !manifests.contains("access"));
    let snapshot: Secret = fake.get(NS, "dialtone-snapshot").expect("the snapshot");
    let secrets =
        String::from_utf8(snapshot.data.expect("data")[SECRETS_KEY].0.clone()).expect("UTF-8");
    assert!(
        secrets.contains("crm-webhook"),
        "the snapshot holds the other Secrets"
    );
    assert!(!secrets.contains("dashboard-tokens") && !secrets.contains("demo-supervisor-token"));

    // A second reconcile (the resync) leaves the value as it is, and writes nothing.
    let activity = operator.resync(&clock).await;
    assert_eq!(activity.last.writes(), 0, "{activity:?}");
    assert_eq!(token(&fake).as_deref(), Some(first.as_str()));

    // A change that rebuilds the workloads keeps it too.
    Api::<CallCenter>::namespaced(fake.client(), NS)
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"reporter": {"retentionDays": 300}}})),
        )
        .await
        .expect("patch the CallCenter");
    let before = operator.activity().reconciles;
    operator
        .wait_for("a reconcile of the change", |a| a.reconciles > before)
        .await;
    operator.settle().await;
    assert_eq!(token(&fake).as_deref(), Some(first.as_str()));

    // A new operator (empty caches, nothing remembered) reads it instead of generating one.
    operator.stop().await;
    let next = Operator::start(&fake, &clock, "operator-1");
    next.settle().await;
    assert_eq!(token(&fake).as_deref(), Some(first.as_str()));

    // Deleted (how it is rotated): a new value is generated.
    Api::<Secret>::namespaced(fake.client(), NS)
        .delete(TOKEN_SECRET, &DeleteParams::default())
        .await
        .expect("delete the Secret");
    fake.wait_until(WAIT, "a new internal token", |f| {
        token(f).is_some_and(|t| t != first)
    })
    .await;
    let second = token(&fake).expect("the new token");
    assert_eq!(second.len(), 64);
    next.stop().await;
}

#[tokio::test]
async fn an_unusable_generated_secret_is_reported_on_the_call_center_with_the_fix() {
    let (fake, _clock, operator) = demo().await;
    operator.settle().await;
    Api::<Secret>::namespaced(fake.client(), NS)
        .patch(
            TOKEN_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"token": null, "tokn": "c2hvcnQ="}})),
        )
        .await
        .expect("break the Secret");
    fake.wait_until(WAIT, "the CallCenter not Ready", |f| {
        status_of(f, "CallCenter", "acme")
            .is_some_and(|(_, s)| condition(&s, "Ready").is_some_and(|c| c.status == "False"))
    })
    .await;
    let (_, status) = status_of(&fake, "CallCenter", "acme").expect("a status");
    let ready = condition(&status, "Ready").expect("Ready");
    assert!(
        ready.message.contains("telephony/acme-internal-token")
            && ready.message.contains("delete it")
            && ready.message.contains("internalTokenSecretRef"),
        "{}",
        ready.message
    );
    // The operator does not overwrite it: the broken value stays until someone acts.
    operator.settle().await;
    let secret: Secret = fake.get(NS, TOKEN_SECRET).expect("the Secret");
    let data = secret.data.expect("data");
    assert!(data.contains_key("tokn") && !data.contains_key("token"));
    operator.stop().await;
}

#[tokio::test]
async fn a_named_internal_token_secret_is_used_and_none_is_generated() {
    let fake = FakeApi::start().await;
    apply_demo(&fake).await;
    let client = fake.client();
    create::<Secret>(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "our-internal-token", "namespace": NS},
            "stringData": {"value": "an-internal-token-of-our-own-0001"}
        }),
    )
    .await;
    Api::<CallCenter>::namespaced(client, NS)
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": {"internalTokenSecretRef":
                {"name": "our-internal-token", "key": "value"}}}})),
        )
        .await
        .expect("name our own Secret");
    let clock = ManualClock::new(at(START));
    let operator = Operator::start(&fake, &clock, "operator-0");
    fake.wait_until(WAIT, "the Deployments and Ready resources", |f| {
        ["acme-router", "acme-reporter", "acme-media-node"]
            .iter()
            .all(|n| f.get::<Deployment>(NS, n).is_some())
            && all_ready(f)
    })
    .await;
    operator.settle().await;
    assert!(
        fake.get::<Secret>(NS, TOKEN_SECRET).is_none(),
        "nothing generated"
    );
    for name in ["acme-router", "acme-reporter", "acme-media-node"] {
        let pod = pod(&fake, name);
        let selector = env(container(&pod), "DIALTONE_INTERNAL_TOKEN")
            .and_then(|v| v.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} has DIALTONE_INTERNAL_TOKEN"));
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("our-internal-token", "value"),
            "{name}"
        );
    }
    operator.stop().await;
}
