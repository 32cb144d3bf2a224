//! The operator end to end against the fake API server: `examples/demo` becomes the golden
//! objects and Ready resources; broken references show in status and Events; campaign floors
//! move the autoscaler at their instants; deleting the CallCenter leaves nothing behind; a
//! reconcile with nothing to change makes no request.

mod harness;

use std::collections::BTreeSet;

use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_model::resources::{CallCenter, CallQueue, PhoneNumber};
use dialtone_operator::ManualClock;
use dialtone_operator::desired::snapshot::{MANIFESTS_KEY, SECRETS_KEY};
use dialtone_operator::testing::fake_api::FakeApi;
use harness::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The demo applied, an operator started, everything Ready.
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

fn snapshot_loads(fake: &FakeApi) -> Value {
    let cm: ConfigMap = fake
        .get(NS, "dialtone-snapshot")
        .expect("the snapshot ConfigMap");
    let secret: Secret = fake
        .get(NS, "dialtone-snapshot")
        .expect("the snapshot Secret");
    let manifests = cm.data.expect("data")[MANIFESTS_KEY].clone();
    let secrets =
        String::from_utf8(secret.data.expect("data")[SECRETS_KEY].0.clone()).expect("UTF-8");
    let env = Environment {
        prompts: PromptCatalog::Known {
            names: demo_prompts().into_iter().collect(),
            hint: "prompts".to_owned(),
        },
    };
    let report = load(
        &[
            SourceFile {
                path: "manifests.yaml".to_owned(),
                text: manifests.clone(),
            },
            SourceFile {
                path: "secrets.yaml".to_owned(),
                text: secrets,
            },
        ],
        &env,
    );
    let errors: Vec<String> = report.errors().map(ToString::to_string).collect();
    assert!(
        errors.is_empty(),
        "the published snapshot loads: {errors:?}"
    );
    let parsed = dialtone_model::yaml::parse(&manifests);
    Value::Array(parsed.documents.into_iter().map(|d| d.value).collect())
}

fn golden_json(kind: &str, name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{}-{name}.yaml", kind.to_lowercase()));
    let text = std::fs::read_to_string(&path).expect("a golden file");
    let parsed = dialtone_model::yaml::parse(&text);
    assert!(
        parsed.errors.is_empty(),
        "{}: {:?}",
        path.display(),
        parsed.errors
    );
    parsed
        .documents
        .into_iter()
        .next()
        .expect("a document")
        .value
}

/// `live` has every field of `golden`, with the owner's uid replaced by the real one.
fn assert_matches_golden(live: &Value, golden: &Value, path: &str) {
    match (live, golden) {
        (Value::Object(l), Value::Object(g)) => {
            for (k, gv) in g {
                let lv = l.get(k).unwrap_or(&Value::Null);
                if k == "uid" {
                    continue;
                }
                assert_matches_golden(lv, gv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(l), Value::Array(g)) => {
            assert_eq!(l.len(), g.len(), "{path}: list length");
            for (i, (lv, gv)) in l.iter().zip(g).enumerate() {
                assert_matches_golden(lv, gv, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(l), Value::Number(g)) => assert_eq!(l.as_f64(), g.as_f64(), "{path}"),
        (Value::String(l), Value::Number(g)) => assert_eq!(l, &g.to_string(), "{path}"),
        _ => assert_eq!(live, golden, "{path}"),
    }
}

#[tokio::test]
async fn the_demo_becomes_the_golden_objects_and_ready_resources() {
    let (fake, _clock, operator) = demo().await;

    // Every golden object, with the golden content (the snapshot's content is the whole demo
    // here, not the golden file's CallCenter-only bundle).
    let cc: CallCenter = fake.get(NS, "acme").expect("the CallCenter");
    let uid = cc.metadata.uid.clone().expect("a uid");
    for (kind, name) in golden_objects() {
        let live = fake
            .get_json(&golden_resource(&kind), NS, &name)
            .unwrap_or_else(|| panic!("{kind}/{name} exists"));
        let owner = &live["metadata"]["ownerReferences"][0];
        assert_eq!(
            owner["uid"],
            json!(uid),
            "{kind}/{name} is owned by the CallCenter"
        );
        assert_eq!(owner["controller"], json!(true));
        if name == "dialtone-snapshot" {
            continue;
        }
        let mut golden = golden_json(&kind, &name);
        if name == "acme-internal-token" {
            // A random value (the golden file's is fixed); tests/access.rs checks it.
            golden.as_object_mut().map(|g| g.remove("data"));
        }
        assert_matches_golden(&live, &golden, &format!("{kind}/{name}"));
    }

    // The snapshot holds every demo resource and loads with the standalone loader.
    let published = snapshot_loads(&fake);
    let names: BTreeSet<(String, String)> = published
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_owned(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = demo_resources().into_iter().collect();
    assert_eq!(names, expected);

    // Every resource: Ready and ResolvedRefs True, for its generation.
    for (kind, name) in demo_resources() {
        let (generation, status) = status_of(&fake, &kind, &name).expect("a status");
        assert_eq!(status.observed_generation, generation, "{kind}/{name}");
        let ready = condition(&status, "Ready").expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Valid")
        );
        assert_eq!(ready.last_transition_time.as_deref(), Some(START));
        let refs = condition(&status, "ResolvedRefs").expect("ResolvedRefs");
        assert_eq!(refs.status, "True");
    }
    operator.settle().await;
    operator.stop().await;
}

#[tokio::test]
async fn a_reconcile_with_nothing_to_change_makes_no_request() {
    let fake = FakeApi::start().await;
    apply_demo(&fake).await;
    let before = fake.requests();
    let clock = ManualClock::new(at(START));
    let operator = Operator::start(&fake, &clock, "operator-0");
    fake.wait_until(WAIT, "the golden objects and Ready resources", |f| {
        all_golden_objects_exist(f) && all_ready(f)
    })
    .await;
    operator.settle().await;
    let first = fake.requests().since(&before);
    let resources = demo_resources().len() as u64;
    let status_patches = first.matching(|v, p| v == "patch" && p.ends_with("/status"));
    let applies = first.matching(|v, p| v == "patch" && !p.ends_with("/status"));
    eprintln!(
        "first reconcile of the demo ({resources} resources, {} desired objects): {} requests \
         ({:?}); {status_patches} status patches, {applies} applies, {} events",
        golden_objects().len(),
        first.total(),
        first.per_verb(),
        first.matching(|v, p| v == "create" && p.contains("/events")),
    );
    assert_eq!(status_patches, resources, "one status write per resource");
    // The generated internal token is created (create-only), everything else applied.
    assert_eq!(
        first.matching(|v, p| v == "create" && p.ends_with("/secrets")),
        1,
        "one create: the internal token Secret"
    );
    assert_eq!(
        applies,
        golden_objects().len() as u64 - 1,
        "one apply per other desired object"
    );
    assert_eq!(
        first.matching(|v, p| v == "get" && !p.contains("/leases/")),
        0,
        "a reconcile reads from the watch caches only"
    );

    for _ in 0..2 {
        let before = fake.requests();
        let activity = operator.resync(&clock).await;
        assert_eq!(activity.last.writes(), 0, "{activity:?}");
        let since = fake.requests().since(&before);
        let lease = since.matching(|_, p| p.contains("/leases/"));
        eprintln!(
            "a no-op reconcile: {} requests ({:?}), {lease} of them the leader lease",
            since.total(),
            since.by_verb_path
        );
        assert_eq!(
            since.total() - lease,
            0,
            "no request but the lease renewal: {since:?}"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn broken_references_show_in_status_and_events() {
    let (fake, _clock, operator) = demo().await;
    operator.settle().await;
    let client = fake.client();
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();
    // A PhoneNumber → a scheme that does not exist.
    Api::<PhoneNumber>::namespaced(client.clone(), NS)
        .patch(
            "ads-landing",
            &pp,
            &merge(json!({"spec": {"routes": {"open": "no-such-scheme"}}})),
        )
        .await
        .expect("patch the number");
    // A queue → an agent that does not exist.
    Api::<CallQueue>::namespaced(client.clone(), NS)
        .patch(
            "support",
            &pp,
            &merge(json!({"spec": {"members": {"selector": null, "agents": ["ghost"]}}})),
        )
        .await
        .expect("patch the queue");
    // An Agent → a Secret that does not exist.
    Api::<dialtone_model::resources::Agent>::namespaced(client.clone(), NS)
        .patch(
            "olena",
            &pp,
            &merge(json!({"spec": {"sipCredentialsSecretRef": {"name": "missing-secret"}}})),
        )
        .await
        .expect("patch the agent");

    let broken = [
        ("PhoneNumber", "ads-landing", "no-such-scheme"),
        ("CallQueue", "support", "ghost"),
        ("Agent", "olena", "missing-secret"),
    ];
    fake.wait_until(WAIT, "the broken objects Ready=False", |f| {
        broken
            .iter()
            .all(|(kind, name, _)| has_conditions(f, kind, name, "False", "False"))
    })
    .await;
    for (kind, name, missing) in broken {
        let (generation, status) = status_of(&fake, kind, name).expect("a status");
        assert_eq!(generation, Some(2), "{kind}/{name} was changed once");
        assert_eq!(status.observed_generation, Some(2));
        let refs = condition(&status, "ResolvedRefs").expect("ResolvedRefs");
        assert_eq!(refs.reason, "DanglingReference");
        assert!(
            refs.message.contains(&format!("\"{missing}\"")),
            "{kind}/{name}: {}",
            refs.message
        );
        let ready = condition(&status, "Ready").expect("Ready");
        assert_eq!(ready.reason, "DanglingReference", "{kind}/{name}");
        assert!(ready.message.contains(missing));
        fake.wait_until(WAIT, "a Warning event", |f| {
            events_about(f, kind, name).iter().any(|(t, reason, note)| {
                t == "Warning" && reason == "DanglingReference" && note.contains(missing)
            })
        })
        .await;
    }
    // The snapshot still loads: the number is published without its open route (so its calls
    // are recorded no_forwarding_scheme), the queue without the missing member.
    let published_number = |f: &FakeApi| -> Option<Value> {
        let cm: ConfigMap = f.get(NS, "dialtone-snapshot")?;
        let text = cm.data?.get(MANIFESTS_KEY)?.clone();
        dialtone_model::yaml::parse(&text)
            .documents
            .into_iter()
            .map(|d| d.value)
            .find(|d| d["kind"] == "PhoneNumber" && d["metadata"]["name"] == "ads-landing")
    };
    fake.wait_until(WAIT, "a snapshot without the broken references", |f| {
        published_number(f).is_some_and(|n| n["spec"]["routes"].get("open").is_none())
    })
    .await;
    snapshot_loads(&fake);
    let number = published_number(&fake).expect("the number is still published");
    let cm: ConfigMap = fake.get(NS, "dialtone-snapshot").expect("the snapshot");
    let manifests = &cm.data.expect("data")[MANIFESTS_KEY];
    assert!(!manifests.contains("ghost") && !manifests.contains("missing-secret"));
    assert!(number["spec"]["routes"].get("open").is_none(), "{number}");
    // Unaffected objects stay Ready.
    for (kind, name) in [
        ("Carrier", "primary-trunk"),
        ("Schedule", "office-hours"),
        ("Blocklist", "spam"),
    ] {
        assert!(
            has_conditions(&fake, kind, name, "True", "True"),
            "{kind}/{name}"
        );
    }
    // The queue lost its only member, so it is left out, and so is every scheme that queues
    // into it: main-line, valid itself, is published without those routes.
    let (_, status) = status_of(&fake, "PhoneNumber", "main-line").expect("a status");
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DependencyNotReady")
    );
    assert!(
        ready.message.contains("\"main-menu\" is not ready"),
        "{}",
        ready.message
    );
    assert_eq!(
        condition(&status, "ResolvedRefs")
            .expect("ResolvedRefs")
            .status,
        "True"
    );

    // Fixing them makes everything Ready again, with Normal events.
    Api::<PhoneNumber>::namespaced(client.clone(), NS)
        .patch(
            "ads-landing",
            &pp,
            &merge(json!({"spec": {"routes": {"open": "sales"}}})),
        )
        .await
        .expect("fix the number");
    Api::<CallQueue>::namespaced(client.clone(), NS)
        .patch(
            "support",
            &pp,
            &merge(json!({"spec": {"members": {"agents": null,
                "selector": {"matchLabels": {"team": "support"}}}}})),
        )
        .await
        .expect("fix the queue");
    Api::<dialtone_model::resources::Agent>::namespaced(client.clone(), NS)
        .patch(
            "olena",
            &pp,
            &merge(json!({"spec": {"sipCredentialsSecretRef": {"name": "agent-olena"}}})),
        )
        .await
        .expect("fix the agent");
    fake.wait_until(WAIT, "everything Ready again", all_ready)
        .await;
    fake.wait_until(WAIT, "a Normal event", |f| {
        events_about(f, "PhoneNumber", "ads-landing")
            .iter()
            .any(|(t, reason, _)| t == "Normal" && reason == "Valid")
    })
    .await;
    snapshot_loads(&fake);
    operator.stop().await;
}

fn min_replicas(fake: &FakeApi) -> Option<i32> {
    let hpa: HorizontalPodAutoscaler = fake.get(NS, "acme-media-node")?;
    hpa.spec?.min_replicas
}

#[tokio::test]
async fn campaign_floors_are_applied_and_lifted_at_their_instants() {
    let (fake, clock, operator) = demo().await;
    assert_eq!(min_replicas(&fake), Some(2));
    operator.settle().await;
    // black-friday: 2026-11-27T08:00:00+02:00 .. 2026-11-30T22:00:00+02:00, floor 8.
    let from = at("2026-11-27T06:00:00Z");
    let to = at("2026-11-30T20:00:00Z");
    let second = std::time::Duration::from_secs(1);

    // A second before the campaign: a reconcile (the resync) leaves the floor alone.
    let before = operator.activity().reconciles;
    clock.set(from - jiff::SignedDuration::from_secs(1));
    operator
        .wait_for("a reconcile before the campaign", |a| a.reconciles > before)
        .await;
    assert_eq!(min_replicas(&fake), Some(2));

    // At `from` exactly, the floor rises.
    clock.advance(second);
    fake.wait_until(WAIT, "the campaign floor", |f| min_replicas(f) == Some(8))
        .await;
    let hpa: HorizontalPodAutoscaler = fake.get(NS, "acme-media-node").expect("the HPA");
    assert_eq!(
        hpa.metadata.annotations.expect("annotations")["dialtone.dev/active-campaigns"],
        "black-friday"
    );
    operator.settle().await;

    // A second before `to`, still raised; at `to`, lifted.
    let before = operator.activity().reconciles;
    clock.set(to - jiff::SignedDuration::from_secs(1));
    operator
        .wait_for("a reconcile before the end", |a| a.reconciles > before)
        .await;
    assert_eq!(min_replicas(&fake), Some(8));
    clock.advance(second);
    fake.wait_until(WAIT, "the floor lifted", |f| min_replicas(f) == Some(2))
        .await;
    let hpa: HorizontalPodAutoscaler = fake.get(NS, "acme-media-node").expect("the HPA");
    assert!(
        !hpa.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("dialtone.dev/active-campaigns"),
        "the campaign annotation is removed"
    );
    operator.stop().await;
}

#[tokio::test]
async fn deleting_the_call_center_leaves_nothing_behind() {
    let (fake, _clock, operator) = demo().await;
    operator.settle().await;
    let created: BTreeSet<(String, String)> = demo_documents()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_owned(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    Api::<CallCenter>::namespaced(fake.client(), NS)
        .delete("acme", &DeleteParams::default())
        .await
        .expect("delete the CallCenter");
    fake.wait_until(WAIT, "every owned object gone", |f| {
        golden_objects()
            .iter()
            .all(|(kind, name)| f.get_json(&golden_resource(kind), NS, name).is_none())
    })
    .await;
    // What is left in the namespace: what the user created (less the CallCenter), the prompts
    // ConfigMap, and Events.
    let left: Vec<(String, String)> = fake
        .keys()
        .into_iter()
        .filter(|(r, ns, _)| ns == NS && r != "events.k8s.io/v1/events")
        .map(|(r, _, n)| (r, n))
        .collect();
    for (resource, name) in &left {
        let user_made = created.iter().any(|(_, n)| n == name) || name == "dialtone-prompts";
        assert!(user_made, "{resource}/{name} was left behind");
    }
    assert_eq!(left.len(), created.len() - 1 + 1, "{left:?}");
    operator.stop().await;
}
