//! Pod deletion cost: keeps `controller.kubernetes.io/pod-deletion-cost` on every media-node pod
//! near its active-call count, so that when the autoscaler lowers the Deployment's replicas the
//! ReplicaSet controller removes the idlest node and the fewest calls wait on a drain.
//!
//! Per watched scope, while this replica leads:
//!
//! - a reflector on Pods labelled `app.kubernetes.io/component=media-node` and
//!   `app.kubernetes.io/managed-by=dialtone-operator` (the labels of the media-node pod template,
//!   [`crate::desired::common::labels`]) keeps the pods in memory: one list and one watch, no
//!   request per round;
//! - every [`crate::OperatorOptions::deletion_cost_interval`] (10 s by default, on the
//!   operator's [`Clock`], so tests move it) each *ready* pod with an IP is scraped at
//!   `http://<podIP>:<ops port>/metrics` ([`metrics_target`]) for the `dialtone_active_calls`
//!   gauge, concurrently and with a [`SCRAPE_TIMEOUT`];
//! - a pod's annotation is patched only when [`deletion_cost_update_due`] says the value is
//!   missing or too far off, so a steady pool costs no write at all. The patch is a JSON merge
//!   patch of that one annotation with the operator's field manager: unlike a server-side apply
//!   it can never create a pod that was deleted meanwhile, and it touches nothing else.
//!
//! Pods that are not ready are left alone: a draining node (its `/readyz` is 503) is already on
//! its way out, and a starting one has no calls yet — the ReplicaSet controller ranks
//! not-ready pods before any ready one anyway. Scrape failures are logged and the pod's
//! annotation kept; the next round tries again.
//!
//! Permissions (chart `templates/_helpers.tpl`, `dialtone.operatorRules`): `list` and `watch`
//! on pods for the reflector, `patch` for the annotation; and network access from the
//! operator to the media nodes' ops port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use super::Observer;
use super::watches::{Scope, api};
use crate::clock::{Clock, add};
use crate::desired::common::{Component, MANAGER, OPS_PORT};
use crate::desired::scaling::{
    ACTIVE_CALLS_METRIC, DELETION_COST_ANNOTATION, deletion_cost_update_due, pod_deletion_cost,
};

/// How long one scrape may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/metrics` response read.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// The name of the media node's ops port in its pod template.
pub const OPS_PORT_NAME: &str = "ops";

/// The label selector of the media-node pods.
pub fn media_node_selector() -> String {
    format!(
        "app.kubernetes.io/component={},app.kubernetes.io/managed-by={MANAGER}",
        Component::MediaNode.as_str()
    )
}

/// Whether the pod is ready (condition `Ready=True`) and not being deleted.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Where a pod serves its metrics: its `status.podIP` and the container port named
/// [`OPS_PORT_NAME`] ([`OPS_PORT`] when no container names one). `None` without a pod IP.
pub fn metrics_target(pod: &Pod) -> Option<SocketAddr> {
    let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    let port = pod
        .spec
        .as_ref()
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(OPS_PORT_NAME))
        .map_or(OPS_PORT, |p| p.container_port);
    let port = u16::try_from(port).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The scrape URL of a pod (`http://10.1.2.3:9090/metrics`, `http://[fd00::1]:9090/metrics`).
pub fn metrics_url(pod: &Pod) -> Option<String> {
    metrics_target(pod).map(|addr| format!("http://{addr}/metrics"))
}

/// The pod's current deletion cost, when it has a valid one.
pub fn current_cost(pod: &Pod) -> Option<i32> {
    pod.annotations()
        .get(DELETION_COST_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
}

/// Why a scrape gave no call count.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer within [`SCRAPE_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Not an HTTP response, or not a 200.
    #[error("bad response: {0}")]
    Http(String),
    /// The response has no `dialtone_active_calls` sample.
    #[error("no {ACTIVE_CALLS_METRIC} sample in the response")]
    NoMetric,
}

/// The sum of the `dialtone_active_calls` samples of a Prometheus / OpenMetrics text
/// exposition (one sample without labels, normally), rounded and clamped to `u32`; `None` when
/// there is none.
pub fn parse_active_calls(text: &str) -> Option<u32> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix(ACTIVE_CALLS_METRIC) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => skip_labels(rest)?,
            Some(' ' | '\t') => rest,
            _ => continue, // another metric with this prefix, or a comment
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>()
            && v.is_finite()
        {
            *total.get_or_insert(0.0) += v;
        }
    }
    // Clamped first, so the float-to-int `as` cannot truncate.
    total.map(|t| t.round().clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// The text after a `{…}` label set (quotes and escapes respected).
fn skip_labels(text: &str) -> Option<&str> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(&text[i + 1..]),
            _ => {}
        }
    }
    None
}

/// `GET path` over plain HTTP/1.1 (`Connection: close`): the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), ScrapeError> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\
         User-Agent: {MANAGER}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut raw)
        .await?;
    if raw.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(ScrapeError::Http(format!(
            "more than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    parse_response(&raw)
}

/// Splits a whole HTTP/1.x response into its status code and (de-chunked) body.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), ScrapeError> {
    let bad = |m: &str| ScrapeError::Http(m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        body.get(..len)
            .ok_or_else(|| bad("body shorter than its content-length"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((code, body))
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Reads a node's active calls from `http://<addr>/metrics`.
pub async fn scrape_active_calls(addr: SocketAddr) -> Result<u32, ScrapeError> {
    let (code, body) = tokio::time::timeout(SCRAPE_TIMEOUT, http_get(addr, "/metrics"))
        .await
        .map_err(|_| ScrapeError::Timeout(SCRAPE_TIMEOUT))??;
    if code != 200 {
        return Err(ScrapeError::Http(format!("status {code}")));
    }
    parse_active_calls(&String::from_utf8_lossy(&body)).ok_or(ScrapeError::NoMetric)
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Ready pods scraped successfully.
    pub scraped: u64,
    /// Pods whose scrape failed.
    pub failed: u64,
    /// Annotations patched.
    pub patched: u64,
}

/// One round: scrape every ready pod of `pods`, patch the annotations that are due.
pub async fn round(client: &Client, pods: &Store<Pod>) -> RoundReport {
    let mut report = RoundReport::default();
    let mut scrapes = JoinSet::new();
    for pod in pods.state() {
        if !is_ready(&pod) {
            continue;
        }
        let Some(addr) = metrics_target(&pod) else {
            continue;
        };
        scrapes.spawn(async move {
            let result = scrape_active_calls(addr).await;
            (pod, addr, result)
        });
    }
    while let Some(joined) = scrapes.join_next().await {
        let Ok((pod, addr, result)) = joined else {
            report.failed += 1;
            continue;
        };
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let calls = match result {
            Ok(calls) => calls,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(
                    namespace = %ns, pod = %name, url = %format!("http://{addr}/metrics"),
                    error = %e,
                    "cannot read the media node's active calls; its deletion cost stays"
                );
                continue;
            }
        };
        report.scraped += 1;
        let current = current_cost(&pod);
        if !deletion_cost_update_due(current, calls) {
            continue;
        }
        let cost = pod_deletion_cost(calls);
        let patch =
            json!({"metadata": {"annotations": {DELETION_COST_ANNOTATION: cost.to_string()}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match Api::<Pod>::namespaced(client.clone(), &ns)
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                report.patched += 1;
                tracing::debug!(namespace = %ns, pod = %name, calls, ?current, cost, "pod deletion cost updated");
            }
            Err(e) => tracing::warn!(
                namespace = %ns, pod = %name, error = %e,
                "cannot patch the pod deletion cost"
            ),
        }
    }
    report
}

/// Keeps the deletion cost of the scope's media-node pods current, until dropped: a round at
/// once when the pod cache is filled, then one per `interval` on `clock`.
pub async fn run(
    client: Client,
    scope: Scope,
    clock: Arc<dyn Clock>,
    interval: Duration,
    observer: Observer,
) {
    let pods: Api<Pod> = api(client.clone(), &scope);
    let config = watcher::Config::default().labels(&media_node_selector());
    let (store, writer) = reflector::store();
    let mut events = std::pin::pin!(reflector::reflector(
        writer,
        watcher(pods, config).default_backoff()
    ));
    let drive = async {
        while let Some(event) = events.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "media-node pod watch");
            }
        }
    };
    let rounds = async {
        if store.wait_until_ready().await.is_err() {
            return;
        }
        loop {
            // The next round's instant is fixed before this one is reported, so whoever waits
            // for the report and then moves the clock cannot move it too early.
            let next = add(clock.now(), interval);
            let report = round(&client, &store).await;
            observer.cost_round(&report);
            clock.sleep_until(next).await;
        }
    };
    tokio::select! {
        () = drive => {}
        () = rounds => {}
    }
    // Either ends only when the watch stream does, which it does not while the scope runs;
    // stay pending so the scope's controller decides when everything stops.
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_gauge() {
        let text = "# HELP dialtone_active_calls Calls active on this media node\n\
                    # TYPE dialtone_active_calls gauge\n\
                    dialtone_active_calls 17\n\
                    dialtone_active_calls_other 99\n\
                    dialtone_calls_total 5\n# EOF\n";
        assert_eq!(parse_active_calls(text), Some(17));
        assert_eq!(
            parse_active_calls(
                "dialtone_active_calls{node=\"a}\"} 2.0\ndialtone_active_calls{node=\"b\"} 3 1700000000\n"
            ),
            Some(5)
        );
        assert_eq!(parse_active_calls("dialtone_calls_total 5\n"), None);
        assert_eq!(parse_active_calls("dialtone_active_calls -3\n"), Some(0));
    }

    #[test]
    fn parses_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain).expect("ok"), (200, b"hello".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).expect("ok"),
            (200, b"hello".to_vec())
        );
        let closed = b"HTTP/1.0 503 Service Unavailable\r\n\r\ndraining";
        assert_eq!(parse_response(closed).expect("ok").0, 503);
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn targets_the_ops_port() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "media-node", "ports": [
                {"name": "sip-udp", "containerPort": 5060, "protocol": "UDP"},
                {"name": "ops", "containerPort": 9191}
            ]}]},
            "status": {"podIP": "fd00::1", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a pod");
        assert_eq!(
            metrics_url(&pod).as_deref(),
            Some("http://[fd00::1]:9191/metrics")
        );
        assert!(is_ready(&pod));
        let bare: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {DELETION_COST_ANNOTATION: "12"}},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"podIP": "10.0.0.7"}
        }))
        .expect("a pod");
        assert_eq!(
            metrics_url(&bare).as_deref(),
            Some("http://10.0.0.7:9090/metrics")
        );
        assert!(!is_ready(&bare));
        assert_eq!(current_cost(&bare), Some(12));
    }
}
