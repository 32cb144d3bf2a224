//! Dialtone's reporter: call events → CDRs → reports, stored and served.
//!
//! The core is free of I/O:
//!
//! - [`cdr`]: [`CallAssembler`] turns [`dialtone_proto::v1::CallEvent`]s — in any order, any
//!   number of times — into one [`Cdr`] per call with its [`Leg`]s, its status and its
//!   [`MissedReason`] by PRODUCT.md's precedence.
//! - [`reports`]: pure functions over a slice of CDRs: `missed`, `unprocessed`, `agents`,
//!   `top_missers`, `callbacks`, `calls` and `heatmap`, following PRODUCT.md's *Definitions*
//!   and *Precise rules*. Their rows serialize to the CLI's snake_case JSON.
//!
//! Around it:
//!
//! - [`store`]: the database (sqlx; SQLite or PostgreSQL, same tables and queries). It stores
//!   events by id, re-assembles a call in the same transaction when one of its events arrives,
//!   and loads the CDRs a report's window needs.
//! - [`ingest`] and [`journal`]: the `dialtone.v1.Ingest` service. Events are acknowledged once
//!   durable — in the database, or in an `fsync`ed journal under the data folder while the
//!   database is away, drained into it when it is back and on every start.
//! - [`reports_service`]: the `dialtone.v1.Reports` service over the store and the pure
//!   reports; manual handling of unprocessed groups.
//! - [`retention`]: deletes records older than `retentionDays`.

pub mod call_metrics;
pub mod cdr;
pub mod error;
pub mod ingest;
pub mod journal;
pub mod policy;
pub mod reports;
pub mod reports_service;
pub mod retention;
pub mod store;
pub mod time;

pub use cdr::{
    Added, CallAssembler, Cdr, CdrStatus, Direction, HangupParty, Leg, LegOutcome, MissedReason,
    assemble_call,
};
pub use error::{AssembleError, EventError, ReportError};
pub use policy::Policy;
pub mod auth;
pub mod dashboard;
pub mod webhooks;
