//! The CLI's admin client against a stub admin server (only what the
//! client sees matters here, not the control plane behind it).

use fedmesh_proto::v1::admin_server::{Admin, AdminServer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::*;

/// Answers `ListServices` with `count` services; nothing else.
struct ManyServices {
    count: usize,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("stub"))
}

#[tonic::async_trait]
impl Admin for ManyServices {
    async fn create_token(
        &self,
        _: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        unimplemented()
    }
    async fn join_peer(
        &self,
        _: Request<v1::JoinPeerRequest>,
    ) -> Result<Response<v1::JoinPeerResponse>, Status> {
        unimplemented()
    }
    async fn leave_peer(
        &self,
        _: Request<v1::LeavePeerRequest>,
    ) -> Result<Response<v1::LeavePeerResponse>, Status> {
        unimplemented()
    }
    async fn list_peers(
        &self,
        _: Request<v1::ListPeersRequest>,
    ) -> Result<Response<v1::ListPeersResponse>, Status> {
        unimplemented()
    }
    async fn check(
        &self,
        _: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        unimplemented()
    }
    async fn ca_rotate(
        &self,
        _: Request<v1::CaRotateRequest>,
    ) -> Result<Response<v1::CaRotateResponse>, Status> {
        unimplemented()
    }
    async fn ca_status(
        &self,
        _: Request<v1::CaStatusRequest>,
    ) -> Result<Response<v1::CaStatusResponse>, Status> {
        unimplemented()
    }
    async fn list_services(
        &self,
        _: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let services = (0..self.count)
            .map(|i| v1::GlobalServiceStatus {
                namespace: format!("bench-{}", i % 10),
                name: format!("svc-{i:05}"),
                dns_name: format!("svc-{i:05}.bench-{}.svc.clusterset.local", i % 10),
                vip: "127.77.1.1".into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(v1::ListServicesResponse { services }))
    }
    async fn set_draining(
        &self,
        _: Request<v1::SetDrainingRequest>,
    ) -> Result<Response<v1::SetDrainingResponse>, Status> {
        unimplemented()
    }
    async fn get_version(
        &self,
        _: Request<v1::GetVersionRequest>,
    ) -> Result<Response<v1::GetVersionResponse>, Status> {
        unimplemented()
    }
}

#[tokio::test]
async fn services_lists_a_federation_larger_than_four_mebibytes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = 60_000;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(ManyServices { count }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = connect(&AdminListen::Tcp(addr)).await.unwrap();
    let answer = client
        .list_services(v1::ListServicesRequest {})
        .await
        .expect("a list over 4 MiB is accepted")
        .into_inner();
    assert_eq!(answer.services.len(), count);
}
