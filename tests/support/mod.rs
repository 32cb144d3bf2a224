//! Shared by the root crate's integration tests.

#[allow(dead_code)] // only the tests of agents dialling out use it
pub mod agent_dial;
#[allow(dead_code)] // only the multi-process tests use it
pub mod processes;
#[allow(dead_code)] // not every test starts SIPp
pub mod sipp;
#[allow(dead_code)] // only the tests through standalone mode use it
pub mod up;

use std::path::Path;

use dialtone_proto::v1::reports_client::ReportsClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds the bearer token to every request.
pub type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

/// A channel that shows the token.
pub type Authed = InterceptedService<Channel, AddToken>;

/// A Reports client showing the supervisor token that standalone mode wrote on first start.
pub async fn reports_client(url: &str, data: &Path) -> ReportsClient<Authed> {
    let token = std::fs::read_to_string(data.join("supervisor.token")).expect("supervisor.token");
    let value: MetadataValue<_> = format!("Bearer {}", token.trim()).parse().expect("header");
    let channel = Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let add: AddToken = Box::new(move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", value.clone());
        Ok(req)
    });
    ReportsClient::with_interceptor(channel, add)
}
