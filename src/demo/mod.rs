//! `dialtone demo`: standalone mode on the demo manifests plus an overlay of its own, driven by
//! simulated carriers and softphones over real SIP on loopback, then the reports.
//!
//! The overlay (written to a temporary folder, the user's files are not touched) lets the
//! carriers deliver from 127.0.0.1, points their outbound addresses at a closed loopback port
//! (mobile legs fail fast, as an unreachable carrier would), keeps the office open around the
//! clock so the demo does not depend on the hour it runs at, and adds a `night-line` whose
//! schedule is always closed, for the after-hours calls. The backup carrier's address is a
//! simulated far end ([`far_end`]) where one client answers a callback.

pub mod far_end;
pub mod sim;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tonic::transport::Channel;

use crate::shutdown::Shutdown;
use crate::standalone::{self, Settings};
use sim::{Answer, Caller, Outcome, Softphone};

/// The overlay's extra objects: a line that is always closed, and one with a missing route.
const OVERLAY: &str = r#"# Added by `dialtone demo`: a line whose office is always closed.
apiVersion: dialtone.dev/v1alpha1
kind: Schedule
metadata: {name: closed-now, namespace: telephony}
spec:
  timezone: UTC
---
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: night-line, namespace: telephony}
spec:
  number: "+380441234599"
  carriers: [primary-trunk]
  schedule: closed-now
  routes: {closed: after-hours, holiday: after-hours}
---
# A promotion line someone forgot to give an `open` route: its calls are no_forwarding_scheme.
apiVersion: dialtone.dev/v1alpha1
kind: PhoneNumber
metadata: {name: promo-line, namespace: telephony}
spec:
  number: "+380441234598"
  carriers: [primary-trunk]
  schedule: office-hours
  routes: {closed: after-hours}
"#;

/// The client the demo's supervisor calls back (they hung up in the menu).
const CALLED_BACK: &str = "+380509000010";

fn copy_with_overlay(from: &Path, to: &Path, far_end: SocketAddr) -> std::io::Result<()> {
    std::fs::create_dir_all(to.join("prompts"))?;
    for e in std::fs::read_dir(from)?.filter_map(Result::ok) {
        let p = e.path();
        if p.is_file() {
            let name = e.file_name();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let text = match name.to_string_lossy().as_ref() {
                "10-carriers.yaml" => text
                    .replace(
                        "inboundSources: [\"198.51.100.0/24\"]",
                        "inboundSources: [\"198.51.100.0/24\", \"127.0.0.1/32\"]",
                    )
                    .replace("sip.carrier-one.example:5060", "127.0.0.1:9")
                    .replace("sip.carrier-two.example:5060", &far_end.to_string())
                    .replace("transport: tcp", "transport: udp"),
                "20-schedules.yaml" => {
                    let mut t = String::new();
                    let mut skip = false;
                    for line in text.lines() {
                        if line.starts_with("  weekly:") {
                            t.push_str("  weekly:\n    - days: [mon, tue, wed, thu, fri, sat, sun]\n      open: \"00:00\"\n      close: \"24:00\"\n");
                            skip = true;
                            continue;
                        }
                        if skip && line.starts_with("  ") && !line.starts_with("  holidays:") {
                            continue;
                        }
                        skip = false;
                        t.push_str(line);
                        t.push('\n');
                    }
                    t
                }
                _ => text,
            };
            std::fs::write(to.join(&name), text)?;
        }
    }
    for e in std::fs::read_dir(from.join("prompts"))?.filter_map(Result::ok) {
        std::fs::copy(e.path(), to.join("prompts").join(e.file_name()))?;
    }
    std::fs::write(to.join("90-demo-overlay.yaml"), OVERLAY)
}

/// The default address if it is free, else any free port on the same interface.
fn free_or_default(default: SocketAddr, udp: bool) -> SocketAddr {
    let free = if udp {
        UdpSocket::bind(default).is_ok() && TcpListener::bind(default).is_ok()
    } else {
        TcpListener::bind(default).is_ok()
    };
    if free {
        default
    } else {
        SocketAddr::new(default.ip(), 0)
    }
}

async fn set_state(
    router: &mut RouterClient<Channel>,
    agent: &str,
    state: pb::AgentState,
    label: &str,
) {
    let _ = router
        .set_agent_state(pb::SetAgentStateRequest {
            agent: agent.into(),
            state: state as i32,
            away_label: label.into(),
            set_by: "demo".into(),
        })
        .await;
}

fn say(text: &str) {
    println!("  {text}");
}

/// One simulated call, narrated.
async fn place(
    node: SocketAddr,
    label: &'static str,
    caller: &'static str,
    number: &'static str,
    how: Caller,
) {
    let outcome = sim::call(node, caller, number, how).await;
    let what = match outcome {
        Ok(Outcome::CallerHungUp) => "connected; the caller hung up".to_owned(),
        Ok(Outcome::DialtoneHungUp) => "connected; Dialtone ended the call".to_owned(),
        Ok(Outcome::Refused(code)) => format!("refused with {code}"),
        Ok(Outcome::GaveUp) => "the caller gave up before it connected".to_owned(),
        Err(e) => format!("failed: {e}"),
    };
    say(&format!("{caller} → {number} ({label}): {what}"));
}

/// Runs the demo: starts Dialtone, drives the calls, prints the reports.
pub async fn run(examples: &Path) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("dialtone-demo-")
        .tempdir()?;
    let config = work.path().join("config");
    let data = work.path().join("data");
    let far_end = far_end::FarEnd::bind(CALLED_BACK).await?;
    copy_with_overlay(examples, &config, far_end.addr()?)?;
    let far_end = tokio::spawn(far_end.serve());
    let settings = Settings {
        config: config.clone(),
        data: data.clone(),
        database_url: None,
        grpc: free_or_default("127.0.0.1:50051".parse()?, false),
        http: free_or_default("127.0.0.1:8080".parse()?, false),
        sip: Some(free_or_default("127.0.0.1:5060".parse()?, true)),
    };
    let shutdown = Shutdown::new();
    let running = standalone::start(&settings, shutdown.clone()).await?;
    let node = running
        .sip_udp
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the media node did not start"))?;
    let url = format!("http://{}", running.grpc);
    println!("dialtone demo: a simulated business day over real SIP");
    println!("  SIP    {node} (UDP)");
    println!(
        "  gRPC   {}   (try: dialtone report live --server {url} --data {})",
        running.grpc,
        data.display()
    );
    println!("  HTTP   http://{}", running.http);
    println!("  data   {}", data.display());
    println!();

    // The team: softphones registering with their Secrets' passwords (digest over real SIP).
    let passwords = [
        (
            "anna",
            "demo-anna-pass",
            Answer::After(Duration::from_millis(1200)),
        ),
        ("bohdan", "demo-bohdan-pass", Answer::Never),
        (
            "olena",
            "demo-olena-pass",
            Answer::After(Duration::from_secs(3)),
        ),
        (
            "taras",
            "demo-taras-pass",
            Answer::After(Duration::from_secs(1)),
        ),
        (
            "iryna",
            "demo-iryna-pass",
            Answer::After(Duration::from_secs(2)),
        ),
    ];
    let secrets = std::fs::read_to_string(config.join("secrets.yaml")).unwrap_or_default();
    let mut phones = Vec::new();
    println!("Agents sign in:");
    for (agent, fallback, answer) in passwords {
        let password = password_of(&secrets, agent).unwrap_or_else(|| fallback.to_owned());
        match Softphone::register(agent, &password, node, answer).await {
            Ok(p) => {
                say(&format!("{agent} registered (digest authentication)"));
                phones.push(tokio::spawn(p.serve()));
            }
            Err(e) => say(&format!("{agent} could not register: {e}")),
        }
    }
    let mut router = RouterClient::connect(url.clone()).await?;
    set_state(&mut router, "taras", pb::AgentState::Dnd, "").await;
    say("taras sets Do Not Disturb; bohdan's phone rings but he never picks up");
    println!();

    println!("Calls (main line: welcome prompt, then the menu; ads line: straight to sales):");
    let n = node;
    let secs = Duration::from_secs;
    let mut calls = Vec::new();
    let schedule: Vec<(u64, &'static str, &'static str, &'static str, Caller)> = vec![
        (
            0,
            "main line, presses 1 for sales",
            "+380501000001",
            "+380441234567",
            Caller::stays(secs(20)).presses(secs(7), "1"),
        ),
        (
            1,
            "ads line",
            "+380671000002",
            "+380441234568",
            Caller::stays(secs(12)),
        ),
        (
            2,
            "ads line, robocaller",
            "+380931110000",
            "+380441234568",
            Caller::stays(secs(5)),
        ),
        (
            3,
            "main line, hangs up during the welcome",
            "+380502000003",
            "+380441234567",
            Caller::stays(secs(3)),
        ),
        (
            5,
            "main line, hangs up in the menu",
            "+380509000010",
            "+380441234567",
            Caller::stays(secs(9)),
        ),
        (
            6,
            "main line, dials extension 103",
            "+380506000011",
            "+380441234567",
            Caller::stays(secs(18)).presses(secs(7), "103"),
        ),
        (
            8,
            "unknown number",
            "+380505000009",
            "+380449999999",
            Caller::stays(secs(3)),
        ),
        (
            9,
            "ads line, a short call",
            "+380504000005",
            "+380441234568",
            Caller::stays(secs(5)),
        ),
        (
            12,
            "ads line, satellite",
            "+882161234567",
            "+380441234568",
            Caller::stays(secs(3)),
        ),
        (
            13,
            "promo line without an open route",
            "+380508000008",
            "+380441234598",
            Caller::stays(secs(3)),
        ),
    ];
    for (at, label, caller, number, how) in schedule {
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(at)).await;
            place(n, label, caller, number, how).await;
        }));
    }
    for c in calls.drain(..) {
        let _ = c.await;
    }
    // Everyone in sales steps away: the next caller finds nobody; the night line rings the
    // duty manager (olena, now on DND) and the head of sales' mobile (the carrier is down).
    set_state(&mut router, "anna", pb::AgentState::Away, "lunch").await;
    set_state(&mut router, "bohdan", pb::AgentState::Away, "meeting").await;
    set_state(&mut router, "olena", pb::AgentState::Dnd, "").await;
    say("anna goes to lunch, bohdan to a meeting, olena sets Do Not Disturb");
    let night = tokio::spawn(place(
        n,
        "night line, after hours",
        "+380503000004",
        "+380441234599",
        Caller::stays(secs(8)),
    ));
    place(
        n,
        "ads line, nobody free",
        "+380506000006",
        "+380441234568",
        Caller::stays(secs(11)),
    )
    .await;
    let _ = night.await;
    set_state(&mut router, "bohdan", pb::AgentState::Available, "").await;
    say("bohdan is back (and still never picks up)");
    let quick = tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        let how = Caller::stays(secs(4)).patience(secs(4));
        place(
            n,
            "ads line, hangs up after 4 s",
            "+380502100012",
            "+380441234568",
            how,
        )
        .await;
    });
    // Rings bohdan for two steps (30 s), then hangs up during the voicemail greeting.
    let how = Caller::stays(secs(3)).patience(secs(40));
    place(
        n,
        "ads line, only bohdan",
        "+380507000007",
        "+380441234568",
        how,
    )
    .await;
    let _ = quick.await;
    set_state(&mut router, "anna", pb::AgentState::Available, "").await;
    say("anna is back from lunch");
    place(
        n,
        "ads line, the client from before calls again",
        "+380506000006",
        "+380441234568",
        Caller::stays(secs(6)),
    )
    .await;
    println!();

    println!("A supervisor calls back the client who hung up in the menu:");
    // anna's last call has just ended; on a loaded machine the router may not know yet, and an
    // order for a busy agent is refused. A supervisor would wait for her too.
    wait_until_free(&mut router, "anna", Duration::from_secs(15)).await;
    let data_arg = data.display().to_string();
    let argv = [
        "dialtone",
        "callback",
        "--agent",
        "anna",
        "--to",
        CALLED_BACK,
        "--server",
        &url,
        "--data",
        &data_arg,
    ];
    print!("  ");
    match <crate::cli::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(cli) => {
            let _ = Box::pin(crate::cli::run(cli)).await;
        }
        Err(e) => eprintln!("{e}"),
    }
    if wait_for_callback(&url, &data).await {
        say(
            "anna picked up, then the client answered through the backup carrier, talked and hung up",
        );
    } else {
        say("the callback did not finish in time");
    }
    println!();

    // Let the last events travel through the spool to the reporter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if running.store.counts().await.map(|c| c.cdrs).unwrap_or(0) >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    for (title, args) in [
        ("Missed calls", vec!["report", "missed"]),
        (
            "Unprocessed missed calls (the to-do list)",
            vec!["report", "unprocessed"],
        ),
        ("Agents", vec!["report", "agents"]),
    ] {
        println!("{title}:");
        let mut argv = vec!["dialtone"];
        argv.extend(args);
        argv.extend(["--server", &url, "--data", &data_arg]);
        match <crate::cli::Cli as clap::Parser>::try_parse_from(&argv) {
            Ok(cli) => {
                // Boxed: `cli::run` can run the demo, which runs `cli::run`.
                let _ = Box::pin(crate::cli::run(cli)).await;
            }
            Err(e) => eprintln!("{e}"),
        }
        println!();
    }
    println!(
        "Process a group by hand with: dialtone handle +380502000003 --reason resolved_elsewhere --by you --server {url} --data {data_arg}"
    );
    shutdown.fire();
    for p in phones {
        p.abort();
    }
    far_end.abort();
    running.join().await;
    Ok(())
}

/// The password of `agent-<name>` in the demo's secrets.yaml (`stringData.password`).
fn password_of(secrets: &str, agent: &str) -> Option<String> {
    let head = if agent == "head-of-sales" {
        "agent-head".to_owned()
    } else {
        format!("agent-{agent}")
    };
    let doc = secrets.split("\n---").find(|d| {
        d.contains(&format!("name: {head}\n")) || d.contains(&format!("name: {head}\r\n"))
    })?;
    doc.lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(|p| p.trim().trim_matches('"').to_owned())
}

/// Waits (at most 30 s) until the callback appears ended in the call log.
/// Waits (at most `limit`) until `agent` is available with no call on the router's board.
async fn wait_until_free(router: &mut RouterClient<Channel>, agent: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let board = router
            .get_live_board(pb::GetLiveBoardRequest {
                omit_contacts: true,
            })
            .await;
        let free = board.is_ok_and(|b| {
            b.into_inner().agents.iter().any(|a| {
                a.agent == agent
                    && a.state == pb::AgentState::Available as i32
                    && a.active_calls == 0
            })
        });
        if free {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_callback(url: &str, data: &Path) -> bool {
    let token = std::fs::read_to_string(data.join("supervisor.token")).unwrap_or_default();
    let Ok(value) = format!("Bearer {}", token.trim()).parse::<tonic::metadata::MetadataValue<_>>()
    else {
        return false;
    };
    let Ok(channel) = tonic::transport::Endpoint::from_shared(url.to_owned()) else {
        return false;
    };
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    let mut reports = pb::reports_client::ReportsClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let done = reports
            .calls(pb::CallsRequest::default())
            .await
            .map(|r| {
                r.into_inner()
                    .calls
                    .iter()
                    .any(|c| c.direction == pb::Direction::Outbound as i32 && c.ended_at.is_some())
            })
            .unwrap_or(false);
        if done {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
