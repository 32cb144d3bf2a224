//! The fake API server against a real `kube::Client`: every verb the operator uses.

use std::time::Duration;

use dialtone_operator::testing::fake_api::FakeApi;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, reflector};
use serde_json::json;
use tokio_stream::StreamExt;

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("ns".to_owned()),
            labels: Some([("app".to_owned(), "x".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_owned(), value.to_owned())].into()),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn create_get_list_and_resource_versions() {
    let fake = FakeApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    let a = api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .expect("create");
    let meta = &a.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.resource_version.as_deref(), Some("1"));
    assert_eq!(meta.generation, Some(1));
    let err = api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .expect_err("a duplicate");
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "AlreadyExists"));
    api.create(&PostParams::default(), &cm("b", "2"))
        .await
        .expect("create");
    let got = api.get("b").await.expect("get");
    assert_eq!(got.data.expect("data")["k"], "2");
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.metadata.resource_version.as_deref(), Some("2"));
    let selected = api
        .list(
            &ListParams::default()
                .labels("app=x")
                .fields("metadata.name=a"),
        )
        .await
        .expect("list with selectors");
    assert_eq!(selected.items.len(), 1);
    let missing = api.get("nope").await.expect_err("not found");
    assert!(matches!(missing, kube::Error::Api(ref e) if e.code == 404));
    let counts = fake.requests();
    assert_eq!(counts.verb("create"), 3);
    assert_eq!(counts.verb("get"), 2);
    assert_eq!(counts.verb("list"), 2);
    assert_eq!(counts.writes(), 3);
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let fake = FakeApi::start().await;
    let api: Api<Lease> = Api::namespaced(fake.client(), "ns");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("l".to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    };
    let created = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let mut first = created.clone();
    first.spec = Some(Default::default());
    first.spec.as_mut().expect("spec").holder_identity = Some("a".to_owned());
    let replaced = api
        .replace("l", &PostParams::default(), &first)
        .await
        .expect("replace");
    assert_eq!(
        replaced.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    let mut stale = created;
    stale.spec = Some(Default::default());
    stale.spec.as_mut().expect("spec").holder_identity = Some("b".to_owned());
    let err = api
        .replace("l", &PostParams::default(), &stale)
        .await
        .expect_err("a conflict");
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "Conflict"));
}

#[tokio::test]
async fn server_side_apply_merges_and_drops_fields_no_longer_applied() {
    let fake = FakeApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    let pp = PatchParams::apply("me").force();
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1", "b": "2"}});
    let created = api
        .patch("c", &pp, &Patch::Apply(&first))
        .await
        .expect("apply creates");
    assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"other": "x"}})),
    )
    .await
    .expect("merge patch");
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "3"}});
    let applied = api
        .patch("c", &pp, &Patch::Apply(&second))
        .await
        .expect("apply");
    let data = applied.data.expect("data");
    assert_eq!(data.get("a").map(String::as_str), Some("3"));
    assert_eq!(data.get("b"), None, "b is no longer applied by me");
    assert_eq!(data.get("other").map(String::as_str), Some("x"));
    let rv = applied.metadata.resource_version.clone();
    let again = api
        .patch("c", &pp, &Patch::Apply(&second))
        .await
        .expect("apply");
    assert_eq!(
        again.metadata.resource_version, rv,
        "a no-op apply changes nothing"
    );
}

#[tokio::test]
async fn status_subresource_and_secret_string_data() {
    let fake = FakeApi::start().await;
    let deployments: Api<Deployment> = Api::namespaced(fake.client(), "ns");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}}},
        "status": {"replicas": 9}
    }))
    .expect("a Deployment");
    let created = deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    assert!(created.status.is_none(), "status is not set on create");
    let pp = PatchParams::apply("me").force();
    let with_status = deployments
        .patch_status(
            "d",
            &pp,
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d"}, "status": {"replicas": 3}})),
        )
        .await
        .expect("status apply");
    assert_eq!(with_status.status.expect("status").replicas, Some(3));
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status does not bump generation"
    );
    let main = deployments
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}, "spec": {"replicas": 2}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        main.status.expect("status").replicas,
        Some(3),
        "main ignores status"
    );
    assert_eq!(main.metadata.generation, Some(2));
    let got = deployments.get_status("d").await.expect("get status");
    assert_eq!(got.status.expect("status").replicas, Some(3));

    let secrets: Api<Secret> = Api::namespaced(fake.client(), "ns");
    let s: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s"}, "stringData": {"password": "pw"}}))
    .expect("a Secret");
    let stored = secrets
        .create(&PostParams::default(), &s)
        .await
        .expect("create");
    assert_eq!(stored.data.expect("data")["password"].0, b"pw".to_vec());
    assert!(stored.string_data.is_none());
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let fake = FakeApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    let owner = api
        .create(&PostParams::default(), &cm("owner", "1"))
        .await
        .expect("create");
    let mut child = cm("child", "2");
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            name: "owner".to_owned(),
            uid: owner.metadata.uid.clone().expect("uid"),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    ]);
    api.create(&PostParams::default(), &child)
        .await
        .expect("create");
    let mut grandchild = cm("grandchild", "3");
    let child_uid = api
        .get("child")
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    grandchild.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            name: "child".to_owned(),
            uid: child_uid,
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &grandchild)
        .await
        .expect("create");
    api.create(&PostParams::default(), &cm("bystander", "4"))
        .await
        .expect("create");
    api.delete("owner", &DeleteParams::default())
        .await
        .expect("delete");
    let names: Vec<String> = fake
        .list::<ConfigMap>(Some("ns"))
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["bystander".to_owned()]);
}

#[tokio::test]
async fn watches_stream_changes_to_a_reflector() {
    let fake = FakeApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "ns");
    api.create(&PostParams::default(), &cm("before", "0"))
        .await
        .expect("create");
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("app=x")),
    )
    .touched_objects();
    // The stream must be polled for the store to fill: forward it from a task.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx
                .send(item.map(|o| o.metadata.name.unwrap_or_default()))
                .is_err()
            {
                return;
            }
        }
    });
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event")
            .expect("a stream item")
            .expect("no error")
    };
    assert_eq!(next().await, "before");
    reader.wait_until_ready().await.expect("the store fills");
    api.create(&PostParams::default(), &cm("after", "1"))
        .await
        .expect("create");
    assert_eq!(next().await, "after");
    // Leaving the label selection is a deletion for this watch.
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .expect("relabel");
    assert_eq!(next().await, "after");
    fake.wait_until(Duration::from_secs(10), "the store drops it", |_| {
        reader.state().len() == 1
    })
    .await;
    forward.abort();
    assert_eq!(fake.requests().verb("watch"), 1);
}
