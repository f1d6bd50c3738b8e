//! The admin calls behind `fedctl drain`, `fedctl undrain` and `fedctl
//! version`, and how a peer's drain is read back from the table.

use fedmesh_proto::v1;
use tonic::Status;
use tracing::info;

use crate::drain::DrainSwitch;
use crate::table::TableSnapshot;

/// Applies a `SetDraining` request to `switch` on cluster `me`.
///
/// # Errors
/// `failed_precondition` when the request names another cluster (the
/// caller dialed the wrong admin API), `unavailable` when this control
/// plane has no switch, `internal` when the state cannot be persisted.
pub(super) async fn set_draining(
    switch: Option<&DrainSwitch>,
    me: &str,
    request: v1::SetDrainingRequest,
) -> Result<v1::SetDrainingResponse, Status> {
    if !request.cluster.is_empty() && request.cluster != me {
        return Err(Status::failed_precondition(format!(
            "this admin API is cluster {me}, not {}; run the command against {}'s admin API (--admin ADDR)",
            request.cluster, request.cluster
        )));
    }
    let switch =
        switch.ok_or_else(|| Status::unavailable("this control plane cannot drain (no switch)"))?;
    let (state, changed) = switch
        .set(request.draining)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    if changed {
        let verb = if state.draining {
            "drained"
        } else {
            "undrained"
        };
        info!(cluster = %me, "cluster {verb}; every peering is told");
    }
    Ok(v1::SetDrainingResponse {
        cluster: me.to_string(),
        draining: state.draining,
        changed,
        since_unix_ms: state.since_unix_ms,
    })
}

/// Whether `peer` is draining as this cluster sees it: it exports at
/// least one service here and marks every one of them draining.
pub(super) fn peer_draining(table: &TableSnapshot, peer: &str) -> bool {
    let mut entries = table
        .services
        .values()
        .flat_map(|s| s.clusters.iter())
        .filter(|c| c.cluster == peer)
        .peekable();
    entries.peek().is_some() && entries.all(|c| c.draining)
}

/// This control plane's release.
pub(super) fn version(me: &str) -> v1::GetVersionResponse {
    v1::GetVersionResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        cluster: me.to_string(),
    }
}
