//! Types the fake API server's store and HTTP side share: changes (for watches) and API errors
//! (served as `Status` objects).

use serde_json::{Value, json};

/// `group/version/plural`, with an empty group for the core API (`/v1/configmaps`).
pub type ResourceId = String;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// A new object.
    Added,
    /// A changed object.
    Modified,
    /// A removed object (the object as it was last).
    Deleted,
}

impl ChangeType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept for watches that start from an older resourceVersion.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// Which resource.
    pub resource: ResourceId,
    /// The object's namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// What happened.
    pub kind: ChangeType,
    /// The object after the change (before it, for a deletion).
    pub object: Value,
    /// The object before the change, for label-selector watches that must see an object leave
    /// or enter their selection.
    pub previous: Option<Value>,
}

/// An API error: HTTP status, reason and message, served as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `BadRequest`, …
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

impl ApiError {
    pub fn not_found(resource: &str, name: &str) -> Self {
        let plural = resource.rsplit('/').next().unwrap_or(resource);
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{plural} \"{name}\" not found"),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: message.into(),
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}
