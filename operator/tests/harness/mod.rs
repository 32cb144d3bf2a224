//! End-to-end harness: the fake API server, `examples/demo` applied through it, and operators
//! started on a manual clock.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dialtone_model::resources::{
    Agent, Blocklist, CallCenter, CallQueue, Carrier, Condition, ForwardingScheme, PhoneNumber,
    ResourceStatus, Schedule,
};
use dialtone_operator::{
    Activity, LeaseTimings, ManualClock, Observer, OperatorError, OperatorOptions, run_with,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::{ByteString, NamespaceResourceScope};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use dialtone_operator::testing::fake_api::{FakeApi, resource_id};

/// The demo's namespace.
pub const NS: &str = "telephony";
/// Where the operator runs.
pub const OPERATOR_NS: &str = "dialtone-system";
/// Deadline of every wait.
pub const WAIT: Duration = Duration::from_secs(30);
/// The operator's resync interval in the tests (on the manual clock).
pub const RESYNC: Duration = Duration::from_secs(300);
/// The image the golden files are rendered with.
pub const IMAGE: &str = "ghcr.io/dialtone-dev/dialtone:0.1.0";
/// A week before the demo's campaign: the golden files' instant.
pub const START: &str = "2026-11-20T12:00:00Z";

/// An RFC 3339 instant.
pub fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

fn demo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo")
}

/// Every document of `examples/demo/*.yaml` (secrets included), as JSON, in file order.
pub fn demo_documents() -> Vec<Value> {
    let mut names: Vec<String> = std::fs::read_dir(demo_dir())
        .expect("examples/demo is readable")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    let mut docs = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(demo_dir().join(&name)).expect("a demo file");
        let parsed = dialtone_model::yaml::parse(&text);
        assert!(parsed.errors.is_empty(), "{name}: {:?}", parsed.errors);
        docs.extend(parsed.documents.into_iter().map(|d| d.value));
    }
    docs
}

/// The prompt names of `examples/demo/prompts`.
pub fn demo_prompts() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(demo_dir().join("prompts"))
        .expect("examples/demo/prompts is readable")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".wav")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Creates an object from JSON through the API.
pub async fn create<K>(client: &kube::Client, value: Value) -> K
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    let ns = object.namespace().unwrap_or_else(|| NS.to_owned());
    Api::<K>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &object)
        .await
        .expect("the object is created")
}

/// Creates one demo document, whatever its kind.
pub async fn create_document(client: &kube::Client, doc: Value) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    match kind.as_str() {
        "CallCenter" => drop(create::<CallCenter>(client, doc).await),
        "Carrier" => drop(create::<Carrier>(client, doc).await),
        "Schedule" => drop(create::<Schedule>(client, doc).await),
        "Agent" => drop(create::<Agent>(client, doc).await),
        "CallQueue" => drop(create::<CallQueue>(client, doc).await),
        "ForwardingScheme" => drop(create::<ForwardingScheme>(client, doc).await),
        "PhoneNumber" => drop(create::<PhoneNumber>(client, doc).await),
        "Blocklist" => drop(create::<Blocklist>(client, doc).await),
        "Secret" => drop(create::<Secret>(client, doc).await),
        other => panic!("the demo has a {other}"),
    }
}

/// The prompts ConfigMap the demo CallCenter names: one key `<name>.wav` per demo prompt.
pub fn prompts_config_map() -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("dialtone-prompts".to_owned()),
            namespace: Some(NS.to_owned()),
            ..Default::default()
        },
        binary_data: Some(
            demo_prompts()
                .into_iter()
                .map(|n| (format!("{n}.wav"), ByteString(b"RIFF".to_vec())))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// `kubectl apply -f examples/demo/` (creates only), plus the prompts ConfigMap.
pub async fn apply_demo(fake: &FakeApi) {
    let client = fake.client();
    for doc in demo_documents() {
        create_document(&client, doc).await;
    }
    Api::<ConfigMap>::namespaced(client, NS)
        .create(&PostParams::default(), &prompts_config_map())
        .await
        .expect("the prompts ConfigMap is created");
}

/// `(kind, name)` of every demo resource of the eight kinds.
pub fn demo_resources() -> Vec<(String, String)> {
    demo_documents()
        .iter()
        .filter(|d| d["kind"] != "Secret")
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_owned(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// The operator's settings in the tests.
pub fn options(pod: &str) -> OperatorOptions {
    OperatorOptions {
        operator_namespace: OPERATOR_NS.to_owned(),
        pod_name: pod.to_owned(),
        lease_name: "dialtone-operator-leader".to_owned(),
        image: IMAGE.to_owned(),
        resync_interval: RESYNC,
        debounce: Duration::from_millis(20),
        lease: LeaseTimings::default(),
        ..OperatorOptions::default()
    }
}

/// One running operator replica.
pub struct Operator {
    pub observer: Observer,
    pub shutdown: watch::Sender<bool>,
    pub task: JoinHandle<Result<(), OperatorError>>,
}

impl Operator {
    /// Starts a replica named `pod` on `clock`.
    pub fn start(fake: &FakeApi, clock: &ManualClock, pod: &str) -> Self {
        Self::start_with(fake, clock, options(pod))
    }

    /// Starts a replica with these settings.
    pub fn start_with(fake: &FakeApi, clock: &ManualClock, options: OperatorOptions) -> Self {
        let observer = Observer::default();
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(run_with(
            fake.client(),
            options,
            Arc::new(clock.clone()),
            observer.clone(),
            rx,
        ));
        Self {
            observer,
            shutdown,
            task,
        }
    }

    /// The activity so far.
    pub fn activity(&self) -> Activity {
        self.observer.activity()
    }

    /// Waits for `condition` on the activity; panics naming `what` on timeout.
    pub async fn wait_for(&self, what: &str, condition: impl FnMut(&Activity) -> bool) -> Activity {
        match self.observer.wait_for(WAIT, condition).await {
            Some(a) => a,
            None => panic!(
                "timed out waiting for {what}; activity: {:?}",
                self.activity()
            ),
        }
    }

    /// Waits until a reconcile finished without writing anything: the operator has caught up.
    pub async fn settle(&self) -> Activity {
        self.wait_for("a reconcile that writes nothing", |a| {
            a.reconciles > 0 && a.last.writes() == 0
        })
        .await
    }

    /// Advances the clock by the resync interval and waits for the reconcile it causes.
    pub async fn resync(&self, clock: &ManualClock) -> Activity {
        let before = self.activity().reconciles;
        clock.advance(RESYNC);
        self.wait_for("the resync reconcile", |a| a.reconciles > before)
            .await
    }

    /// Stops the replica gracefully (it releases the Lease).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the operator stops");
        result
            .expect("the operator task did not panic")
            .expect("the operator stops cleanly");
    }
}

/// The status of a stored resource of the eight kinds.
pub fn status_of(fake: &FakeApi, kind: &str, name: &str) -> Option<(Option<i64>, ResourceStatus)> {
    let resource = match kind {
        "CallCenter" => resource_id::<CallCenter>(),
        "Carrier" => resource_id::<Carrier>(),
        "Schedule" => resource_id::<Schedule>(),
        "Agent" => resource_id::<Agent>(),
        "CallQueue" => resource_id::<CallQueue>(),
        "ForwardingScheme" => resource_id::<ForwardingScheme>(),
        "PhoneNumber" => resource_id::<PhoneNumber>(),
        "Blocklist" => resource_id::<Blocklist>(),
        other => panic!("not one of the eight kinds: {other}"),
    };
    let object = fake.get_json(&resource, NS, name)?;
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let status = serde_json::from_value(object.get("status")?.clone()).ok()?;
    Some((generation, status))
}

/// A condition of a status.
pub fn condition<'a>(status: &'a ResourceStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `kind/name` has `Ready` and `ResolvedRefs` with these statuses, for its current
/// generation.
pub fn has_conditions(fake: &FakeApi, kind: &str, name: &str, ready: &str, refs: &str) -> bool {
    let Some((generation, status)) = status_of(fake, kind, name) else {
        return false;
    };
    let fresh = |c: &Condition| c.observed_generation == generation;
    status.observed_generation == generation
        && condition(&status, "Ready").is_some_and(|c| c.status == ready && fresh(c))
        && condition(&status, "ResolvedRefs").is_some_and(|c| c.status == refs && fresh(c))
}

/// Every demo resource Ready=True and ResolvedRefs=True for its current generation.
pub fn all_ready(fake: &FakeApi) -> bool {
    demo_resources()
        .iter()
        .all(|(kind, name)| has_conditions(fake, kind, name, "True", "True"))
}

/// `Kind/name` lines of the golden apply order.
pub fn golden_objects() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/apply-order.txt");
    std::fs::read_to_string(path)
        .expect("tests/golden/apply-order.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (kind, name) = l.split_once('/').expect("Kind/name");
            (kind.to_owned(), name.to_owned())
        })
        .collect()
}

/// The fake API's resource id of a golden kind.
pub fn golden_resource(kind: &str) -> String {
    match kind {
        "Secret" => "/v1/secrets",
        "ConfigMap" => "/v1/configmaps",
        "ServiceAccount" => "/v1/serviceaccounts",
        "PersistentVolumeClaim" => "/v1/persistentvolumeclaims",
        "Service" => "/v1/services",
        "Role" => "rbac.authorization.k8s.io/v1/roles",
        "RoleBinding" => "rbac.authorization.k8s.io/v1/rolebindings",
        "Deployment" => "apps/v1/deployments",
        "PodDisruptionBudget" => "policy/v1/poddisruptionbudgets",
        "HorizontalPodAutoscaler" => "autoscaling/v2/horizontalpodautoscalers",
        other => panic!("no golden kind {other}"),
    }
    .to_owned()
}

/// Whether every golden object exists.
pub fn all_golden_objects_exist(fake: &FakeApi) -> bool {
    golden_objects()
        .iter()
        .all(|(kind, name)| fake.get_json(&golden_resource(kind), NS, name).is_some())
}

/// Events recorded about `kind/name` in the demo namespace: `(type, reason, note)`.
pub fn events_about(fake: &FakeApi, kind: &str, name: &str) -> Vec<(String, String, String)> {
    let keys: BTreeSet<_> = fake
        .keys()
        .into_iter()
        .filter(|(r, ns, _)| r == "events.k8s.io/v1/events" && ns == NS)
        .collect();
    keys.into_iter()
        .filter_map(|(r, ns, n)| fake.get_json(&r, &ns, &n))
        .filter(|e| {
            e.pointer("/regarding/kind").and_then(Value::as_str) == Some(kind)
                && e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
        })
        .map(|e| {
            let s = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (s("/type"), s("/reason"), s("/note"))
        })
        .collect()
}
