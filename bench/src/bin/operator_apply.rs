//! The operator under a bulk apply: 1,000 PhoneNumbers, 200 Agents (and their 200 credential
//! Secrets), 100 ForwardingSchemes and 100 CallQueues, plus a CallCenter, a Carrier and a
//! Schedule, created at once (many requests in flight, in `kubectl apply -f dir/` file order)
//! against the in-process fake Kubernetes API server, with the real operator (`run_with`, the
//! system clock, the production debounce) already running and idle.
//!
//! Measured per run: the time from the first create until every resource is `Ready=True` for
//! its current generation, and the API requests the operator made (everything the fake API
//! server counted except the benchmark's own creates) — from its start (lease, lists and
//! watches included) until it has been quiet for a second. Reported: the median of the runs,
//! against the targets of issue 9 (under 10 s; fewer than 3 requests per resource).
//!
//! `cargo run --release -p dialtone-bench --bin operator_apply`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use dialtone_model::resources::{
    Agent, CallCenter, CallQueue, Carrier, ForwardingScheme, PhoneNumber, Schedule,
};
use dialtone_operator::testing::fake_api::{FakeApi, RequestCounts, resource_id};
use dialtone_operator::{Observer, OperatorOptions, SystemClock, run_with};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

const NS: &str = "bench";
/// Targets of issue 9.
const TARGET_SECONDS: f64 = 10.0;
const TARGET_REQUESTS_PER_RESOURCE: f64 = 3.0;

#[derive(Parser)]
struct Args {
    /// PhoneNumbers.
    #[arg(long, default_value_t = 1000)]
    numbers: usize,
    /// Agents (each with a credentials Secret).
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// ForwardingSchemes (and as many CallQueues: one of each per team).
    #[arg(long, default_value_t = 100)]
    schemes: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Pause between two creates, in microseconds (0: as fast as the fake API takes them;
    /// `kubectl apply -f dir/` takes a few milliseconds per object against a real cluster).
    #[arg(long, default_value_t = 0)]
    pace_us: u64,
    /// The operator's debounce, in milliseconds (250: the production default).
    #[arg(long, default_value_t = 250)]
    debounce_ms: u64,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Longest wait for readiness per run, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// Every object to create, in `kubectl apply -f dir/` file order, and how many of them carry a
/// status (the eight kinds).
fn objects(args: &Args) -> (Vec<Value>, usize) {
    let teams = args.schemes.max(1);
    let mut out = Vec::new();
    let meta = |name: &str| json!({"name": name, "namespace": NS});
    let dialtone = "dialtone.dev/v1alpha1";
    out.push(json!({"apiVersion": dialtone, "kind": "CallCenter", "metadata": meta("bench"), "spec": {}}));
    out.push(json!({
        "apiVersion": dialtone, "kind": "Carrier", "metadata": meta("trunk"),
        "spec": {"address": "127.0.0.1:5080", "inboundSources": ["127.0.0.1/32"]}
    }));
    out.push(json!({
        "apiVersion": dialtone, "kind": "Schedule", "metadata": meta("hours"),
        "spec": {
            "timezone": "Europe/Kyiv",
            "weekly": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "open": "00:00", "close": "24:00"}]
        }
    }));
    for a in 0..args.agents {
        out.push(json!({
            "apiVersion": dialtone, "kind": "Agent",
            "metadata": {"name": format!("agent-{a}"), "namespace": NS, "labels": {"team": format!("t{}", a % teams)}},
            "spec": {
                "displayName": format!("Agent {a}"),
                "extension": format!("{}", 10_000 + a),
                "sipCredentialsSecretRef": {"name": format!("agent-{a}")},
                "destinations": [{"softphone": {}}, {"number": format!("+38067{a:07}")}]
            }
        }));
    }
    for q in 0..teams {
        out.push(json!({
            "apiVersion": dialtone, "kind": "CallQueue", "metadata": meta(&format!("q{q}")),
            "spec": {"members": {"selector": {"matchLabels": {"team": format!("t{q}")}}}, "strategy": "longestIdle"}
        }));
    }
    for q in 0..teams {
        out.push(json!({
            "apiVersion": dialtone, "kind": "ForwardingScheme", "metadata": meta(&format!("team-{q}")),
            "spec": {"steps": [
                {"ring": {"targets": [{"agentSelector": {"matchLabels": {"team": format!("t{q}")}}}], "timeoutSeconds": 15}},
                {"queue": {"name": format!("q{q}")}},
                {"voicemail": {}}
            ]}
        }));
    }
    for n in 0..args.numbers {
        let scheme = format!("team-{}", n % teams);
        out.push(json!({
            "apiVersion": dialtone, "kind": "PhoneNumber", "metadata": meta(&format!("n{n}")),
            "spec": {
                "number": format!("+38044{n:07}"),
                "carriers": ["trunk"],
                "schedule": "hours",
                "routes": {"open": scheme, "closed": scheme, "holiday": scheme}
            }
        }));
    }
    let resources = out.len();
    // The credentials, last (`secrets.yaml` sorts after the numbered files).
    for a in 0..args.agents {
        out.push(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": meta(&format!("agent-{a}")),
            "type": "Opaque",
            "stringData": {"username": format!("agent-{a}"), "password": format!("secret-{a}")}
        }));
    }
    (out, resources)
}

fn api_resource(kind: &str) -> anyhow::Result<ApiResource> {
    Ok(match kind {
        "CallCenter" => ApiResource::erase::<CallCenter>(&()),
        "Carrier" => ApiResource::erase::<Carrier>(&()),
        "Schedule" => ApiResource::erase::<Schedule>(&()),
        "Agent" => ApiResource::erase::<Agent>(&()),
        "CallQueue" => ApiResource::erase::<CallQueue>(&()),
        "ForwardingScheme" => ApiResource::erase::<ForwardingScheme>(&()),
        "PhoneNumber" => ApiResource::erase::<PhoneNumber>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        other => anyhow::bail!("no kind {other}"),
    })
}

/// The fake API's resource ids of the eight kinds used here.
fn status_resources() -> Vec<String> {
    vec![
        resource_id::<CallCenter>(),
        resource_id::<Carrier>(),
        resource_id::<Schedule>(),
        resource_id::<Agent>(),
        resource_id::<CallQueue>(),
        resource_id::<ForwardingScheme>(),
        resource_id::<PhoneNumber>(),
    ]
}

/// `Ready=True` for the object's current generation.
fn ready(object: &Value) -> bool {
    let generation = object.pointer("/metadata/generation");
    let Some(status) = object.get("status") else {
        return false;
    };
    status.get("observedGeneration") == generation
        && status
            .get("conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Ready"
                        && c["status"] == "True"
                        && c.get("observedGeneration") == generation
                })
            })
}

fn ready_count(fake: &FakeApi, resources: &[String]) -> usize {
    resources
        .iter()
        .map(|r| fake.count(r, Some(NS), ready))
        .sum()
}

/// Creates every object, `concurrency` at a time, in order of submission.
async fn apply(
    client: &kube::Client,
    objects: &[Value],
    concurrency: usize,
    pace: Duration,
) -> anyhow::Result<usize> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for doc in objects {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let resource = api_resource(&kind)?;
        let object: DynamicObject = serde_json::from_value(doc.clone())?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let result = api.create(&PostParams::default(), &object).await;
            drop(permit);
            result.with_context(|| format!("create {kind}"))
        });
    }
    let mut created = 0;
    while let Some(joined) = tasks.join_next().await {
        joined??;
        created += 1;
    }
    Ok(created)
}

/// The operator's requests: everything but the benchmark's creates (the operator creates only
/// Events with POST; everything it writes otherwise is a server-side apply or status patch).
fn operator_requests(all: &RequestCounts) -> RequestCounts {
    RequestCounts {
        by_verb_path: all
            .by_verb_path
            .iter()
            .filter(|((verb, path), _)| verb != "create" || path.contains("/events"))
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
    }
}

/// `patch pods/status`-style summary key of a request: verb and resource, without names.
fn summary_key(verb: &str, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest: &[&str] = match rest {
        ["namespaces", _, more @ ..] => more,
        other => other,
    };
    let resource = match rest {
        [plural] | [plural, _] => (*plural).to_owned(),
        [plural, _name, sub, ..] => format!("{plural}/{sub}"),
        _ => path.to_owned(),
    };
    format!("{verb} {resource}")
}

struct Run {
    /// Seconds from the first create until the last one returned.
    applied: f64,
    /// Seconds from the first create until every resource was Ready.
    ready: f64,
    /// The operator's requests from its start until it was quiet again.
    requests: RequestCounts,
    /// Of which during the apply (after its start-up).
    during: u64,
    reconciles: u64,
    status_writes: u64,
    applies: u64,
    events: u64,
}

async fn run_once(args: &Args, objects: &[Value], resources: usize) -> anyhow::Result<Run> {
    let fake = FakeApi::start().await;
    let observer = Observer::default();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let options = OperatorOptions {
        debounce: Duration::from_millis(args.debounce_ms),
        ..OperatorOptions::default()
    };
    let operator = tokio::spawn(run_with(
        fake.client(),
        options,
        Arc::new(SystemClock),
        observer.clone(),
        shutdown_rx,
    ));
    // Idle and watching: leading, and every watch open (the request count stops growing).
    observer
        .wait_for(Duration::from_secs(30), |a| a.leader)
        .await
        .context("the operator never led")?;
    let mut watches = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = fake.requests().verb("watch");
        if now == watches && now > 0 {
            break;
        }
        watches = now;
    }
    let before = fake.requests();

    let client = fake.client();
    let kinds = status_resources();
    let start = Instant::now();
    let created = apply(
        &client,
        objects,
        args.concurrency,
        Duration::from_micros(args.pace_us),
    )
    .await?;
    anyhow::ensure!(
        created == objects.len(),
        "created {created} of {}",
        objects.len()
    );
    let applied = start.elapsed().as_secs_f64();
    let deadline = start + Duration::from_secs(args.timeout);
    loop {
        if ready_count(&fake, &kinds) == resources {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {resources} resources Ready after {}s",
                ready_count(&fake, &kinds),
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = start.elapsed().as_secs_f64();

    // Until the operator is quiet: no request for a second (the workloads and the snapshot
    // are applied after the statuses).
    let mut last = fake.requests().total();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = fake.requests().total();
        if now == last {
            break;
        }
        last = now;
    }
    let all = fake.requests();
    let bench_creates = all.since(&before).total() - operator_requests(&all.since(&before)).total();
    anyhow::ensure!(
        bench_creates == created as u64,
        "counted {bench_creates} creates by the benchmark, made {created}"
    );
    let activity = observer.activity();
    let _ = shutdown.send(true);
    match tokio::time::timeout(Duration::from_secs(30), operator).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => anyhow::bail!("the operator failed: {e}"),
        Ok(Err(e)) => anyhow::bail!("the operator panicked: {e}"),
        Err(_) => anyhow::bail!("the operator did not stop"),
    }
    Ok(Run {
        applied,
        ready,
        during: operator_requests(&all.since(&before)).total(),
        requests: operator_requests(&all),
        reconciles: activity.reconciles,
        status_writes: activity.total.status_writes,
        applies: activity.total.applies,
        events: activity.total.events,
    })
}

fn median_by<T>(items: &[T], key: impl Fn(&T) -> f64) -> usize {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(&items[a]).total_cmp(&key(&items[b])));
    order[order.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be positive");
    let (objects, resources) = objects(&args);
    let secrets = objects.len() - resources;
    println!(
        "operator_apply: {} PhoneNumbers, {} Agents (+{secrets} Secrets), {s} ForwardingSchemes, \
         {s} CallQueues, 1 CallCenter, 1 Carrier, 1 Schedule = {resources} resources with a \
         status ({} objects), {} creates in flight, {} µs apart, debounce {} ms, {} run(s)",
        args.numbers,
        args.agents,
        objects.len(),
        args.concurrency,
        args.pace_us,
        args.debounce_ms,
        args.runs,
        s = args.schemes.max(1),
    );
    println!();
    println!(
        "{:>4} {:>9} {:>9} {:>9} {:>10} {:>9} {:>11} {:>7} {:>7} {:>7}",
        "run",
        "apply s",
        "ready s",
        "requests",
        "per res.",
        "in apply",
        "reconciles",
        "status",
        "applies",
        "events"
    );
    let mut runs = Vec::new();
    for i in 0..args.runs {
        let run = run_once(&args, &objects, resources).await?;
        println!(
            "{:>4} {:>9.2} {:>9.2} {:>9} {:>10.2} {:>9} {:>11} {:>7} {:>7} {:>7}",
            i + 1,
            run.applied,
            run.ready,
            run.requests.total(),
            run.requests.total() as f64 / resources as f64,
            run.during,
            run.reconciles,
            run.status_writes,
            run.applies,
            run.events
        );
        runs.push(run);
    }
    let ready_median = runs[median_by(&runs, |r| r.ready)].ready;
    let median_run = &runs[median_by(&runs, |r| r.requests.total() as f64)];
    let requests_median = median_run.requests.total();
    let per_resource = requests_median as f64 / resources as f64;
    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "median", "measured", "target", ""
    );
    println!(
        "{:<44} {:>12.2} {:>12} {:>8}",
        "seconds until every resource is Ready",
        ready_median,
        format!("< {TARGET_SECONDS}"),
        verdict(ready_median < TARGET_SECONDS)
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "operator API requests (start to quiet)", requests_median, "", ""
    );
    println!(
        "{:<44} {:>12.2} {:>12} {:>8}",
        "operator API requests per resource",
        per_resource,
        format!("< {TARGET_REQUESTS_PER_RESOURCE}"),
        verdict(per_resource < TARGET_REQUESTS_PER_RESOURCE)
    );
    println!();
    println!("operator requests of the median run, by verb and resource:");
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    for ((verb, path), n) in &median_run.requests.by_verb_path {
        *summary.entry(summary_key(verb, path)).or_insert(0) += n;
    }
    let mut rows: Vec<(String, u64)> = summary.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (key, n) in rows {
        println!("  {n:>6}  {key}");
    }
    Ok(())
}
