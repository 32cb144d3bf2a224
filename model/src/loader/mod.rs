//! The one loader shared by standalone mode and the operator.
//!
//! Stage 1 ([`read_files`]) turns YAML texts into typed objects that remember their file and
//! line; the operator builds the same [`Manifests`] from objects it got from the Kubernetes API.
//! Stage 2 ([`build_snapshot`]) checks every value and reference and produces one immutable
//! [`Snapshot`]. Both stages collect every problem instead of stopping at the first.

mod checks;
mod references;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::{ObjectRef, Problem, Severity};
use crate::resources::{
    API_VERSION, Agent, Blocklist, CallCenter, CallQueue, Carrier, ForwardingScheme, KINDS,
    PhoneNumber, Schedule,
};
use crate::snapshot::Snapshot;
use crate::yaml::{self, LineMap};

pub use checks::build_snapshot;

/// A manifest file's path (as it should appear in messages) and contents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path shown in messages, e.g. `examples/demo/60-numbers.yaml`.
    pub path: String,
    /// The YAML text.
    pub text: String,
}

/// Where an object came from, so problems can point at it.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A document in a file.
    File {
        /// The file's path.
        path: String,
        /// The document's first line.
        line: usize,
        /// Lines of the document's fields.
        lines: LineMap,
    },
    /// The Kubernetes API (problems name the object only).
    Api,
}

impl Origin {
    /// File and line of a field path inside the object (`spec.routes.open`).
    pub fn locate(&self, field: &str) -> (Option<String>, usize) {
        match self {
            Origin::File { path, line, lines } => (Some(path.clone()), lines.line_of(field, *line)),
            Origin::Api => (None, 0),
        }
    }

    /// `path:line` of the object, for "also defined at" messages.
    pub fn describe(&self) -> String {
        match self {
            Origin::File { path, line, .. } => format!("{path}:{line}"),
            Origin::Api => "the API".to_owned(),
        }
    }
}

/// A typed object with its origin.
#[derive(Debug, Clone)]
pub struct Obj<T> {
    /// The object.
    pub resource: T,
    /// Where it came from.
    pub origin: Origin,
}

/// Every object of one namespace, typed, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// The namespace (from the objects; `default` when none names one).
    pub namespace: Option<String>,
    /// CallCenters (one expected).
    pub call_centers: Vec<Obj<CallCenter>>,
    /// Carriers.
    pub carriers: Vec<Obj<Carrier>>,
    /// Schedules.
    pub schedules: Vec<Obj<Schedule>>,
    /// Agents.
    pub agents: Vec<Obj<Agent>>,
    /// Queues.
    pub queues: Vec<Obj<CallQueue>>,
    /// Schemes.
    pub schemes: Vec<Obj<ForwardingScheme>>,
    /// Phone numbers.
    pub numbers: Vec<Obj<PhoneNumber>>,
    /// Blocklists.
    pub blocklists: Vec<Obj<Blocklist>>,
    /// Secrets (standalone: from the folder; cluster: fetched by the operator).
    pub secrets: Vec<Obj<Secret>>,
    /// `(kind, name)` of objects that exist but could not be read (their problem is already
    /// reported); references to them are not reported again as dangling.
    pub broken: BTreeSet<(String, String)>,
}

impl Manifests {
    /// Whether an object of this kind and name exists but could not be read.
    pub fn is_broken(&self, kind: &str, name: &str) -> bool {
        self.broken.contains(&(kind.to_owned(), name.to_owned()))
    }
}

/// Which prompts exist, for checking references to them.
#[derive(Debug, Clone)]
pub enum PromptCatalog {
    /// These names exist; `hint` says where a missing one should be (`prompts/<name>.wav …`).
    Known {
        /// Prompt names.
        names: BTreeSet<String>,
        /// Where prompts are looked for, for messages.
        hint: String,
    },
    /// Prompts are not checked (e.g. the operator without the ConfigMap).
    Unchecked,
}

/// What the loader needs besides the manifests.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Available prompts.
    pub prompts: PromptCatalog,
}

/// The outcome of loading: a snapshot when there were no errors, and every problem found.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The snapshot, when no problem is an error.
    pub snapshot: Option<Snapshot>,
    /// Errors and warnings, in file and line order.
    pub problems: Vec<Problem>,
    /// How many objects of each kind were read, in [`KINDS`] order, plus Secrets.
    pub counts: Vec<(&'static str, usize)>,
}

impl LoadReport {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }
}

/// Reads and checks manifest files: stage 1 then stage 2.
pub fn load(files: &[SourceFile], env: &Environment) -> LoadReport {
    let (manifests, mut problems) = read_files(files);
    let mut report = build_snapshot(&manifests, env);
    problems.append(&mut report.problems);
    problems.sort_by(|a, b| {
        (a.severity, &a.file, a.line, &a.message).cmp(&(b.severity, &b.file, b.line, &b.message))
    });
    problems.dedup();
    if problems.iter().any(|p| p.severity == Severity::Error) {
        report.snapshot = None;
    }
    report.problems = problems;
    report
}

/// Stage 1: YAML texts → typed objects. Problems here are syntax, shape and type errors.
pub fn read_files(files: &[SourceFile]) -> (Manifests, Vec<Problem>) {
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    for file in files {
        // Each document becomes its typed object before the next is parsed (see parse_each).
        let parsed = yaml::parse_each(&file.text, |doc| {
            read_document(&file.path, doc, &mut manifests, &mut problems);
        });
        manifests.broken.extend(parsed.broken);
        for err in parsed.errors {
            problems.push(Problem {
                file: Some(file.path.clone()),
                line: err.line,
                object: None,
                message: err.message,
                severity: Severity::Error,
            });
        }
    }
    (manifests, problems)
}

const TOP_LEVEL_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];
const SECRET_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "stringData",
    "type",
    "immutable",
];

fn read_document(
    path: &str,
    doc: yaml::Document,
    out: &mut Manifests,
    problems: &mut Vec<Problem>,
) {
    let origin = Origin::File {
        path: path.to_owned(),
        line: doc.line,
        lines: doc.lines,
    };
    let at = |field: &str| origin.locate(field);
    let plain = |field: &str, message: String| {
        let (file, line) = at(field);
        Problem {
            file,
            line,
            object: None,
            message,
            severity: Severity::Error,
        }
    };
    let Value::Object(map) = &doc.value else {
        problems.push(plain(
            "",
            "a manifest must be a mapping with apiVersion, kind and metadata".to_owned(),
        ));
        return;
    };
    let Some(kind) = map.get("kind").and_then(Value::as_str).map(str::to_owned) else {
        problems.push(plain(
            "",
            "missing `kind`: every manifest needs apiVersion, kind and metadata.name".to_owned(),
        ));
        return;
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(name) = name else {
        problems.push(plain(
            "metadata",
            format!("{kind} without metadata.name: give the object a name"),
        ));
        return;
    };
    let object = ObjectRef::new(kind.clone(), name.clone());
    let error = |field: &str, message: String| {
        let (file, line) = at(field);
        Problem {
            file,
            line,
            object: Some(object.clone()),
            message,
            severity: Severity::Error,
        }
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let is_secret = kind == "Secret";
    if is_secret {
        if api_version != "v1" {
            problems.push(error(
                "apiVersion",
                format!("apiVersion must be v1 for a Secret, not {api_version:?}"),
            ));
            return;
        }
    } else if !KINDS.contains(&kind.as_str()) {
        problems.push(error(
            "kind",
            format!(
                "unknown kind {kind:?}: Dialtone reads {} and v1 Secret",
                KINDS.join(", ")
            ),
        ));
        return;
    } else if api_version != API_VERSION {
        problems.push(error(
            "apiVersion",
            format!("apiVersion must be {API_VERSION}, not {api_version:?}"),
        ));
        return;
    }
    if !is_valid_name(&name) {
        problems.push(error(
            "metadata.name",
            "metadata.name must be lowercase letters, digits, '-' and '.', starting and ending \
             with a letter or digit, at most 253 characters"
                .to_owned(),
        ));
    }
    let allowed: &[&str] = if is_secret {
        &SECRET_FIELDS
    } else {
        &TOP_LEVEL_FIELDS
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(error(
                key,
                format!(
                    "unknown field `{key}` (expected one of {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    if !is_secret && !map.contains_key("spec") {
        problems.push(error("", format!("{kind} without spec")));
        return;
    }
    if let Some(ns) = map
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        match &out.namespace {
            None => out.namespace = Some(ns.to_owned()),
            Some(first) if first != ns => problems.push(error(
                "metadata.namespace",
                format!(
                    "namespace {ns:?} differs from {first:?}: one folder holds one namespace's \
                     objects"
                ),
            )),
            Some(_) => {}
        }
    }
    let value = doc.value;
    let mut empty_paths: BTreeSet<String> = BTreeSet::new();
    if let Some(spec) = value.get(if is_secret { "data" } else { "spec" }) {
        empty_values(
            spec,
            if is_secret { "data" } else { "spec" },
            &mut |path, key| {
                let hint = if MARKER_KEYS.contains(&key) {
                    format!("the value is empty: write `{key}: {{}}`")
                } else {
                    "the value is empty: give it a value or remove the line".to_owned()
                };
                problems.push(error(path, format!("{path}: {hint}")));
                empty_paths.insert(path.to_owned());
            },
        );
    }
    if let Some(meta) = value.get("metadata").and_then(Value::as_object) {
        for key in meta.keys() {
            if !METADATA_FIELDS.contains(&key.as_str()) {
                problems.push(error(
                    &format!("metadata.{key}"),
                    format!(
                        "metadata.{key}: unknown field `{key}`, expected one of `name`, \
                         `namespace`, `labels`, `annotations`"
                    ),
                ));
            }
        }
    }
    macro_rules! typed {
        ($field:ident) => {
            match deserialize(&value) {
                // An object with an empty value is reported once, not checked further.
                Ok(_) if !empty_paths.is_empty() => {
                    out.broken.insert((kind.clone(), name.clone()));
                }
                Ok(resource) => out.$field.push(Obj { resource, origin }),
                Err((field, message)) => {
                    // An empty value already reported needs no second, vaguer message.
                    if !empty_paths.contains(&field) {
                        problems.push(error(&field, message));
                    }
                    out.broken.insert((kind.clone(), name.clone()));
                }
            }
        };
    }
    match kind.as_str() {
        "CallCenter" => typed!(call_centers),
        "Carrier" => typed!(carriers),
        "Schedule" => typed!(schedules),
        "Agent" => typed!(agents),
        "CallQueue" => typed!(queues),
        "ForwardingScheme" => typed!(schemes),
        "PhoneNumber" => typed!(numbers),
        "Blocklist" => typed!(blocklists),
        _ => typed!(secrets),
    }
}

/// Objects whose whole content is "present": written `key: {}`, and easily mistyped `key:`.
const MARKER_KEYS: [&str; 2] = ["hangup", "softphone"];

/// `metadata` fields a manifest may carry (what the API server sets is accepted too, so objects
/// exported with `kubectl get -o yaml` load).
const METADATA_FIELDS: [&str; 15] = [
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

/// Calls `found(path, key)` for every `key:` left empty (null) under `value`.
fn empty_values(value: &Value, path: &str, found: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{path}.{k}");
                if v.is_null() {
                    found(&p, k);
                } else {
                    empty_values(v, &p, found);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                empty_values(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Deserializes with the failing field's path, and a message that says what to write instead.
fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let mut message = err.inner().to_string();
        if message.starts_with("invalid type: integer") && message.ends_with("expected a string") {
            message.push_str(" (quote the value, e.g. \"+380441234567\" or \"101\")");
        }
        for (rust, words) in [
            ("expected i32", "expected an integer"),
            ("expected i64", "expected an integer"),
            ("expected u32", "expected a non-negative integer"),
            ("expected u16", "expected a non-negative integer"),
            ("expected f64", "expected a number"),
        ] {
            if message.ends_with(rust) {
                message = format!("{}{words}", &message[..message.len() - rust.len()]);
            }
        }
        if path.starts_with("data.") && message.starts_with("Invalid ") {
            message = "the value is not base64: encode it, or move it to stringData for plain \
                       text"
                .to_owned();
        }
        let shown = if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        };
        (path, shown)
    })
}

/// Kubernetes' DNS subdomain rule for object names.
fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// A Secret's keys and values, with `stringData` over `data` as the API server merges them.
pub fn secret_values(secret: &Secret) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    if let Some(string_data) = &secret.string_data {
        values.extend(string_data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    values
}
