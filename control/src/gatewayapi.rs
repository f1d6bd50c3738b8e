//! The gateway API on `control.gatewayListen`: signs gateways' CSRs and
//! streams configuration snapshots to them. Served over TLS with the
//! control plane's leaf; a gateway checks it against the CA pin in its
//! bootstrap token before sending the token's secret, and every call must
//! carry that token (DESIGN.md, Identity and trust).

use std::pin::Pin;
use std::sync::Arc;

use fedmesh_proto::v1::{self, gateway_config_server::GatewayConfig};
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::ca::{LEAF_LIFETIME, pem_encode};
use crate::clock;
use crate::context::Control;
use crate::peering::info::locality_to_proto;
use crate::token::{BootstrapToken, secrets_equal};

/// The `GatewayConfig` service.
#[derive(Debug, Clone)]
pub struct GatewayApi {
    ctl: Arc<Control>,
}

impl GatewayApi {
    /// A service over the control plane's state.
    pub fn new(ctl: Arc<Control>) -> Self {
        Self { ctl }
    }

    fn authorize(&self, token: &str) -> Result<(), Status> {
        let refused = |why: String| {
            Status::unauthenticated(format!(
                "gateway bootstrap token refused ({why}); use the token file that `fedctl run` writes (gateway.bootstrapTokenFile)"
            ))
        };
        let presented = BootstrapToken::decode(token).map_err(|e| refused(e.to_string()))?;
        if secrets_equal(&presented.secret, &self.ctl.bootstrap.secret) {
            Ok(())
        } else {
            Err(refused("wrong secret".into()))
        }
    }

    fn snapshot(&self, version: u64) -> v1::GatewaySnapshot {
        let trust = self.ctl.peers.trust().snapshot();
        let trust_bundle = trust
            .iter()
            .map(|p| v1::TrustAnchor {
                cluster: p.cluster.clone(),
                trust_domain: p.trust_domain.clone(),
                roots_pem: p
                    .roots
                    .iter()
                    .map(|r: &CertificateDer<'_>| pem_encode("CERTIFICATE", r))
                    .collect(),
            })
            .collect();
        v1::GatewaySnapshot {
            version,
            cluster: self.ctl.config.cluster.clone(),
            trust_domain: self.ctl.config.trust_domain.clone(),
            locality: Some(locality_to_proto(&self.ctl.locality())),
            trust_bundle,
            // Imports and exports come from the service table (issue 3).
            imports: Vec::new(),
            exports: Vec::new(),
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<v1::GatewaySnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl GatewayConfig for GatewayApi {
    async fn sign_certificate(
        &self,
        request: Request<v1::SignCertificateRequest>,
    ) -> Result<Response<v1::SignCertificateResponse>, Status> {
        let req = request.into_inner();
        self.authorize(&req.bootstrap_token)?;
        let issued = self
            .ctl
            .ca
            .sign_gateway_csr(&req.gateway_name, &req.csr_der, LEAF_LIFETIME)
            .map_err(|e| {
                warn!(gateway = %req.gateway_name, error = %e, "CSR refused");
                Status::invalid_argument(e.to_string())
            })?;
        info!(gateway = %req.gateway_name, not_after = %clock::rfc3339_ms(clock::datetime_unix_ms(issued.not_after)), "gateway certificate issued");
        Ok(Response::new(v1::SignCertificateResponse {
            cert_chain_pem: issued.chain_pem,
            not_after_unix_ms: clock::datetime_unix_ms(issued.not_after),
        }))
    }

    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let req = request.into_inner();
        self.authorize(&req.bootstrap_token)?;
        let (tx, rx) = mpsc::channel(4);
        let api = self.clone();
        let mut changes = self.ctl.peers.subscribe();
        tokio::spawn(async move {
            loop {
                let version = *changes.borrow_and_update();
                if tx.send(api.snapshot(version)).await.is_err() || changes.changed().await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}
