//! `dialtone router` as a process: health checking and reflection work for standard tools,
//! `dialtone route` asks it, SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

struct Running {
    child: Child,
    grpc: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_router(data: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "router",
            "--config",
            "examples/demo",
            "--grpc",
            "127.0.0.1:0",
            "--ops",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(data)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dialtone router starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("router: {line}");
            if let Some(rest) = line.strip_prefix("dialtone router: gRPC on ") {
                let addr = rest.split(',').next().unwrap_or_default().to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let grpc = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the router prints where it listens");
    Running {
        child,
        grpc: format!("http://{grpc}"),
    }
}

#[tokio::test]
async fn router_process_serves_health_reflection_and_route() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut router = start_router(data.path());
    let channel = tonic::transport::Endpoint::from_shared(router.grpc.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "dialtone.v1.Router".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(channel);
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("reflection")
        .into_inner();
    let first = responses
        .message()
        .await
        .expect("stream")
        .expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"dialtone.v1.Router".to_owned()),
        "{names:?}"
    );

    let server = router.grpc.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(["route", "+380441234568", "--caller", "+380501234567"])
            .args(["--at", "2026-11-23T19:30:00Z", "--server", &server])
            .output()
            .expect("dialtone route runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("after-hours"),
        "21:30 in Kyiv is closed: {text}"
    );
    assert!(text.contains("closed"), "{text}");

    // SIGTERM: a clean exit, code 0.
    let pid = router.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = router.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            assert!(
                data.path().join("router-state.json").exists(),
                "state saved on exit"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the router did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn route_without_a_server_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["route", "+380441234567", "--server", "http://127.0.0.1:9"])
        .output()
        .expect("dialtone route runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Dialtone") && err.contains("--config"),
        "{err}"
    );
}

#[test]
fn route_offline_against_a_folder() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["route", "+380441234567", "--caller", "+380931110000"])
        .args(["--at", "2026-11-23", "--config", "examples/demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("dialtone route runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a blocked caller is rejected: {text}"
    );
    assert!(
        text.contains("robocaller"),
        "the entry's reason is shown: {text}"
    );
}
