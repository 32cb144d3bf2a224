//! The internal services keep strangers out: a `dialtone router` started with an internal token
//! (as the operator starts it in a cluster) refuses Router requests that do not show it — from
//! loopback too — and serves those that do; `dialtone route` reaches it with the token only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dialtone_proto::internal::InternalToken;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;

const TOKEN: &str = "internal-7f3a9c";

struct Router {
    child: Child,
    grpc: String,
    _data: tempfile::TempDir,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dialtone router` on the e2e manifests, its gRPC on a free loopback port.
fn start_router() -> Router {
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "router",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/e2e"),
            "--grpc",
            "127.0.0.1:0",
            "--ops",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .arg("--data")
        .arg(data.path())
        .env("DIALTONE_INTERNAL_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dialtone router starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("dialtone router: gRPC on ") {
                let addr = rest.split(',').next().unwrap_or_default().to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the router prints where it listens");
    Router {
        child,
        grpc: format!("http://{addr}"),
        _data: data,
    }
}

async fn client(
    url: &str,
    token: Option<&str>,
) -> RouterClient<dialtone_proto::internal::InternalChannel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    RouterClient::new(InternalToken::new(token).expect("token").channel(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_its_own_components_only() {
    let router = start_router();
    let board = pb::GetLiveBoardRequest {
        omit_contacts: true,
    };

    // No token, from loopback: refused.
    let err = client(&router.grpc, None)
        .await
        .get_live_board(board)
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("internal token"),
        "{}",
        err.message()
    );
    // A wrong token: refused the same way.
    let err = client(&router.grpc, Some("internal-guess"))
        .await
        .plan_call(pb::PlanCallRequest {
            call_id: "x".into(),
            number: "+380441230000".into(),
            ..Default::default()
        })
        .await
        .expect_err("wrong token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The token: served.
    let live = client(&router.grpc, Some(TOKEN))
        .await
        .get_live_board(board)
        .await
        .expect("served with the token")
        .into_inner();
    assert!(live.agents.iter().any(|a| a.agent == "anna"), "{live:?}");

    // `dialtone route` against it: refused without the token, planned with it.
    let route = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialtone"));
        cmd.args(["route", "+380441230000", "--server", &router.grpc])
            .env_remove("DIALTONE_INTERNAL_TOKEN");
        if let Some(t) = token {
            cmd.env("DIALTONE_INTERNAL_TOKEN", t);
        }
        cmd.output().expect("dialtone route runs")
    };
    let refused = route(None);
    assert!(!refused.status.success());
    let with = route(Some(TOKEN));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("scheme     sales"));
}
