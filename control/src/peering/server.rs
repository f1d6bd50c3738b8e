//! The acceptor side: the `Peering` gRPC service. Join is served to anyone
//! holding a valid token; Sync only to a peer's control plane, identified by
//! its client certificate (already verified against that peer's root by the
//! TLS layer; here it is mapped to the peer's name).

use std::pin::Pin;

use fedmesh_proto::identity::identify_peer;
use fedmesh_proto::v1::{self, peering_server::Peering};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span};

use super::handles::PeeringHandles;
use super::{join, session};

/// The `Peering` service.
#[derive(Debug, Clone)]
pub struct PeeringService {
    h: PeeringHandles,
}

impl PeeringService {
    /// A service over the control plane's state.
    pub fn new(h: PeeringHandles) -> Self {
        Self { h }
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<v1::SyncMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Peering for PeeringService {
    async fn join(
        &self,
        request: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        let remote = request.remote_addr();
        let span = info_span!("join", remote = ?remote);
        join::accept(&self.h, request.into_inner())
            .instrument(span)
            .await
            .map(Response::new)
    }

    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: Request<Streaming<v1::SyncMessage>>,
    ) -> Result<Response<SyncStream>, Status> {
        let peer = authenticate(&self.h, &request)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let Some((id, kill)) = self.h.peers.open_session(&peer, tx.clone()) else {
            return Err(Status::permission_denied(format!(
                "{peer} is not a peer of {}",
                self.h.me.name
            )));
        };
        info!(%peer, session = id, "peering stream accepted");
        let span = info_span!("session", %peer, session = id);
        tokio::spawn(session::run(self.h.clone(), peer, id, inbound, tx, kill).instrument(span));
        let outbound = ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(outbound)))
    }
}

/// The peer cluster behind a request's client certificate.
fn authenticate<T>(h: &PeeringHandles, request: &Request<T>) -> Result<String, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated(
            "this call needs the client certificate of a peer cluster's control plane; join first with `fedctl join`",
        )
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    let (peer, id) = identify_peer(&h.peers.trust().snapshot(), leaf)
        .map_err(|e| Status::permission_denied(e.to_string()))?;
    if !id.is_control() {
        return Err(Status::permission_denied(format!(
            "{id} is not a control plane identity; only control planes open peering streams"
        )));
    }
    Ok(peer.cluster)
}
