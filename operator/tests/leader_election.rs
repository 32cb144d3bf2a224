//! Leader election: of two replicas only the Lease holder reconciles; when it dies the other
//! takes over once the lease has expired, and at once when it shuts down cleanly.

mod harness;

use std::time::Duration;

use dialtone_operator::clock::until;
use dialtone_operator::testing::fake_api::FakeApi;
use dialtone_operator::{Clock, LeaseTimings, ManualClock};
use harness::*;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;

const LEASE: &str = "dialtone-operator-leader";

fn lease(fake: &FakeApi) -> (Option<String>, Option<Timestamp>, Option<i32>) {
    let lease: Lease = fake.get(OPERATOR_NS, LEASE).expect("the Lease");
    let spec = lease.spec.unwrap_or_default();
    let renew = spec
        .renew_time
        .and_then(|t| Timestamp::from_nanosecond(t.0.as_nanosecond()).ok());
    (spec.holder_identity, renew, spec.lease_transitions)
}

/// Two replicas on one clock, `a` leading, the demo Ready.
async fn two_replicas() -> (FakeApi, ManualClock, Operator, Operator) {
    let fake = FakeApi::start().await;
    apply_demo(&fake).await;
    let clock = ManualClock::new(at(START));
    let a = Operator::start(&fake, &clock, "operator-a");
    a.wait_for("operator-a to lead", |x| x.leader).await;
    let b = Operator::start(&fake, &clock, "operator-b");
    b.wait_for("operator-b to check the lease", |x| x.lease_checks >= 1)
        .await;
    assert_eq!(
        b.activity().standing_by_for.as_deref(),
        Some("operator-a"),
        "operator-b stands by for operator-a"
    );
    fake.wait_until(WAIT, "every resource Ready", all_ready)
        .await;
    a.settle().await;
    (fake, clock, a, b)
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_the_lease_expires() {
    let (fake, clock, a, b) = two_replicas().await;
    let timings = LeaseTimings::default();

    // Twenty seconds in retry-period steps — longer than the lease — while operator-a renews:
    // operator-b never takes over, never reconciles.
    for _ in 0..10 {
        let checks = b.activity().lease_checks;
        clock.advance(timings.retry_period);
        // operator-a renews every retry period (its timer restarts when a renewal completes, so
        // the lease is at most one period old).
        let recent =
            clock.now() - jiff::SignedDuration::try_from(timings.retry_period).expect("small");
        fake.wait_until(WAIT, "operator-a's renewal", |f| {
            lease(f).1.is_some_and(|t| t >= recent)
        })
        .await;
        b.wait_for("operator-b's check", |x| x.lease_checks > checks)
            .await;
        assert!(
            !b.activity().leader,
            "operator-b must not lead while a renews"
        );
    }
    assert!(a.activity().leader);
    assert!(a.activity().reconciles > 0);
    assert_eq!(b.activity().reconciles, 0, "the standby reconciles nothing");
    assert_eq!(b.activity().elected, 0);
    assert_eq!(lease(&fake).0.as_deref(), Some("operator-a"));

    // Kill operator-a: it stops renewing and does not release the Lease.
    a.task.abort();
    assert!(a.task.await.expect_err("aborted").is_cancelled());
    let killed_at = clock.now();
    let mut steps = 0;
    while !b.activity().leader {
        let checks = b.activity().lease_checks;
        clock.advance(timings.retry_period);
        b.wait_for("operator-b's check", |x| {
            x.lease_checks > checks || x.leader
        })
        .await;
        let waited = until(killed_at, clock.now());
        if !b.activity().leader {
            assert!(waited < timings.lease_duration + 2 * timings.retry_period);
        }
        steps += 1;
        assert!(steps < 20, "operator-b never took over");
    }
    let waited = until(killed_at, clock.now());
    assert!(
        waited >= timings.lease_duration,
        "operator-b took over after {waited:?}, before the lease expired"
    );
    eprintln!("operator-b took over {waited:?} after operator-a died");
    let (holder, _, transitions) = lease(&fake);
    assert_eq!(holder.as_deref(), Some("operator-b"));
    assert_eq!(transitions, Some(1));

    // The new leader does the work: it reconciles, and a change reaches status again.
    b.wait_for("operator-b to reconcile", |x| x.reconciles > 0)
        .await;
    let client = fake.client();
    kube::Api::<dialtone_model::resources::PhoneNumber>::namespaced(client, NS)
        .patch(
            "main-line",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"backup": "gone"}})),
        )
        .await
        .expect("break a number");
    fake.wait_until(WAIT, "operator-b to report the broken number", |f| {
        has_conditions(f, "PhoneNumber", "main-line", "False", "False")
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn a_leader_that_shuts_down_releases_the_lease_at_once() {
    let (fake, clock, a, b) = two_replicas().await;
    a.stop().await;
    assert_eq!(lease(&fake).0, None, "the lease is released");
    let released_at = clock.now();
    let checks = b.activity().lease_checks;
    clock.advance(LeaseTimings::default().retry_period);
    b.wait_for("operator-b to lead", |x| {
        x.leader || x.lease_checks > checks + 1
    })
    .await;
    assert!(
        b.activity().leader,
        "operator-b takes over at its next check"
    );
    assert_eq!(until(released_at, clock.now()), Duration::from_secs(2));
    assert_eq!(lease(&fake).0.as_deref(), Some("operator-b"));
    b.wait_for("operator-b to reconcile", |x| x.reconciles > 0)
        .await;
    b.stop().await;
}
