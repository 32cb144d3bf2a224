//! Properties of the desired objects beyond the golden files: campaign floors at their exact
//! instants, pod-deletion cost, owner references and labels on everything, least-privilege RBAC,
//! the SQLite / hostNetwork / Service-type variants, and the snapshot's round trip through the
//! loader.

mod support;

use dialtone_model::loader::{SourceFile, load};
use dialtone_model::resources::CallCenter;
use dialtone_operator::desired::common::Component;
use dialtone_operator::desired::rbac::component_rules;
use dialtone_operator::desired::scaling::deletion_cost_update_due;
use dialtone_operator::desired::snapshot::{
    MANIFESTS_KEY, SECRETS_KEY, SnapshotBundle, referenced_secrets, render_secrets,
};
use dialtone_operator::desired::{SIP_SERVICE_TYPE_ANNOTATION, desired_snapshot_objects};
use dialtone_operator::{
    BuildContext, BuildError, DesiredObject, SipServiceType, desired_objects,
    effective_min_replicas, next_floor_change, pod_deletion_cost,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use support::{at, demo_call_center, golden_context};

fn objects(cc: &CallCenter, ctx: &BuildContext) -> Vec<DesiredObject> {
    desired_objects(cc, ctx).expect("the objects build")
}

fn deployment<'a>(objects: &'a [DesiredObject], name: &str) -> &'a Deployment {
    objects
        .iter()
        .find_map(|o| match o {
            DesiredObject::Deployment(d) if o.name() == name => Some(d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template")
}

fn container(d: &Deployment) -> &Container {
    pod(d).containers.first().expect("a container")
}

fn env_names(c: &Container) -> Vec<&str> {
    c.env.iter().flatten().map(|e| e.name.as_str()).collect()
}

fn service<'a>(objects: &'a [DesiredObject], name: &str) -> &'a Service {
    objects
        .iter()
        .find_map(|o| match o {
            DesiredObject::Service(s) if o.name() == name => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Service {name}"))
}

fn hpa(objects: &[DesiredObject]) -> &HorizontalPodAutoscaler {
    objects
        .iter()
        .find_map(|o| match o {
            DesiredObject::HorizontalPodAutoscaler(h) => Some(h),
            _ => None,
        })
        .expect("an autoscaler")
}

#[test]
fn campaign_floor_applies_and_lifts_exactly_at_its_times() {
    let cc = demo_call_center();
    let m = &cc.spec.media_nodes;
    assert_eq!(
        effective_min_replicas(m, at("2026-11-27T08:00:00+02:00")),
        8
    );
    assert_eq!(effective_min_replicas(m, at("2026-11-27T05:59:59Z")), 2);
    assert_eq!(effective_min_replicas(m, at("2026-11-28T12:00:00Z")), 8);
    assert_eq!(
        effective_min_replicas(m, at("2026-11-30T21:59:59+02:00")),
        8
    );
    assert_eq!(
        effective_min_replicas(m, at("2026-11-30T22:00:00+02:00")),
        2
    );

    // The autoscaler carries the floor, and names the campaign while it holds.
    let mut ctx = golden_context();
    ctx.now = at("2026-11-27T08:00:00+02:00");
    let during = objects(&cc, &ctx);
    let h = hpa(&during);
    assert_eq!(h.spec.as_ref().and_then(|s| s.min_replicas), Some(8));
    let annotations = h.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("dialtone.dev/active-campaigns")
            .map(String::as_str),
        Some("black-friday")
    );
    ctx.now = at("2026-11-30T22:00:00+02:00");
    let after = objects(&cc, &ctx);
    assert_eq!(
        hpa(&after).spec.as_ref().and_then(|s| s.min_replicas),
        Some(2)
    );
    assert!(hpa(&after).metadata.annotations.is_none());
}

#[test]
fn next_floor_change_is_the_next_campaign_edge() {
    let cc = demo_call_center();
    let m = &cc.spec.media_nodes;
    let from = at("2026-11-27T08:00:00+02:00");
    let to = at("2026-11-30T22:00:00+02:00");
    assert_eq!(next_floor_change(m, at("2026-11-20T00:00:00Z")), Some(from));
    assert_eq!(next_floor_change(m, from), Some(to));
    assert_eq!(next_floor_change(m, to), None);

    // With overlapping campaigns the floor is the highest, and every edge is a change.
    let mut spec = m.clone();
    let mut second = spec.campaigns[0].clone();
    second.name = "cyber-monday".to_owned();
    second.from = "2026-11-30T06:00:00Z".to_owned();
    second.to = "2026-12-01T06:00:00Z".to_owned();
    second.min_replicas = 12;
    spec.campaigns.push(second);
    assert_eq!(
        effective_min_replicas(&spec, at("2026-11-30T07:00:00Z")),
        12
    );
    assert_eq!(
        effective_min_replicas(&spec, at("2026-11-30T21:00:00Z")),
        12
    );
    assert_eq!(
        effective_min_replicas(&spec, at("2026-12-01T05:00:00Z")),
        12
    );
    assert_eq!(effective_min_replicas(&spec, at("2026-12-01T06:00:00Z")), 2);
    assert_eq!(
        next_floor_change(&spec, from),
        Some(at("2026-11-30T06:00:00Z"))
    );
}

#[test]
fn a_campaign_with_a_bad_time_is_an_error() {
    let mut cc = demo_call_center();
    cc.spec.media_nodes.campaigns[0].from = "next friday".to_owned();
    let err = desired_objects(&cc, &golden_context()).expect_err("refused");
    assert!(matches!(
        err,
        BuildError::InvalidCampaignTime { field: "from", .. }
    ));
    // And the floor ignores it rather than guessing.
    assert_eq!(
        effective_min_replicas(&cc.spec.media_nodes, at("2026-11-28T00:00:00Z")),
        2
    );
}

#[test]
fn pod_deletion_cost_is_monotonic() {
    let samples = [
        0,
        1,
        2,
        5,
        10,
        199,
        200,
        201,
        10_000,
        i32::MAX as u32,
        u32::MAX,
    ];
    for pair in samples.windows(2) {
        assert!(pod_deletion_cost(pair[0]) <= pod_deletion_cost(pair[1]));
    }
    for calls in 0..2000 {
        assert!(pod_deletion_cost(calls) < pod_deletion_cost(calls + 1));
    }
    assert_eq!(pod_deletion_cost(0), 0);
    assert_eq!(pod_deletion_cost(u32::MAX), i32::MAX);

    assert!(deletion_cost_update_due(None, 0));
    assert!(!deletion_cost_update_due(Some(0), 0));
    assert!(
        deletion_cost_update_due(Some(0), 1),
        "an idle node must look idle"
    );
    assert!(deletion_cost_update_due(Some(3), 0));
    assert!(!deletion_cost_update_due(Some(200), 195), "near enough");
    assert!(deletion_cost_update_due(Some(200), 170));
    assert!(deletion_cost_update_due(Some(5), 6));
}

#[test]
fn every_object_is_owned_by_the_call_center_and_labelled() {
    let cc = demo_call_center();
    let ctx = golden_context();
    let manifests = support::manifests(&support::demo_files());
    let bundle = SnapshotBundle::render(&manifests).expect("bundle");
    let mut all = objects(&cc, &ctx);
    all.extend(desired_snapshot_objects(&cc, &bundle, &ctx).expect("snapshot"));
    for object in &all {
        let what = format!("{}/{}", object.kind(), object.name());
        let meta = object.metadata();
        assert_eq!(meta.namespace.as_deref(), Some("telephony"), "{what}");
        let owners = meta.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{what}");
        let owner = &owners[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str()),
            ("dialtone.dev/v1alpha1", "CallCenter"),
            "{what}"
        );
        assert_eq!(
            (owner.name.as_str(), owner.uid.as_str()),
            ("acme", support::DEMO_UID),
            "{what}"
        );
        assert_eq!(owner.controller, Some(true), "{what}");
        assert_eq!(owner.block_owner_deletion, Some(true), "{what}");
        let labels = meta.labels.clone().unwrap_or_default();
        for key in ["name", "instance", "component", "managed-by", "part-of"] {
            assert!(
                labels.contains_key(&format!("app.kubernetes.io/{key}")),
                "{what} lacks app.kubernetes.io/{key}"
            );
        }
        assert_eq!(labels["app.kubernetes.io/managed-by"], "dialtone-operator");
        assert_eq!(labels["app.kubernetes.io/part-of"], "dialtone");
        assert_eq!(labels["app.kubernetes.io/instance"], "acme");
        let json = object.to_json().expect("json");
        assert_eq!(json["kind"], object.kind(), "{what}");
        assert_eq!(json["apiVersion"], object.api_version(), "{what}");
    }
}

#[test]
fn a_call_center_without_uid_or_with_an_unusable_name_is_refused() {
    let mut cc = demo_call_center();
    cc.metadata.uid = None;
    assert_eq!(
        desired_objects(&cc, &golden_context()),
        Err(BuildError::MissingMetadata("metadata.uid"))
    );
    let mut cc = demo_call_center();
    cc.metadata.name = Some("a".repeat(50));
    assert!(matches!(
        desired_objects(&cc, &golden_context()),
        Err(BuildError::InvalidName { .. })
    ));
    cc.metadata.name = Some("1st-floor".to_owned());
    assert!(matches!(
        desired_objects(&cc, &golden_context()),
        Err(BuildError::InvalidName { .. })
    ));
}

#[test]
fn component_rbac_is_least_privilege() {
    let cc = demo_call_center();
    let all = objects(&cc, &golden_context());
    let roles: Vec<_> = all
        .iter()
        .filter_map(|o| match o {
            DesiredObject::Role(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(roles.len(), 3, "router, reporter, media node");
    for role in roles {
        let rules = role.rules.clone().unwrap_or_default();
        assert!(!rules.is_empty());
        for rule in rules {
            let all_strings = rule
                .verbs
                .iter()
                .chain(rule.resources.iter().flatten())
                .chain(rule.api_groups.iter().flatten())
                .chain(rule.resource_names.iter().flatten());
            for s in all_strings {
                assert!(!s.contains('*'), "wildcard in {rule:?}");
            }
            assert!(
                rule.verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
                "components only read: {rule:?}"
            );
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["dialtone-snapshot".to_owned()][..]),
                "every rule is pinned to the snapshot: {rule:?}"
            );
            assert!(rule.non_resource_urls.is_none());
        }
    }
    for component in [Component::Snapshot, Component::Recordings] {
        assert!(component_rules(component).is_empty());
    }
    // Every component runs as its own ServiceAccount.
    for name in ["acme-router", "acme-reporter", "acme-media-node"] {
        assert_eq!(
            pod(deployment(&all, name)).service_account_name.as_deref(),
            Some(name)
        );
    }
}

#[test]
fn media_nodes_drain_and_are_scaled_by_the_autoscaler() {
    let cc = demo_call_center();
    let all = objects(&cc, &golden_context());
    let media = deployment(&all, "acme-media-node");
    let spec = media.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, None, "the autoscaler owns replicas");
    assert_eq!(pod(media).termination_grace_period_seconds, Some(3600 + 30));
    let c = container(media);
    let hook = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.clone());
    assert_eq!(
        hook,
        Some(vec!["dialtone".into(), "media-node".into(), "drain".into()])
    );
    let probe_path = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        p.and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(c.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(c.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    // No checksum of the configuration in the pod template: a snapshot change restarts nothing.
    for name in ["acme-router", "acme-reporter", "acme-media-node"] {
        let template = &deployment(&all, name).spec.as_ref().expect("spec").template;
        assert!(
            template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .is_none(),
            "{name}"
        );
    }

    let h = hpa(&all).spec.clone().expect("hpa spec");
    assert_eq!(h.scale_target_ref.name, "acme-media-node");
    assert_eq!((h.min_replicas, h.max_replicas), (Some(2), 20));
    let metric = h
        .metrics
        .unwrap_or_default()
        .remove(0)
        .pods
        .expect("Pods metric");
    assert_eq!(metric.metric.name, "dialtone_active_calls");
    assert_eq!(metric.target.type_, "AverageValue");
    assert_eq!(
        metric.target.average_value.map(|q| q.0).as_deref(),
        Some("200")
    );
}

#[test]
fn sqlite_reporter_gets_a_volume_one_replica_and_recreate() {
    let mut cc = demo_call_center();
    cc.spec.reporter.database.url_secret_ref = None;
    let all = objects(&cc, &golden_context());
    assert!(
        all.iter()
            .any(|o| matches!(o, DesiredObject::PersistentVolumeClaim(_))
                && o.name() == "acme-reporter-data")
    );
    let reporter = deployment(&all, "acme-reporter");
    let spec = reporter.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate")
    );
    assert!(!env_names(container(reporter)).contains(&"DIALTONE_DATABASE_URL"));
    let claims: Vec<_> = pod(reporter)
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    assert!(claims.contains(&"acme-reporter-data"));

    // With PostgreSQL: the URL comes from the Secret, no data volume.
    let cc = demo_call_center();
    let all = objects(&cc, &golden_context());
    assert!(!all.iter().any(|o| o.name() == "acme-reporter-data"));
    let reporter = deployment(&all, "acme-reporter");
    let url = container(reporter)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "DIALTONE_DATABASE_URL")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .map(|s| (s.name.clone(), s.key.clone()));
    assert_eq!(url, Some(("dialtone-db".to_owned(), "url".to_owned())));
}

#[test]
fn host_network_and_sip_service_variants() {
    let mut cc = demo_call_center();
    cc.spec.media_nodes.rtp.host_network = true;
    cc.spec.media_nodes.sip.transports =
        vec![dialtone_model::resources::call_center::SipTransport::Udp];
    cc.metadata.annotations = Some(
        [(
            SIP_SERVICE_TYPE_ANNOTATION.to_owned(),
            "ClusterIP".to_owned(),
        )]
        .into(),
    );
    let all = objects(&cc, &golden_context());
    let media = pod(deployment(&all, "acme-media-node"));
    assert_eq!(media.host_network, Some(true));
    assert_eq!(media.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let anti = media
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    assert!(anti.is_some_and(|terms| terms.len() == 1));
    let sip = service(&all, "acme-sip").spec.clone().expect("spec");
    assert_eq!(sip.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(sip.external_traffic_policy, None);
    let ports: Vec<_> = sip
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.protocol.unwrap_or_default()))
        .collect();
    assert_eq!(ports, vec![("sip-udp".to_owned(), "UDP".to_owned())]);

    // The operator-wide default applies without the annotation; a bad value is an error.
    let mut cc = demo_call_center();
    let mut ctx = golden_context();
    ctx.sip_service_type = SipServiceType::NodePort;
    let all = objects(&cc, &ctx);
    let sip = service(&all, "acme-sip").spec.clone().expect("spec");
    assert_eq!(sip.type_.as_deref(), Some("NodePort"));
    assert_eq!(sip.external_traffic_policy.as_deref(), Some("Local"));
    cc.metadata.annotations =
        Some([(SIP_SERVICE_TYPE_ANNOTATION.to_owned(), "Ingress".to_owned())].into());
    assert!(matches!(
        desired_objects(&cc, &ctx),
        Err(BuildError::InvalidAnnotation { .. })
    ));
}

#[test]
fn the_snapshot_round_trips_through_the_loader() {
    let env = support::demo_env();
    let direct = load(&support::demo_files(), &env);
    let errors: Vec<String> = direct.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let manifests = support::manifests(&support::demo_files());
    let bundle = SnapshotBundle::render(&manifests).expect("bundle");
    let objects =
        desired_snapshot_objects(&demo_call_center(), &bundle, &golden_context()).expect("ok");
    let (DesiredObject::Secret(secret), DesiredObject::ConfigMap(config_map)) =
        (&objects[0], &objects[1])
    else {
        panic!("Secret first, then ConfigMap: {objects:?}");
    };
    let manifests_yaml = config_map.data.as_ref().expect("data")[MANIFESTS_KEY].clone();
    let secrets_yaml =
        String::from_utf8(secret.data.as_ref().expect("data")[SECRETS_KEY].0.clone())
            .expect("utf-8");
    let files = [
        SourceFile {
            path: MANIFESTS_KEY.to_owned(),
            text: manifests_yaml,
        },
        SourceFile {
            path: SECRETS_KEY.to_owned(),
            text: secrets_yaml,
        },
    ];
    let published = load(&files, &env);
    let errors: Vec<String> = published.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let (mut a, b) = (
        direct.snapshot.expect("direct"),
        published.snapshot.expect("published"),
    );
    // The bundle lists objects by name, as the API server does, so agents selected by labels
    // come in name order (the demo folder declares taras before iryna).
    for queue in a.queues.values_mut() {
        queue.members.sort();
    }
    // spec.access is never published: the components get their tokens from the kubelet, and
    // the dashboard tokens must not reach the media nodes through the snapshot.
    assert!(
        a.call_center.spec.access.is_some(),
        "the demo sets spec.access"
    );
    assert_eq!(b.call_center.spec.access, None);
    a.call_center.spec.access = None;
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "the same snapshot");
    // Rendering is deterministic and a fixed point: the bundle read back renders to itself.
    assert_eq!(SnapshotBundle::render(&manifests).expect("again"), bundle);
    let reread = support::manifests(&files);
    assert_eq!(SnapshotBundle::render(&reread).expect("reread"), bundle);
}

#[test]
fn only_referenced_secret_keys_are_published() {
    let mut files = support::demo_files();
    files.push(SourceFile {
        path: "extra.yaml".to_owned(),
        text:
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: unrelated\n  namespace: telephony\n\
               stringData:\n  token: hunter2\n"
                .to_owned(),
    });
    let manifests = support::manifests(&files);
    let refs = referenced_secrets(&manifests);
    let keys = |name: &str| refs.get(name).cloned();
    assert_eq!(
        keys("dialtone-db"),
        Some(Some(["url".to_owned()].into())),
        "a key reference copies that key"
    );
    assert_eq!(
        keys("carrier-one"),
        Some(None),
        "a credentials reference copies the Secret"
    );
    assert_eq!(keys("unrelated"), None);
    let yaml = render_secrets(&manifests).expect("render");
    assert!(!yaml.contains("unrelated"));
    assert!(!yaml.contains("hunter2"));
}

#[test]
fn an_oversized_snapshot_is_refused() {
    let huge = "#".repeat(1_000_001);
    let err = dialtone_operator::desired::desired_snapshot_configmap(
        &demo_call_center(),
        &huge,
        "",
        &golden_context(),
    )
    .expect_err("too large");
    assert!(matches!(
        err,
        BuildError::SnapshotTooLarge {
            object: "ConfigMap",
            ..
        }
    ));
}
