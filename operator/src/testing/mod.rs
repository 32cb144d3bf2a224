//! Test support shipped with the crate (cargo feature `fake-api`): an in-process fake Kubernetes
//! API server that the operator's tests, the root crate's cluster tests and the `operator_apply`
//! benchmark run the real controller against. Not compiled into the `dialtone` binary unless
//! the feature is enabled.

pub mod fake_api;
