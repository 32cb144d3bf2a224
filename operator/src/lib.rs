//! Dialtone's operator: validates the eight `dialtone.dev` kinds, sets their status, and
//! reconciles a `CallCenter` into the router, reporter and media-node workloads.
//!
//! A reconcile is a pipeline: **read** the namespace's resources (from watch caches) →
//! **validate** them with the same loader as standalone mode (`dialtone_model::loader`) →
//! write **status** (`Ready`, `ResolvedRefs`, `observedGeneration`) and Events → **build** the
//! desired objects and the configuration snapshot → **server-side apply** them with one field
//! manager. [`desired`] is the build step: pure functions, golden-tested in `tests/golden.rs`.
//! [`controller`] is the rest, and keeps the media-node pods' deletion cost near their active
//! calls ([`controller::deletion_cost`]); [`leader`] makes sure only one replica runs it;
//! [`clock`] lets tests move time. [`testing`] (cargo feature `fake-api`) is the in-process fake
//! API server the tests and the `operator_apply` benchmark run it against.
//!
//! Entry point: [`run`] (what `dialtone operator` calls) or [`run_with`] (any client, clock and
//! observer — the tests run it against an in-process fake API server).

pub mod clock;
pub mod controller;
pub mod desired;
pub mod leader;
#[cfg(feature = "fake-api")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use controller::{
    Activity, Observer, OperatorError, OperatorOptions, ReconcileReport, run, run_with,
};
pub use desired::{
    BuildContext, BuildError, DesiredObject, SipServiceType, desired_objects,
    effective_min_replicas, next_floor_change, pod_deletion_cost,
};
pub use leader::{LeaderElector, LeaseTimings};
