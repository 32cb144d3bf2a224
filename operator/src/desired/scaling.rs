//! Scaling the media nodes: the autoscaler on active calls, campaign floors, and which node goes
//! first on scale-down.
//!
//! The HorizontalPodAutoscaler (autoscaling/v2) scales the media-node Deployment on the Pods
//! metric [`ACTIVE_CALLS_METRIC`], aiming at `targetActiveCallsPerNode` per node. The metric
//! comes from each node's `/metrics` through the custom metrics API, so the cluster needs an
//! adapter (prometheus-adapter or KEDA's metrics server) exposing it.
//!
//! Campaigns raise the floor: between a campaign's `from` (inclusive) and `to` (exclusive) the
//! autoscaler's `minReplicas` is at least the campaign's `minReplicas`. The operator recomputes
//! the floor on every reconcile and requeues at [`next_floor_change`], so the floor rises and
//! falls on the second. The clock is the [`super::BuildContext::now`] it is given.

use dialtone_model::resources::call_center::{CampaignSpec, MediaNodesSpec};
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::BuildError;
use super::common::{Component, Names, Owner};

/// The media nodes' gauge of calls in progress, per pod.
pub const ACTIVE_CALLS_METRIC: &str = "dialtone_active_calls";
/// The annotation the ReplicaSet controller reads to pick pods to remove (lowest first).
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Annotation on the autoscaler naming the campaigns that set its floor, for `kubectl describe`.
pub const ACTIVE_CAMPAIGNS_ANNOTATION: &str = "dialtone.dev/active-campaigns";

/// A campaign's `[from, to)` window.
pub fn campaign_window(campaign: &CampaignSpec) -> Result<(Timestamp, Timestamp), BuildError> {
    let parse = |field: &'static str, value: &str| {
        value
            .parse::<Timestamp>()
            .map_err(|e| BuildError::InvalidCampaignTime {
                campaign: campaign.name.clone(),
                field,
                value: value.to_owned(),
                message: e.to_string(),
            })
    };
    Ok((parse("from", &campaign.from)?, parse("to", &campaign.to)?))
}

/// The campaigns in force at `now`: `from <= now < to`. A campaign whose times do not parse is
/// never in force (the loader and [`super::desired_objects`] reject it anyway).
pub fn active_campaigns(
    spec: &MediaNodesSpec,
    now: Timestamp,
) -> impl Iterator<Item = &CampaignSpec> {
    spec.campaigns
        .iter()
        .filter(move |c| campaign_window(c).is_ok_and(|(from, to)| from <= now && now < to))
}

/// The pool's floor at `now`: `minReplicas`, raised by every campaign in force.
pub fn effective_min_replicas(spec: &MediaNodesSpec, now: Timestamp) -> i32 {
    active_campaigns(spec, now)
        .map(|c| c.min_replicas)
        .fold(spec.min_replicas, i32::max)
}

/// The next instant after `now` at which the floor may change: the earliest campaign start or
/// end still ahead. The controller requeues the CallCenter for exactly then.
pub fn next_floor_change(spec: &MediaNodesSpec, now: Timestamp) -> Option<Timestamp> {
    spec.campaigns
        .iter()
        .filter_map(|c| campaign_window(c).ok())
        .flat_map(|(from, to)| [from, to])
        .filter(|t| *t > now)
        .min()
}

/// The autoscaler of the media nodes at `now`.
///
/// `minReplicas` is the effective floor, capped at `maxReplicas` (the API server refuses
/// min > max; the loader already rejects a campaign floor above `maxReplicas`). Scaling up is
/// immediate; scaling down waits ten minutes of lower load and removes one node per two minutes,
/// because every removal starts a drain of up to `drainTimeoutSeconds` and call volume during a
/// campaign comes in waves.
pub fn autoscaler(
    owner: &Owner,
    names: &Names,
    spec: &MediaNodesSpec,
    now: Timestamp,
) -> HorizontalPodAutoscaler {
    let max = spec.max_replicas.max(1);
    let floor = effective_min_replicas(spec, now).clamp(1, max);
    let mut metadata = owner.meta(&names.media_node, Component::MediaNode);
    let campaigns: Vec<&str> = active_campaigns(spec, now)
        .map(|c| c.name.as_str())
        .collect();
    if !campaigns.is_empty() {
        metadata.annotations =
            Some([(ACTIVE_CAMPAIGNS_ANNOTATION.to_owned(), campaigns.join(","))].into());
    }
    let policy = |type_: &str, value: i32, period_seconds: i32| HPAScalingPolicy {
        type_: type_.to_owned(),
        value,
        period_seconds,
    };
    HorizontalPodAutoscaler {
        metadata,
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: names.media_node.clone(),
            },
            min_replicas: Some(floor),
            max_replicas: max,
            metrics: Some(vec![MetricSpec {
                type_: "Pods".to_owned(),
                pods: Some(PodsMetricSource {
                    metric: MetricIdentifier {
                        name: ACTIVE_CALLS_METRIC.to_owned(),
                        ..MetricIdentifier::default()
                    },
                    target: MetricTarget {
                        type_: "AverageValue".to_owned(),
                        average_value: Some(Quantity(
                            spec.target_active_calls_per_node.to_string(),
                        )),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_up: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    select_policy: Some("Max".to_owned()),
                    policies: Some(vec![policy("Percent", 100, 15), policy("Pods", 4, 15)]),
                    ..HPAScalingRules::default()
                }),
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(600),
                    select_policy: Some("Min".to_owned()),
                    policies: Some(vec![policy("Pods", 1, 120)]),
                    ..HPAScalingRules::default()
                }),
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

/// The `controller.kubernetes.io/pod-deletion-cost` of a node with `active_calls` calls: the
/// call count itself (saturating at `i32::MAX`). The ReplicaSet controller removes the pods with
/// the lowest cost first, so scale-down picks the idlest node and the fewest calls wait on a
/// drain. Monotonic: more calls never cost less.
pub fn pod_deletion_cost(active_calls: u32) -> i32 {
    i32::try_from(active_calls).unwrap_or(i32::MAX)
}

/// Whether a pod whose annotation holds `current` should be patched for `active_calls`.
///
/// Patching every pod on every call would cost an API request per call; the annotation only
/// needs to be *near* the count to order nodes. So it is updated when it is missing, when either
/// side is zero and the other is not (an idle node must look idle — it is the one to remove),
/// or when it is off by at least a tenth of the larger value.
pub fn deletion_cost_update_due(current: Option<i32>, active_calls: u32) -> bool {
    let desired = i64::from(pod_deletion_cost(active_calls));
    let Some(current) = current.map(i64::from) else {
        return true;
    };
    if current == desired {
        return false;
    }
    if current == 0 || desired == 0 {
        return true;
    }
    (current - desired).abs() >= (current.max(desired) / 10).max(1)
}
