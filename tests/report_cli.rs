//! `dialtone report` and `dialtone handle` as processes, against an in-process reporter
//! (SQLite in a temp dir) on a loopback port: exact JSON rows, CSV, tables, manual handling,
//! the credential sent as a bearer token, exit codes, and nothing but the output on stdout.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use dialtone_proto::v1::reports_server::ReportsServer;
use dialtone_proto::v1::{self as pb, call_event::Kind};
use dialtone_reporter::ingest::Ingestor;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_reporter::store::{OpenOptions, Store};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Our numbers in the demo manifests.
const MAIN: &str = "+380441234567";
const ADS: &str = "+380441234568";

// ---- a small builder of call events, as a media node emits them ----

struct Call {
    id: String,
    seq: u64,
    clock: Timestamp,
    events: Vec<pb::CallEvent>,
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

impl Call {
    fn start(id: &str, direction: pb::Direction, caller: &str, number: &str, at: &str) -> Call {
        Call {
            id: id.into(),
            seq: 0,
            clock: t(at),
            events: Vec::new(),
        }
        .push(Kind::CallStarted(pb::CallStarted {
            caller: caller.into(),
            number: number.into(),
            direction: direction as i32,
            carrier: "primary-trunk".into(),
            agent: if direction == pb::Direction::Outbound {
                "olena".into()
            } else {
                String::new()
            },
            sip_call_id: format!("{id}@carrier"),
            ..Default::default()
        }))
    }

    fn inbound(id: &str, caller: &str, number: &str, at: &str) -> Call {
        Call::start(id, pb::Direction::Inbound, caller, number, at)
    }

    fn push(mut self, kind: Kind) -> Self {
        self.seq += 1;
        self.events.push(pb::CallEvent {
            event_id: format!("{}-e{}", self.id, self.seq),
            call_id: self.id.clone(),
            node_id: "media-node-0".into(),
            sequence: self.seq,
            at: Some(ts(self.clock)),
            trace_id: String::new(),
            kind: Some(kind),
        });
        self
    }

    fn wait(mut self, secs: i64) -> Self {
        self.clock += SignedDuration::from_secs(secs);
        self
    }

    fn route(self, state: pb::ScheduleState, number_name: &str, scheme: &str) -> Self {
        self.push(Kind::RouteSelected(pb::RouteSelected {
            number_name: number_name.into(),
            schedule_state: state as i32,
            schedule: "office-hours".into(),
            scheme: scheme.into(),
            config_version: "v1".into(),
            ..Default::default()
        }))
    }

    fn leg_id(&self, n: u32) -> String {
        format!("{}-leg{n}", self.id)
    }

    /// Leg `n` rings `agent`'s softphone (or, without an agent, the client's number).
    fn leg(self, n: u32, agent: &str, destination: &str) -> Self {
        let kind = if agent.is_empty() {
            pb::DestinationKind::Number
        } else {
            pb::DestinationKind::Softphone
        };
        let leg_id = self.leg_id(n);
        self.push(Kind::LegCreated(pb::LegCreated {
            leg_id,
            agent: agent.into(),
            destination: destination.into(),
            destination_kind: kind as i32,
            ..Default::default()
        }))
    }

    fn alert(self, n: u32) -> Self {
        let leg_id = self.leg_id(n);
        self.push(Kind::LegAlerting(pb::LegAlerting {
            leg_id,
            sip_code: 180,
        }))
    }

    fn answered(self, n: u32) -> Self {
        let leg_id = self.leg_id(n);
        self.push(Kind::LegAnswered(pb::LegAnswered { leg_id }))
    }

    fn bridged(self, n: u32, agent: &str) -> Self {
        let leg_id = self.leg_id(n);
        self.push(Kind::Bridged(pb::Bridged {
            leg_id,
            agent: agent.into(),
        }))
    }

    fn cancel(self, n: u32, cause: pb::LegCancelCause) -> Self {
        let leg_id = self.leg_id(n);
        self.push(Kind::LegCancelled(pb::LegCancelled {
            leg_id,
            cause: cause as i32,
        }))
    }

    fn fail(self, n: u32, sip_code: u32) -> Self {
        let leg_id = self.leg_id(n);
        self.push(Kind::LegFailed(pb::LegFailed {
            leg_id,
            sip_code,
            reason: "failed".into(),
        }))
    }

    fn end(self, party: pb::HangupParty, disposition: pb::CallDisposition) -> Self {
        self.push(Kind::CallEnded(pb::CallEnded {
            hangup_party: party as i32,
            disposition: disposition as i32,
            sip_code: 0,
            reason: String::new(),
        }))
    }

    /// The plan ran out: a `hangup` step ends the call.
    fn system_hangs_up(self) -> Self {
        self.push(Kind::StepEntered(pb::StepEntered {
            scheme: "sales".into(),
            step_index: 9,
            kind: pb::StepKind::Hangup as i32,
        }))
        .end(pb::HangupParty::System, pb::CallDisposition::NotAnswered)
    }

    fn events(self) -> Vec<pb::IngestEvent> {
        self.events
            .into_iter()
            .map(|e| pb::IngestEvent {
                event: Some(pb::ingest_event::Event::Call(e)),
            })
            .collect()
    }
}

/// Monday 23 November 2026 (UTC; Kyiv is UTC+2): four misses with different reasons, an
/// answered call, and an answered callback to the first missed client.
fn day() -> Vec<pb::IngestEvent> {
    use pb::HangupParty::{Agent, Client};
    use pb::ScheduleState::{Closed, Open};
    [
        // Closed hours: the after-hours message, then Dialtone hangs up.
        Call::inbound("c4", "+380501110004", ADS, "2026-11-23T06:00:00Z")
            .route(Closed, "ads-landing", "after-hours")
            .wait(5)
            .system_hangs_up(),
        // Two agents alerted, nobody answers; called back at 13:00.
        Call::inbound("c1", "+380501110001", ADS, "2026-11-23T09:00:00Z")
            .route(Open, "ads-landing", "sales")
            .leg(1, "anna", "sip:anna@10.0.0.5")
            .leg(2, "bohdan", "sip:bohdan@10.0.0.6")
            .wait(1)
            .alert(1)
            .alert(2)
            .wait(15)
            .cancel(1, pb::LegCancelCause::Timeout)
            .cancel(2, pb::LegCancelCause::Timeout)
            .system_hangs_up(),
        // anna's phone fails with 480 before ringing: nobody was alerted.
        Call::inbound("c2", "+380501110002", ADS, "2026-11-23T10:00:00Z")
            .route(Open, "ads-landing", "sales")
            .leg(1, "anna", "sip:anna@10.0.0.5")
            .wait(2)
            .fail(1, 480)
            .system_hangs_up(),
        // The caller leaves during the welcome prompt.
        Call::inbound("c3", "+380501110003", MAIN, "2026-11-23T11:00:00Z")
            .route(Open, "main-line", "main-menu")
            .push(Kind::WelcomeStarted(pb::WelcomeStarted {
                prompt: "welcome".into(),
            }))
            .wait(3)
            .push(Kind::CallerHungUp(pb::CallerHungUp {
                phase: pb::CallPhase::Welcome as i32,
            }))
            .end(Client, pb::CallDisposition::Abandoned),
        // Answered by bohdan after 3 s of ringing; anna's leg is cancelled.
        Call::inbound("c5", "+380501110005", ADS, "2026-11-23T12:00:00Z")
            .route(Open, "ads-landing", "sales")
            .leg(1, "anna", "sip:anna@10.0.0.5")
            .leg(2, "bohdan", "sip:bohdan@10.0.0.6")
            .wait(1)
            .alert(1)
            .alert(2)
            .wait(3)
            .answered(2)
            .cancel(1, pb::LegCancelCause::ColleagueAnswered)
            .bridged(2, "bohdan")
            .wait(40)
            .end(Client, pb::CallDisposition::Answered),
        // olena calls c1's client back; the client answers.
        Call::start(
            "cb1",
            pb::Direction::Outbound,
            ADS,
            "+380501110001",
            "2026-11-23T13:00:00Z",
        )
        .leg(1, "olena", "sip:olena@10.0.0.7")
        .wait(1)
        .alert(1)
        .wait(1)
        .answered(1)
        .leg(2, "", "+380501110001")
        .wait(1)
        .alert(2)
        .wait(3)
        .answered(2)
        .bridged(2, "")
        .wait(30)
        .end(Agent, pb::CallDisposition::Answered),
    ]
    .into_iter()
    .flat_map(Call::events)
    .collect()
}

// ---- the reporter on loopback ----

struct Reporter {
    url: String,
    /// The `authorization` metadata of every request, in order ("" when absent).
    auth: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A reporter whose "now" is 2026-11-23T18:00:00Z, holding [`day`].
async fn reporter() -> Reporter {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = dialtone::config_watch::load_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo"),
    )
    .expect("the demo manifests load");
    let (config, rx) = watch::channel(snapshot);
    let store = Store::open_sqlite_file(&dir.path().join("dialtone.db"), &OpenOptions::default())
        .await
        .expect("the store opens");
    let ingestor =
        Ingestor::open(store.clone(), dir.path(), rx.clone()).expect("the journal opens");
    let ack = ingestor.ingest(day()).await.expect("ingested");
    assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);

    let now = t("2026-11-23T18:00:00Z");
    let reports = ReportsService::new(store, rx).with_clock(move || now);
    let auth = Arc::new(Mutex::new(Vec::new()));
    let seen = auth.clone();
    let service = ReportsServer::with_interceptor(reports, move |req: tonic::Request<()>| {
        let value = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().expect("not poisoned").push(value);
        Ok(req)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _config = config; // keeps the configuration channel open
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    Reporter {
        url: format!("http://{addr}"),
        auth,
        _dir: dir,
    }
}

/// Runs `dialtone ARGS` with a clean `DIALTONE_*` environment plus `envs`; logs turned all the
/// way up, so that any log line on stdout would show.
async fn dialtone(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let line = args.join(" ");
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialtone"));
        for (key, _) in std::env::vars() {
            if key.starts_with("DIALTONE_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&args)
            .envs(envs)
            .env("RUST_LOG", "trace")
            .output()
            .expect("dialtone runs")
    })
    .await
    .expect("join");
    show(&line, &out);
    out
}

/// With `REPORT_CLI_SHOW` set, prints what a command wrote (to look at the formats).
fn show(what: &str, o: &Output) {
    if std::env::var_os("REPORT_CLI_SHOW").is_some() {
        eprintln!("$ dialtone {what}\n{}{}", stdout(o), stderr(o));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 0, stdout nothing but one JSON array.
fn json_rows(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is only JSON ({e}):\n{}", stdout(o)));
    match v {
        Value::Array(rows) => rows,
        other => panic!("an array, got {other}"),
    }
}

const DAY: [&str; 4] = ["--from", "2026-11-23", "--to", "2026-11-23"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_handling_through_the_cli() {
    let r = reporter().await;
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("supervisor.token"), "s3cret-token\n").expect("token");
    let data_dir = data.path().display().to_string();
    let env = [
        ("DIALTONE_SERVER", r.url.as_str()),
        ("DIALTONE_DATA", data_dir.as_str()),
    ];
    let run = |args: Vec<&'static str>| async move { dialtone(&args, &env).await };

    // missed, JSON: the exact rows, newest first.
    let mut args = vec!["report", "missed", "--format", "json"];
    args.extend(DAY);
    let rows = json_rows(&run(args.clone()).await);
    let missed = |id: &str, at: &str, caller: &str, number: &str, name: &str| {
        json!({
            "call_id": id, "started_at": at, "caller": caller, "number": number,
            "reason": "", "agents_alerted": [], "status": "missed", "voicemail": false,
            "waited_seconds": 0.0, "voicemail_url": null, "ended_at": "",
            "anonymous": false, "direction": "inbound", "number_name": name, "trace_id": null,
        })
    };
    let with = |mut row: Value, fields: Value| {
        for (k, v) in fields.as_object().expect("an object") {
            row[k] = v.clone();
        }
        row
    };
    let expected = vec![
        with(
            missed(
                "c3",
                "2026-11-23T11:00:00Z",
                "+380501110003",
                MAIN,
                "main-line",
            ),
            json!({"reason": "abandoned_during_welcome", "waited_seconds": 3.0,
                   "ended_at": "2026-11-23T11:00:03Z"}),
        ),
        with(
            missed(
                "c2",
                "2026-11-23T10:00:00Z",
                "+380501110002",
                ADS,
                "ads-landing",
            ),
            json!({"reason": "all_agents_unavailable", "waited_seconds": 2.0,
                   "ended_at": "2026-11-23T10:00:02Z"}),
        ),
        with(
            missed(
                "c1",
                "2026-11-23T09:00:00Z",
                "+380501110001",
                ADS,
                "ads-landing",
            ),
            json!({"reason": "not_answered", "agents_alerted": ["anna", "bohdan"],
                   "status": "called_back", "waited_seconds": 16.0,
                   "ended_at": "2026-11-23T09:00:16Z"}),
        ),
        with(
            missed(
                "c4",
                "2026-11-23T06:00:00Z",
                "+380501110004",
                ADS,
                "ads-landing",
            ),
            json!({"reason": "outside_business_hours", "waited_seconds": 5.0,
                   "ended_at": "2026-11-23T06:00:05Z"}),
        ),
    ];
    assert_eq!(rows, expected);
    // The credential from DIALTONE_DATA/supervisor.token went along.
    assert_eq!(
        r.auth
            .lock()
            .expect("not poisoned")
            .last()
            .map(String::as_str),
        Some("Bearer s3cret-token")
    );

    // missed, CSV: the header, then the same rows; lists joined with spaces.
    let mut args = vec!["report", "missed", "--format", "csv"];
    args.extend(DAY);
    let out = run(args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "call_id,started_at,caller,number,reason,agents_alerted,status,voicemail,\
             waited_seconds,voicemail_url,ended_at,anonymous,direction,number_name,trace_id",
            "c3,2026-11-23T11:00:00Z,+380501110003,+380441234567,abandoned_during_welcome,,\
             missed,false,3.0,,2026-11-23T11:00:03Z,false,inbound,main-line,",
            "c2,2026-11-23T10:00:00Z,+380501110002,+380441234568,all_agents_unavailable,,\
             missed,false,2.0,,2026-11-23T10:00:02Z,false,inbound,ads-landing,",
            "c1,2026-11-23T09:00:00Z,+380501110001,+380441234568,not_answered,anna bohdan,\
             called_back,false,16.0,,2026-11-23T09:00:16Z,false,inbound,ads-landing,",
            "c4,2026-11-23T06:00:00Z,+380501110004,+380441234568,outside_business_hours,,\
             missed,false,5.0,,2026-11-23T06:00:05Z,false,inbound,ads-landing,",
        ]
    );

    // missed, table (the default): raw reason codes, a count and the period.
    let mut args = vec!["report", "missed"];
    args.extend(DAY);
    let out = run(args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for code in [
        "abandoned_during_welcome",
        "all_agents_unavailable",
        "not_answered",
        "outside_business_hours",
        "called_back",
    ] {
        assert!(table.contains(code), "{code} in\n{table}");
    }
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.starts_with("started_at")),
        "{table}"
    );
    assert!(
        table.contains("4 missed calls, from 2026-11-23T00:00:00Z to 2026-11-24T00:00:00Z"),
        "{table}"
    );

    // A filter.
    let mut args = vec![
        "report",
        "missed",
        "--format",
        "json",
        "--reason",
        "not_answered",
    ];
    args.extend(DAY);
    let rows = json_rows(&run(args).await);
    assert_eq!(rows, expected[2..3]);

    // agents, JSON: PRODUCT.md's keys, the figures, the team total last.
    let mut args = vec!["report", "agents", "--format", "json"];
    args.extend(DAY);
    let rows = json_rows(&run(args).await);
    for row in &rows {
        for key in [
            "agent",
            "offered",
            "answered",
            "missed",
            "declined",
            "miss_rate",
            "avg_time_to_answer_seconds",
            "short_calls",
            "missed_without_callback",
        ] {
            assert!(row.get(key).is_some(), "{key} in {row}");
        }
    }
    let agent = |name: &str| {
        rows.iter()
            .find(|r| r["agent"] == name)
            .unwrap_or_else(|| panic!("{name} in {rows:?}"))
            .clone()
    };
    let figures = |r: Value| {
        (
            r["offered"].clone(),
            r["answered"].clone(),
            r["missed"].clone(),
            r["declined"].clone(),
            r["miss_rate"].clone(),
            r["missed_without_callback"].clone(),
        )
    };
    assert_eq!(
        figures(agent("anna")),
        (json!(2), json!(0), json!(1), json!(0), json!(1.0), json!(0))
    );
    assert_eq!(
        figures(agent("bohdan")),
        (json!(2), json!(1), json!(1), json!(0), json!(0.5), json!(0))
    );
    assert_eq!(agent("bohdan")["avg_time_to_answer_seconds"], json!(3.0));
    assert_eq!(
        rows.last().map(|r| r["agent"].clone()),
        Some(json!("total"))
    );

    // agents, table: a rule, then the team total.
    let mut args = vec!["report", "agents"];
    args.extend(DAY);
    let out = run(args).await;
    let table = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        table.contains("miss_rate") && table.contains("50.0%"),
        "{table}"
    );
    let lines: Vec<&str> = table.lines().collect();
    let rule = lines
        .iter()
        .position(|l| l.starts_with("----"))
        .expect("a rule above the total");
    assert!(lines[rule + 1].starts_with("total"), "{table}");

    // The to-do list before handling: oldest loss first; c1's client was called back.
    let rows = json_rows(&run(vec!["report", "unprocessed", "--format", "json"]).await);
    let clients: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["client"].as_str().unwrap_or_default(),
                r["last_reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        clients,
        [
            ("+380501110004", "outside_business_hours"),
            ("+380501110002", "all_agents_unavailable"),
            ("+380501110003", "abandoned_during_welcome"),
        ]
    );

    // handle: one line; the number may be written with spaces. DIALTONE_TOKEN wins over the
    // file.
    let mut handle_env = env.to_vec();
    handle_env.push(("DIALTONE_TOKEN", "other-token"));
    let out = dialtone(
        &[
            "handle",
            "+380 50 111 0002",
            "--reason",
            "spam",
            "--by",
            "Ann Supervisor",
        ],
        &handle_env,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("handled +380501110002: 1 missed call, 2026-11-23T10:00:00Z"),
        "{line}"
    );
    assert!(
        line.contains("closed as spam by Ann Supervisor at 2026-11-23T18:00:00Z"),
        "{line}"
    );
    assert_eq!(
        r.auth
            .lock()
            .expect("not poisoned")
            .last()
            .map(String::as_str),
        Some("Bearer other-token")
    );

    // The processed view: how each group was closed, by whom, when.
    let rows = json_rows(
        &run(vec![
            "report",
            "unprocessed",
            "--processed",
            "--format",
            "json",
        ])
        .await,
    );
    let processed: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!([
                r["client"],
                r["processed_how"],
                r["processed_by"],
                r["processed_reason"],
                r["processed_note"],
                r["processed_at"],
                r["processed_call_id"],
            ])
        })
        .collect();
    assert_eq!(
        processed,
        [
            json!([
                "+380501110001",
                "callback_answered",
                "olena",
                null,
                null,
                "2026-11-23T13:00:06Z",
                "cb1"
            ]),
            json!([
                "+380501110002",
                "handled",
                "Ann Supervisor",
                "spam",
                null,
                "2026-11-23T18:00:00Z",
                null
            ]),
        ]
    );
    let out = run(vec!["report", "unprocessed", "--processed"]).await;
    let table = stdout(&out);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("client") && header.contains("how") && header.contains("by"),
        "{table}"
    );
    assert!(
        table.contains("Ann Supervisor") && table.contains("spam"),
        "{table}"
    );

    // Handling it again: nothing open for that client.
    let out = dialtone(
        &["handle", "+380501110002", "--reason", "spam", "--by", "ann"],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no unprocessed group for +380501110002"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // `other` needs a note: refused before asking the server.
    let calls_before = r.auth.lock().expect("not poisoned").len();
    for note in [None, Some("  ")] {
        let mut args = vec![
            "handle",
            "+380501110003",
            "--reason",
            "other",
            "--by",
            "ann",
        ];
        if let Some(n) = note {
            args.extend(["--note", n]);
        }
        let out = dialtone(&args, &env).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("--note"), "{}", stderr(&out));
    }
    assert_eq!(r.auth.lock().expect("not poisoned").len(), calls_before);

    // The other reports answer in every format.
    for report in ["calls", "callbacks", "top-missers", "heatmap"] {
        for format in ["json", "csv", "table"] {
            let mut args = vec!["report", report, "--format", format];
            args.extend(DAY);
            let out = run(args).await;
            assert!(out.status.success(), "{report} {format}: {}", stderr(&out));
            if format == "json" {
                json_rows(&out);
            }
        }
    }
    let mut args = vec![
        "report", "calls", "--format", "json", "--status", "answered",
    ];
    args.extend(DAY);
    let rows = json_rows(&run(args).await);
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["call_id"].as_str()).collect();
    assert_eq!(ids, ["cb1", "c5"]);
    let mut args = vec!["report", "heatmap"];
    args.extend(DAY);
    let grid = stdout(&run(args).await);
    assert!(grid.starts_with("hour  Mon"), "{grid}");
    assert_eq!(
        grid.lines()
            .filter(|l| l.starts_with(['0', '1', '2']))
            .count(),
        24
    );

    // No live board behind this reporter: the server's error, exit 1.
    let out = run(vec!["report", "live"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("router"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[tokio::test]
async fn usage_errors_exit_2_and_an_unreachable_server_exits_1() {
    // A bad --from names the accepted forms.
    let out = dialtone(&["report", "missed", "--from", "yesterday"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--from") && err.contains("RFC 3339") && err.contains("2026-11-23"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    // From after to.
    let out = dialtone(
        &[
            "report",
            "agents",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-23",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("an address").port()
    };
    let server = format!("http://127.0.0.1:{port}");
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let out = dialtone(
        &["report", "missed", "--server", &server, "--format", "json"],
        &[("DIALTONE_DATA", &data_dir)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach Dialtone at {server}")) && err.contains("dialtone up"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}
