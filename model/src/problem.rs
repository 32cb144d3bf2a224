//! What the loader reports: problems (errors) and warnings, each pointing at a file and line.

use std::fmt;

/// `Kind/name` of the object a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The kind, e.g. `PhoneNumber`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `kind/name`.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Whether a problem stops the configuration from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// Valid, but probably not what was meant.
    Warning,
}

/// One problem, printed as `path:line: Kind/name: message` (or `path:line: message` when the
/// document could not be read as an object, or `Kind/name: message` for an object that came
/// from the Kubernetes API rather than a file).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    /// The file, when the object came from one.
    pub file: Option<String>,
    /// 1-based line in `file` (0 when unknown).
    pub line: usize,
    /// The object concerned.
    pub object: Option<ObjectRef>,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:{}: ", self.line)?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The configuration was refused: every problem found, errors first, in file and line order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in the manifests, first: {}", .problems.len(), .problems.first().map(ToString::to_string).unwrap_or_default())]
pub struct Rejected {
    /// Errors and warnings.
    pub problems: Vec<Problem>,
}
