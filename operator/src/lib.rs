//! Dialtone's operator: validates the eight `dialtone.dev` kinds, sets their status, and
//! reconciles a `CallCenter` into the router, reporter and media-node workloads.
//!
//! A reconcile is a pipeline: **read** the namespace's resources → **validate** them with the
//! same loader as standalone mode (`dialtone_model::loader`) → **build** the desired objects →
//! **server-side apply** them with one field manager → write **status**. This crate's
//! [`desired`] module is the build step: pure functions from a `CallCenter` (plus a
//! [`desired::BuildContext`]) to typed Kubernetes objects, golden-tested in
//! `tests/golden.rs`. Nothing in it talks to the API server, so every decision about what runs
//! in the cluster can be read and tested without one.

pub mod desired;

pub use desired::{
    BuildContext, BuildError, DesiredObject, SipServiceType, desired_objects,
    effective_min_replicas, next_floor_change, pod_deletion_cost,
};
