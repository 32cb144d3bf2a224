//! Dialtone's shared model: the resource types (the CRDs), the manifest loader that turns
//! YAML or API objects into one validated [`Snapshot`], and the domain types the router, media
//! nodes and reporter consume. Nothing here does I/O: callers hand in file contents and get
//! back values or [`Problem`]s.

pub mod loader;
pub mod problem;
pub mod resources;
pub mod schedule;
pub mod snapshot;
pub mod yaml;

pub use loader::{Environment, LoadReport, Manifests, PromptCatalog, SourceFile, load};
pub use problem::{ObjectRef, Problem, Severity};
pub use snapshot::Snapshot;
