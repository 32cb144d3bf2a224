//! Dialtone's reporter core, free of I/O: call events → CDRs → reports.
//!
//! - [`cdr`]: [`CallAssembler`] turns [`dialtone_proto::v1::CallEvent`]s — in any order, any
//!   number of times — into one [`Cdr`] per call with its [`Leg`]s, its status and its
//!   [`MissedReason`] by PRODUCT.md's precedence.
//! - [`reports`]: pure functions over a slice of CDRs: `missed`, `unprocessed`, `agents`,
//!   `top_missers`, `callbacks`, `calls` and `heatmap`, following PRODUCT.md's *Definitions*
//!   and *Precise rules*. Their rows serialize to the CLI's snake_case JSON.
//!
//! Storage (sqlx) and serving (gRPC) build on these: they store events by id, re-assemble a
//! call when one of its events arrives, and call the reports with the CDRs of a period.

pub mod cdr;
pub mod error;
pub mod policy;
pub mod reports;
pub mod time;

pub use cdr::{
    Added, CallAssembler, Cdr, CdrStatus, Direction, HangupParty, Leg, LegOutcome, MissedReason,
    assemble_call,
};
pub use error::{AssembleError, EventError, ReportError};
pub use policy::Policy;
