//! Stage 5, carry: bytes both ways between the client and the upstream
//! the attempt stage reached, until either side closes or the connection
//! stays silent for `gateway.idleTimeout`; counted while it runs.

use tokio::net::TcpStream;

use super::Egress;
use tracing::debug;

use crate::limits::TargetPermit;
use crate::splice::{Moved, TlsSide, TunnelSide, splice, splice_tunnel};
use crate::state::ServiceKey;
use crate::transport::Tunnel;

/// What a connection is carried to.
pub(super) enum Upstream {
    /// A local endpoint.
    Plain(TcpStream),
    /// A peer gateway's ingress: a CONNECT stream of the pooled transport.
    Tunnel(Box<Tunnel>),
}

/// A reached target, ready to carry.
pub(super) struct Connected {
    /// Where bytes go.
    pub(super) upstream: Upstream,
    /// The cluster reached.
    pub(super) cluster: String,
    /// Its slot under `maxConnectionsPerTarget`, held while carrying.
    pub(super) permit: TargetPermit,
}

/// Carries `client` to `to` until either side is done; what moved.
pub(super) async fn carry(
    egress: &Egress,
    mut client: TcpStream,
    to: Connected,
    service: &ServiceKey,
) -> Moved {
    let Connected {
        upstream,
        cluster,
        permit,
    } = to;
    let _active = egress.metrics.egress_active(service, &cluster);
    let meters = egress.metrics.egress_meters(service, &cluster);
    let _open = egress.life.open_connection();
    let idle = egress.idle_timeout;
    let moved = match upstream {
        Upstream::Plain(mut s) => {
            splice(&mut client, &mut s, TlsSide::Neither, idle, &meters).await
        }
        Upstream::Tunnel(mut s) => {
            splice_tunnel(&mut client, &mut s, TunnelSide::SocketFirst, idle, &meters).await
        }
    };
    debug!(up = moved.up, down = moved.down, "client connection done");
    drop(permit);
    moved
}
