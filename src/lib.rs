//! The `dialtone` command: the CLI and the edges that wire Dialtone's parts together.
//!
//! Data flows one way: manifests ([`manifest_dir`], `dialtone_model::loader`) → a validated
//! snapshot → router plans → media-node calls → events → reporter → reports.

pub mod agent_events;
pub mod cli;
pub mod cluster_config;
pub mod config_watch;
pub mod crds;
pub mod demo;
pub mod grpc_server;
pub mod internal_auth;
pub mod live;
pub mod manifest_dir;
pub mod shutdown;
pub mod standalone;
pub mod telemetry;
