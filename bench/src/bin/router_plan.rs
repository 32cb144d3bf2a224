//! Plan-a-call requests per second and latency over gRPC on loopback, beside a trivial tonic
//! service (the ceiling) in the same process and run: it takes the same request and returns a
//! stored, real plan response of the same size and shape, doing no work — so the ratio is the
//! cost of planning itself, with transport and protobuf costs equal on both sides.
//!
//! `cargo run --release -p dialtone-bench --bin router_plan`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dialtone_bench::echo::echo_client::EchoClient;
use dialtone_bench::echo::echo_server::{Echo, EchoServer};
use dialtone_bench::load::{self, Measured};
use dialtone_bench::synth;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{RouterCore, RouterService, SystemClock};
use prost::Message as _;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

#[derive(Parser)]
struct Args {
    /// PhoneNumbers in the configuration.
    #[arg(long, default_value_t = 1000)]
    numbers: usize,
    /// Agents.
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Queues (and teams).
    #[arg(long, default_value_t = 50)]
    queues: usize,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Paced clients for the half-load latency measurement.
    #[arg(long, default_value_t = 8)]
    latency_workers: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Alternating rounds (median reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

struct EchoService(pb::PlanCallResponse);

#[tonic::async_trait]
impl Echo for EchoService {
    async fn plan(
        &self,
        _req: Request<pb::PlanCallRequest>,
    ) -> Result<Response<pb::PlanCallResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

async fn serve<S>(svc: S) -> anyhow::Result<String>
where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    Ok(format!("http://{addr}"))
}

async fn channels(url: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Endpoint::from_shared(url.to_owned())?.connect().await?);
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let t = Instant::now();
    let snapshot = synth::call_center(args.numbers, args.agents, args.queues)?;
    println!(
        "configuration: {} numbers, {} agents, {} queues (loaded in {:.0} ms)",
        snapshot.numbers.len(),
        snapshot.agents.len(),
        snapshot.queues.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let (_config, rx) = watch::channel(Arc::new(snapshot));
    let core = RouterCore::new(
        rx,
        Arc::new(SystemClock),
        Arc::new(HttpOwnerSource::new()?),
        None,
    );
    let router_url = serve(RouterService::new(core).into_server()).await?;
    let router_channels = channels(&router_url, 8).await?;
    let numbers = args.numbers;
    let request = move |i: u64| pb::PlanCallRequest {
        call_id: format!("bench-{i}"),
        number: synth::number((i as usize) % numbers),
        caller: format!("+38050{:07}", i % 10_000_000),
        ..Default::default()
    };
    // The ceiling answers with a real plan response.
    let sample = RouterClient::new(router_channels[0].clone())
        .plan_call(request(1))
        .await?
        .into_inner();
    println!(
        "plan response: {} bytes; the ceiling returns this same response",
        sample.encoded_len()
    );
    let echo_url = serve(EchoServer::new(EchoService(sample))).await?;
    let echo_channels = channels(&echo_url, 8).await?;

    let router_call = {
        let chans = router_channels.clone();
        move |i: u64| {
            let mut c = RouterClient::new(chans[(i as usize) % chans.len()].clone());
            let req = request(i);
            async move { c.plan_call(req).await.is_ok() }
        }
    };
    let echo_call = {
        let chans = echo_channels.clone();
        move |i: u64| {
            let mut c = EchoClient::new(chans[(i as usize) % chans.len()].clone());
            let req = request(i);
            async move { c.plan(req).await.is_ok() }
        }
    };
    let d = Duration::from_secs_f64(args.seconds);
    // Warm up both.
    load::run(
        args.concurrency,
        Duration::from_millis(500),
        None,
        echo_call.clone(),
    )
    .await;
    load::run(
        args.concurrency,
        Duration::from_millis(500),
        None,
        router_call.clone(),
    )
    .await;

    let mut echo_max = Vec::new();
    let mut router_max = Vec::new();
    for round in 1..=args.rounds {
        let e = load::run(args.concurrency, d, None, echo_call.clone()).await;
        let r = load::run(args.concurrency, d, None, router_call.clone()).await;
        println!("round {round}: echo   {e}");
        println!("round {round}: router {r}");
        echo_max.push(e.rps);
        router_max.push(r.rps);
    }
    let echo_rps = load::median(echo_max);
    let router_rps = load::median(router_max);
    let half = router_rps / 2.0;
    let w = args.latency_workers;
    let r_half: Measured = load::run(w, d, Some(half), router_call.clone()).await;
    let e_half: Measured = load::run(w, d, Some(half), echo_call.clone()).await;
    println!();
    println!("maximum (median of {} rounds):", args.rounds);
    println!("  echo ceiling  {echo_rps:>9.0} req/s");
    println!(
        "  router plans  {router_rps:>9.0} req/s  = {:.0}% of the ceiling (target ≥ 60%)",
        100.0 * router_rps / echo_rps
    );
    println!("at half the router's maximum ({half:.0} req/s offered):");
    println!("  echo   {e_half}");
    println!("  router {r_half}  (target p99 < 2 ms)");
    Ok(())
}
