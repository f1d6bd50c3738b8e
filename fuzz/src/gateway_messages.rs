//! Every message the gateway config streams carry (`gateway.proto`),
//! decoded with prost and converted as the receiver does: the gateway's
//! `GatewaySnapshot` (`GatewayState::from_proto`, then the listeners it
//! opens), and what the control plane's gateway API accepts: a
//! `SignCertificateRequest` (token, then the CSR signed by a test CA), a
//! `WatchRequest` (token) and `GatewayStatus` reports.
//!
//! The first input byte picks the message; the rest is its encoding.
//!
//! Rule checked: no panic, whatever the bytes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use fedmesh_control::ca::ClusterCa;
use fedmesh_gateway::state::GatewayState;
use fedmesh_proto::token::BootstrapToken;
use fedmesh_proto::v1;
use prost::Message;

fn ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| {
        ClusterCa::generate("west", "west.fedmesh.test")
            .unwrap_or_else(|e| panic!("a test CA for the fuzz target: {e}"))
    })
}

/// Decodes `data` as the message its first byte names and converts it.
pub fn run(data: &[u8]) {
    let Some((kind, rest)) = crate::selector(data) else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(m) = v1::GatewaySnapshot::decode(rest)
                && let Ok(state) = GatewayState::from_proto(&m)
            {
                let _ = state.listeners(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
        }
        1 => {
            if let Ok(m) = v1::SignCertificateRequest::decode(rest) {
                let _ = BootstrapToken::decode(&m.bootstrap_token);
                let _ =
                    ca().sign_gateway_csr(&m.gateway_name, &m.csr_der, Duration::from_secs(3600));
            }
        }
        2 => {
            if let Ok(m) = v1::WatchRequest::decode(rest) {
                let _ = BootstrapToken::decode(&m.bootstrap_token);
            }
        }
        _ => {
            let _ = v1::GatewayStatus::decode(rest);
        }
    }
}
