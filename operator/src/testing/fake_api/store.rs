//! The fake API server's in-memory object store: objects as JSON keyed by resource, namespace
//! and name; one global resourceVersion counter; a history of every change for watches; uid,
//! creationTimestamp and generation assignment; finalizers; and background garbage collection
//! through ownerReferences.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::merge;
pub use super::types::{ApiError, Change, ChangeType};

pub use super::types::ResourceId;

/// A stored object and what each field manager last applied to it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The object as served.
    pub object: Value,
    /// Last applied configuration per `(field manager, subresource)`.
    pub applied: HashMap<(String, String), Value>,
}

/// Whether a write goes to the object or to its `status` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The main resource: `status` changes are ignored.
    Main,
    /// `/status`: only `status` changes are taken.
    Status,
}

/// The whole store.
#[derive(Debug)]
pub struct Store {
    /// The last resourceVersion handed out.
    pub rv: u64,
    next_uid: u64,
    /// `(resource, namespace, name)` → entry.
    pub objects: BTreeMap<(ResourceId, String, String), Entry>,
    /// resource → (`apiVersion`, `kind`), learned from the objects written.
    pub kinds: HashMap<ResourceId, (String, String)>,
    /// Every change, oldest first.
    pub history: Vec<Arc<Change>>,
    /// Live changes for running watches.
    pub changes: broadcast::Sender<Arc<Change>>,
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"][field] = value;
}

fn remove_meta(object: &mut Value, field: &str) {
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.remove(field);
    }
}

/// Secrets: `stringData` is folded into `data` (base64), as the API server does.
fn normalize_secret(resource: &str, object: &mut Value) -> Result<(), ApiError> {
    if resource != "/v1/secrets" || object.get("stringData").is_none() {
        return Ok(());
    }
    let mut secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(object.clone())
        .map_err(|e| ApiError::bad_request(format!("not a Secret: {e}")))?;
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    *object = serde_json::to_value(&secret).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(())
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(65_536);
        Self {
            rv: 0,
            next_uid: 0,
            objects: BTreeMap::new(),
            kinds: HashMap::new(),
            history: Vec::new(),
            changes,
        }
    }

    fn learn_kind(&mut self, resource: &str, object: &Value) {
        if let (Some(api_version), Some(kind)) = (
            object.get("apiVersion").and_then(Value::as_str),
            object.get("kind").and_then(Value::as_str),
        ) {
            self.kinds
                .entry(resource.to_owned())
                .or_insert_with(|| (api_version.to_owned(), kind.to_owned()));
        }
    }

    /// `apiVersion` and `kind` of a resource (learned, or guessed from its path).
    pub fn kind_of(&self, resource: &str) -> (String, String) {
        if let Some(k) = self.kinds.get(resource) {
            return k.clone();
        }
        let mut parts = resource.splitn(3, '/');
        let group = parts.next().unwrap_or_default();
        let version = parts.next().unwrap_or_default();
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        (api_version, String::new())
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push(change.clone());
        // No receiver is fine: nobody watches.
        let _ = self.changes.send(change);
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
            .map(|e| &e.object)
    }

    /// Objects of a resource, in one namespace or (`None`) all, in namespace then name order.
    pub fn list(&self, resource: &str, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && ns.is_none_or(|ns| ns == n))
            .map(|(_, e)| &e.object)
            .collect()
    }

    /// POST: a new object.
    pub fn create(
        &mut self,
        resource: &str,
        ns: &str,
        mut object: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        if target == Target::Status {
            return Err(ApiError::bad_request("cannot create through /status"));
        }
        if !object.is_object() {
            return Err(ApiError::bad_request("the body is not an object"));
        }
        let name = match meta_str(&object, "name") {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match meta_str(&object, "generateName") {
                Some(prefix) => {
                    self.next_uid += 1;
                    format!("{prefix}{:05x}", self.next_uid)
                }
                None => return Err(ApiError::bad_request("metadata.name is required")),
            },
        };
        let key = (resource.to_owned(), ns.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            let plural = resource.rsplit('/').next().unwrap_or(resource);
            return Err(ApiError {
                code: 409,
                reason: "AlreadyExists",
                message: format!("{plural} \"{name}\" already exists"),
            });
        }
        normalize_secret(resource, &mut object)?;
        if let Value::Object(map) = &mut object {
            map.remove("status");
        }
        self.learn_kind(resource, &object);
        let (api_version, kind) = self.kind_of(resource);
        if object.get("apiVersion").is_none() {
            object["apiVersion"] = json!(api_version);
        }
        if object.get("kind").is_none() && !kind.is_empty() {
            object["kind"] = json!(kind);
        }
        self.next_uid += 1;
        let rv = self.bump();
        set_meta(&mut object, "name", json!(name));
        if !ns.is_empty() {
            set_meta(&mut object, "namespace", json!(ns));
        }
        set_meta(
            &mut object,
            "uid",
            json!(format!("00000000-0000-4000-8000-{:012x}", self.next_uid)),
        );
        set_meta(&mut object, "creationTimestamp", json!(now_rfc3339()));
        set_meta(&mut object, "generation", json!(1));
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        remove_meta(&mut object, "deletionTimestamp");
        remove_meta(&mut object, "managedFields");
        self.objects.insert(
            key,
            Entry {
                object: object.clone(),
                applied: HashMap::new(),
            },
        );
        self.record(Change {
            rv,
            resource: resource.to_owned(),
            namespace: ns.to_owned(),
            kind: ChangeType::Added,
            object: object.clone(),
            previous: None,
        });
        Ok(object)
    }

    /// Writes `new` over the existing object: keeps what the server owns (identity, status or
    /// spec depending on `target`), bumps generation on spec changes and resourceVersion on any
    /// change, and finishes a deletion whose last finalizer went. Returns the stored object.
    pub fn update(
        &mut self,
        resource: &str,
        ns: &str,
        name: &str,
        mut new: Value,
        target: Target,
        applied: Option<(String, Value)>,
    ) -> Result<Value, ApiError> {
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        let Some(entry) = self.objects.get(&key) else {
            return Err(ApiError::not_found(resource, name));
        };
        let old = entry.object.clone();
        normalize_secret(resource, &mut new)?;
        let mut merged = match target {
            Target::Main => {
                let mut v = new;
                if let Value::Object(map) = &mut v {
                    match old.get("status") {
                        Some(s) => {
                            map.insert("status".to_owned(), s.clone());
                        }
                        None => {
                            map.remove("status");
                        }
                    }
                }
                v
            }
            Target::Status => {
                let mut v = old.clone();
                match new.get("status") {
                    Some(s) => v["status"] = s.clone(),
                    None => {
                        if let Value::Object(map) = &mut v {
                            map.remove("status");
                        }
                    }
                }
                v
            }
        };
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "resourceVersion",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => set_meta(&mut merged, field, v.clone()),
                None => remove_meta(&mut merged, field),
            }
        }
        remove_meta(&mut merged, "managedFields");
        for field in ["apiVersion", "kind"] {
            if merged.get(field).is_none()
                && let Some(v) = old.get(field)
            {
                merged[field] = v.clone();
            }
        }
        if merge::generation_relevant(&merged) != merge::generation_relevant(&old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut merged, "generation", json!(generation + 1));
        }
        if let Some(entry) = self.objects.get_mut(&key)
            && let Some((manager, config)) = applied
        {
            let sub = match target {
                Target::Main => "",
                Target::Status => "status",
            };
            entry.applied.insert((manager, sub.to_owned()), config);
        }
        if merged == old {
            return Ok(old);
        }
        let rv = self.bump();
        set_meta(&mut merged, "resourceVersion", json!(rv.to_string()));
        let finalizers_gone = merged
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let deleting = merged.pointer("/metadata/deletionTimestamp").is_some();
        if let Some(entry) = self.objects.get_mut(&key) {
            entry.object = merged.clone();
        }
        self.record(Change {
            rv,
            resource: resource.to_owned(),
            namespace: ns.to_owned(),
            kind: ChangeType::Modified,
            object: merged.clone(),
            previous: Some(old),
        });
        if deleting && finalizers_gone {
            self.remove(&key, true);
        }
        Ok(merged)
    }

    /// PUT: replaces the object; a stale `metadata.resourceVersion` is a conflict.
    pub fn replace(
        &mut self,
        resource: &str,
        ns: &str,
        name: &str,
        new: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(resource, ns, name) else {
            return Err(ApiError::not_found(resource, name));
        };
        if let Some(rv) = meta_str(&new, "resourceVersion")
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            let plural = resource.rsplit('/').next().unwrap_or(resource);
            return Err(ApiError::conflict(format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            )));
        }
        if meta_str(&new, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        self.update(resource, ns, name, new, target, None)
    }

    /// PATCH with a JSON merge patch.
    pub fn merge_patch(
        &mut self,
        resource: &str,
        ns: &str,
        name: &str,
        patch: &Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(resource, ns, name) else {
            return Err(ApiError::not_found(resource, name));
        };
        if let Some(rv) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::conflict("the object has been modified"));
        }
        let mut new = old.clone();
        merge::merge_patch(&mut new, patch);
        self.update(resource, ns, name, new, target, None)
    }

    /// PATCH with `application/apply-patch+yaml`: creates the object when missing.
    pub fn apply(
        &mut self,
        resource: &str,
        ns: &str,
        name: &str,
        config: &Value,
        manager: &str,
        target: Target,
    ) -> Result<(Value, bool), ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request("the apply body is not an object"));
        }
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apply requires apiVersion and kind in the body",
            ));
        }
        if meta_str(config, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let sub = match target {
            Target::Main => "",
            Target::Status => "status",
        };
        let Some(entry) = self
            .objects
            .get(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
        else {
            if target == Target::Status {
                return Err(ApiError::not_found(resource, name));
            }
            let mut object = config.clone();
            set_meta(&mut object, "name", json!(name));
            let created = self.create(resource, ns, object, Target::Main)?;
            if let Some(entry) =
                self.objects
                    .get_mut(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
            {
                entry
                    .applied
                    .insert((manager.to_owned(), String::new()), config.clone());
            }
            return Ok((created, true));
        };
        if let Some(rv) = meta_str(config, "resourceVersion")
            && Some(rv) != meta_str(&entry.object, "resourceVersion")
        {
            return Err(ApiError::conflict("the object has been modified"));
        }
        let previous = entry.applied.get(&(manager.to_owned(), sub.to_owned()));
        let mut new = entry.object.clone();
        match target {
            Target::Main => {
                let mut body = config.clone();
                if let Value::Object(map) = &mut body {
                    map.remove("status");
                }
                remove_meta(&mut body, "resourceVersion");
                let prev = previous.cloned();
                merge::apply(&mut new, &body, prev.as_ref());
            }
            Target::Status => {
                let body = config.get("status").cloned().unwrap_or(json!({}));
                let prev = previous.and_then(|p| p.get("status")).cloned();
                let mut status = new.get("status").cloned().unwrap_or(json!({}));
                merge::apply(&mut status, &body, prev.as_ref());
                new["status"] = status;
            }
        }
        let stored = self.update(
            resource,
            ns,
            name,
            new,
            target,
            Some((manager.to_owned(), config.clone())),
        )?;
        Ok((stored, false))
    }

    /// DELETE: marks the object for deletion while it has finalizers, removes it otherwise;
    /// removal cascades to the objects it owns unless `orphan`.
    pub fn delete(
        &mut self,
        resource: &str,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
        let Some(entry) = self.objects.get(&key) else {
            return Err(ApiError::not_found(resource, name));
        };
        let object = entry.object.clone();
        let has_finalizers = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(object);
            }
            let rv = self.bump();
            let mut marked = object.clone();
            set_meta(&mut marked, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut marked, "resourceVersion", json!(rv.to_string()));
            if let Some(entry) = self.objects.get_mut(&key) {
                entry.object = marked.clone();
            }
            self.record(Change {
                rv,
                resource: resource.to_owned(),
                namespace: ns.to_owned(),
                kind: ChangeType::Modified,
                object: marked.clone(),
                previous: Some(object),
            });
            return Ok(marked);
        }
        Ok(self.remove(&key, !orphan).unwrap_or(object))
    }

    /// Removes an object now (a DELETED event) and, when `cascade`, every object whose owners
    /// are all gone because of it: background garbage collection.
    fn remove(&mut self, key: &(ResourceId, String, String), cascade: bool) -> Option<Value> {
        let entry = self.objects.remove(key)?;
        let rv = self.bump();
        let mut object = entry.object;
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        self.record(Change {
            rv,
            resource: key.0.clone(),
            namespace: key.1.clone(),
            kind: ChangeType::Deleted,
            object: object.clone(),
            previous: None,
        });
        if cascade && let Some(uid) = meta_str(&object, "uid").map(str::to_owned) {
            self.collect_garbage(&key.1, &uid);
        }
        Some(object)
    }

    fn collect_garbage(&mut self, ns: &str, owner_uid: &str) {
        let live_uids: std::collections::HashSet<String> = self
            .objects
            .values()
            .filter_map(|e| meta_str(&e.object, "uid").map(str::to_owned))
            .collect();
        let dependents: Vec<(ResourceId, String, String)> = self
            .objects
            .iter()
            .filter(|((_, n, _), _)| n == ns)
            .filter(|(_, e)| {
                let owners: Vec<&str> = e
                    .object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .map(|refs| {
                        refs.iter()
                            .filter_map(|r| r.get("uid").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                owners.contains(&owner_uid) && owners.iter().all(|u| !live_uids.contains(*u))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            let (resource, ns, name) = key;
            // Dependents with finalizers are marked, the rest removed (and their own
            // dependents collected in turn).
            let _ = self.delete(&resource, &ns, &name, false);
        }
    }
}
