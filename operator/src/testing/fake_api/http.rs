//! The fake API server's HTTP side: the Kubernetes REST paths (`/api/v1/...`,
//! `/apis/{group}/{version}/...`), verbs, content types, watch streams and `Status` errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Shared;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ApiError, Change, ChangeType, ResourceId, Target};

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `group/version/plural`.
    pub resource: ResourceId,
    /// `None`: across namespaces (a list or watch of a namespaced resource, or a cluster-scoped
    /// resource, stored under the namespace `""`).
    pub namespace: Option<String>,
    /// The object's name, for object paths.
    pub name: Option<String>,
    /// `status`, for the status subresource.
    pub subresource: Option<String>,
}

/// Parses `/api/v1/namespaces/ns/configmaps/name` and `/apis/g/v/namespaces/ns/plural/name/status`.
pub fn parse_path(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] => (Some((*ns).to_owned()), {
            let mut v = vec![*plural];
            v.extend_from_slice(more);
            v
        }),
        other => (None, other.to_vec()),
    };
    let plural = rest.first()?;
    if rest.len() > 3 {
        return None;
    }
    Some(Route {
        resource: format!("{group}/{version}/{plural}"),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(e.to_status())).into_response()
}

fn json_response(code: StatusCode, v: Value) -> Response {
    (code, axum::Json(v)).into_response()
}

/// The request's verb as the API server's audit log names it.
pub fn verb_of(method: &Method, route: &Route, query: &HashMap<String, String>) -> &'static str {
    match *method {
        Method::GET if route.name.is_some() => "get",
        Method::GET if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if route.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// Every request goes through here.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let Some(route) = parse_path(uri.path()) else {
        return error_response(&ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({})", uri),
        });
    };
    let verb = verb_of(&method, &route, &query);
    shared.count(verb, uri.path());
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    let target = match route.subresource.as_deref() {
        None => Target::Main,
        Some("status") => Target::Status,
        Some(other) => {
            return error_response(&ApiError {
                code: 404,
                reason: "NotFound",
                message: format!("subresource {other} is not served by the fake API"),
            });
        }
    };
    if verb == "watch" {
        return watch(&shared, &route, &query);
    }
    let result = {
        let ns = route.namespace.clone().unwrap_or_default();
        let name = route.name.clone().unwrap_or_default();
        let mut store = shared.lock();
        let result = match verb {
            "get" => store
                .get(&route.resource, &ns, &name)
                .cloned()
                .map(|o| (StatusCode::OK, o))
                .ok_or_else(|| ApiError::not_found(&route.resource, &name)),
            "list" => list(&store, &route, &query).map(|v| (StatusCode::OK, v)),
            "create" => parse_body(&body).and_then(|object| {
                store
                    .create(&route.resource, &ns, object, target)
                    .map(|o| (StatusCode::CREATED, o))
            }),
            "update" => parse_body(&body).and_then(|object| {
                store
                    .replace(&route.resource, &ns, &name, object, target)
                    .map(|o| (StatusCode::OK, o))
            }),
            "patch" => patch(
                &mut store, &route, &ns, &name, &headers, &query, &body, target,
            ),
            "delete" => {
                let orphan = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b.get("propagationPolicy").cloned())
                    .is_some_and(|p| p == "Orphan")
                    || query
                        .get("propagationPolicy")
                        .is_some_and(|p| p == "Orphan");
                store
                    .delete(&route.resource, &ns, &name, orphan)
                    .map(|o| (StatusCode::OK, o))
            }
            other => Err(ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: format!("{other} is not served by the fake API"),
            }),
        };
        let rv = store.rv;
        drop(store);
        shared.changed(rv);
        result
    };
    match result {
        Ok((code, v)) => json_response(code, v),
        Err(e) => error_response(&e),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    store: &mut super::store::Store,
    route: &Route,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &Bytes,
    target: Target,
) -> Result<(StatusCode, Value), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let patch = parse_body(body)?;
    if content_type.starts_with("application/apply-patch") {
        let manager = query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("PatchOptions.fieldManager is required for apply requests")
            })?;
        let (object, created) = store.apply(&route.resource, ns, name, &patch, manager, target)?;
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((code, object))
    } else if content_type.starts_with("application/merge-patch+json")
        || content_type.starts_with("application/strategic-merge-patch+json")
    {
        store
            .merge_patch(&route.resource, ns, name, &patch, target)
            .map(|o| (StatusCode::OK, o))
    } else {
        Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!("the fake API does not serve patches of type {content_type:?}"),
        })
    }
}

fn selectors(
    query: &HashMap<String, String>,
) -> Result<(Option<LabelSelector>, Option<FieldSelector>), ApiError> {
    let labels = query
        .get("labelSelector")
        .filter(|s| !s.is_empty())
        .map(|s| LabelSelector::parse(s))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let fields = query
        .get("fieldSelector")
        .filter(|s| !s.is_empty())
        .map(|s| FieldSelector::parse(s))
        .transpose()
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn selected(
    object: &Value,
    labels: &Option<LabelSelector>,
    fields: &Option<FieldSelector>,
) -> bool {
    labels.as_ref().is_none_or(|l| l.matches(object))
        && fields.as_ref().is_none_or(|f| f.matches(object))
}

fn list(
    store: &super::store::Store,
    route: &Route,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(query)?;
    let items: Vec<Value> = store
        .list(&route.resource, route.namespace.as_deref())
        .into_iter()
        .filter(|o| selected(o, &labels, &fields))
        .cloned()
        .collect();
    let (api_version, kind) = store.kind_of(&route.resource);
    Ok(json!({
        "apiVersion": api_version,
        "kind": if kind.is_empty() { "List".to_owned() } else { format!("{kind}List") },
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    }))
}

/// What a watcher with these selectors sees of a change, if anything.
fn view_of(
    change: &Change,
    route: &Route,
    labels: &Option<LabelSelector>,
    fields: &Option<FieldSelector>,
) -> Option<(&'static str, Value)> {
    if change.resource != route.resource
        || route
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != change.namespace)
    {
        return None;
    }
    let now = selected(&change.object, labels, fields);
    match change.kind {
        ChangeType::Added => now.then(|| ("ADDED", change.object.clone())),
        ChangeType::Deleted => now.then(|| ("DELETED", change.object.clone())),
        ChangeType::Modified => {
            let before = change
                .previous
                .as_ref()
                .is_some_and(|p| selected(p, labels, fields));
            match (before, now) {
                (true, true) => Some(("MODIFIED", change.object.clone())),
                (false, true) => Some(("ADDED", change.object.clone())),
                (true, false) => Some(("DELETED", change.object.clone())),
                (false, false) => None,
            }
        }
    }
}

fn line(type_: &str, object: Value) -> Bytes {
    let mut text = serde_json::to_vec(&json!({"type": type_, "object": object}))
        .unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    Bytes::from(text)
}

/// `?watch=true`: newline-delimited watch events, from `resourceVersion` on (or every current
/// object as ADDED when it is absent or `0`), a BOOKMARK at the current resourceVersion when
/// bookmarks are allowed, then live changes until `timeoutSeconds`.
fn watch(shared: &Arc<Shared>, route: &Route, query: &HashMap<String, String>) -> Response {
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resourceVersion {rv:?}"
                )));
            }
        },
    };
    let (initial, mut live, current_rv, bookmark_kind) = {
        let store = shared.lock();
        let initial: Vec<Bytes> = match from {
            None => store
                .list(&route.resource, route.namespace.as_deref())
                .into_iter()
                .filter(|o| selected(o, &labels, &fields))
                .map(|o| line("ADDED", o.clone()))
                .collect(),
            Some(rv) => {
                let start = store.history.partition_point(|c| c.rv <= rv);
                store.history[start..]
                    .iter()
                    .filter_map(|c| view_of(c, route, &labels, &fields))
                    .map(|(t, o)| line(t, o))
                    .collect()
            }
        };
        (
            initial,
            store.changes.subscribe(),
            store.rv,
            store.kind_of(&route.resource),
        )
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let route = route.clone();
    tokio::spawn(async move {
        let run = async {
            for l in initial {
                if tx.send(Ok(l)).await.is_err() {
                    return;
                }
            }
            if bookmarks {
                let (api_version, kind) = &bookmark_kind;
                let object = json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"resourceVersion": current_rv.to_string()},
                });
                if tx.send(Ok(line("BOOKMARK", object))).await.is_err() {
                    return;
                }
            }
            loop {
                let change = match live.recv().await {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = ApiError {
                            code: 410,
                            reason: "Expired",
                            message: "too old resource version".to_owned(),
                        };
                        let _ = tx.send(Ok(line("ERROR", gone.to_status()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if let Some((t, o)) = view_of(&change, &route, &labels, &fields)
                    && tx.send(Ok(line(t, o))).await.is_err()
                {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, run).await;
            }
            None => run.await,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/api/v1/namespaces/ns/configmaps/x"),
            Some(Route {
                resource: "/v1/configmaps".to_owned(),
                namespace: Some("ns".to_owned()),
                name: Some("x".to_owned()),
                subresource: None,
            })
        );
        assert_eq!(
            parse_path("/apis/dialtone.dev/v1alpha1/namespaces/t/agents/a/status"),
            Some(Route {
                resource: "dialtone.dev/v1alpha1/agents".to_owned(),
                namespace: Some("t".to_owned()),
                name: Some("a".to_owned()),
                subresource: Some("status".to_owned()),
            })
        );
        assert_eq!(
            parse_path("/apis/apps/v1/deployments"),
            Some(Route {
                resource: "apps/v1/deployments".to_owned(),
                namespace: None,
                name: None,
                subresource: None,
            })
        );
    }
}
