//! `dialtone up` inside a test: the e2e call center (`tests/fixtures/e2e`) patched for the
//! test, standalone mode started on it with every port picked by the system, and agents'
//! softphones (SIPp) registered over gRPC — what the end-to-end tests through standalone
//! mode all start with.

use std::net::SocketAddr;
use std::path::Path;

use dialtone::shutdown::Shutdown;
use dialtone::standalone::{self, Running, Settings};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tonic::transport::Channel;

/// The e2e call center's manifests as text, for a test to patch.
pub fn e2e_manifests() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/callcenter.yaml"),
    )
    .expect("e2e manifests")
}

/// A configuration folder holding `manifests` (as `callcenter.yaml`).
pub fn config_of(manifests: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("callcenter.yaml"), manifests).expect("write manifests");
    dir
}

/// The e2e call center with its carrier at `carrier` (where a SIPp listens), plus more
/// manifests (`extra`, documents starting with `---`).
pub fn e2e_config(carrier: u16, extra: &str) -> tempfile::TempDir {
    let text = e2e_manifests().replace("127.0.0.1:5999", &format!("127.0.0.1:{carrier}"));
    assert!(
        text.contains(&format!(":{carrier}")),
        "carrier address patched"
    );
    config_of(&(text + extra))
}

/// `dialtone up` on `config` and `data`, every port picked by the system.
pub async fn start(config: &Path, data: &Path) -> (Running, Shutdown) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let settings = Settings {
        config: config.to_owned(),
        data: data.to_owned(),
        database_url: None,
        grpc: any,
        http: any,
        sip: Some(any),
    };
    let shutdown = Shutdown::new();
    let running = standalone::start(&settings, shutdown.clone())
        .await
        .expect("standalone starts");
    (running, shutdown)
}

/// Registers `agent`'s softphone, a SIPp listening on 127.0.0.1:`port`, for ten minutes
/// (longer than any test), as if a media node named `sipp` had taken the REGISTER.
pub async fn register_contact(router: &mut RouterClient<Channel>, agent: &str, port: u16) {
    router
        .register_contact(pb::RegisterContactRequest {
            agent: agent.into(),
            uri: format!("sip:{agent}@127.0.0.1:{port}"),
            expires: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            node_id: "sipp".into(),
            ..Default::default()
        })
        .await
        .expect("register");
}
