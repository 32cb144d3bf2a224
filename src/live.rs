//! Where the reporter's live board comes from: the router in this process (standalone), or a
//! router reached over gRPC (cluster).

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use dialtone_proto::v1::router_server::Router as _;
use dialtone_reporter::reports_service::{LiveSource, PresenceStream};
use dialtone_router::service::RouterService;
use tonic::{Request, Status};

/// The router running in this process.
#[derive(Debug, Clone)]
pub struct LocalRouter(pub RouterService);

#[tonic::async_trait]
impl LiveSource for LocalRouter {
    async fn board(&self, omit_contacts: bool) -> Result<pb::LiveBoard, Status> {
        self.0
            .get_live_board(Request::new(pb::GetLiveBoardRequest { omit_contacts }))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn watch(&self, omit_contacts: bool) -> Result<PresenceStream, Status> {
        let stream = self
            .0
            .watch_presence(Request::new(pb::WatchPresenceRequest { omit_contacts }))
            .await?
            .into_inner();
        Ok(stream)
    }
}

/// A router over gRPC.
#[derive(Debug, Clone)]
pub struct RemoteRouter(pub RouterClient<dialtone_proto::internal::InternalChannel>);

#[tonic::async_trait]
impl LiveSource for RemoteRouter {
    async fn board(&self, omit_contacts: bool) -> Result<pb::LiveBoard, Status> {
        self.0
            .clone()
            .get_live_board(pb::GetLiveBoardRequest { omit_contacts })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn watch(&self, omit_contacts: bool) -> Result<PresenceStream, Status> {
        let stream = self
            .0
            .clone()
            .watch_presence(pb::WatchPresenceRequest { omit_contacts })
            .await?
            .into_inner();
        Ok(Box::pin(stream))
    }
}
