//! Dialtone's router: decides where every call goes and knows the state of every agent.
//!
//! The core is sans-IO — plain state machines fed input and the current instant:
//! - [`plan`]: number + caller + instant → the steps to run, with concrete agents;
//! - [`presence`]: registrations and agent states (available, ringing, on call, wrap-up, …);
//! - [`queues`]: callers waiting in order and the strategy that picks the next agent.
//!
//! The gRPC service (`dialtone.v1.Router`) wraps them at the edge.

pub mod owner;
pub mod persist;
pub mod plan;
pub mod presence;
pub mod queues;
pub mod service;
