//! `fedctl leave PEER`: ends a peering on both sides when the peer can be
//! told, on this side alone when it cannot (DESIGN.md, Joining).
//!
//! The leaver sends Goodbye on the peering stream and waits (bounded) for
//! the peer's Goodbye answer, which the peer sends after removing the
//! peering from its own store. Then the leaver removes it here: store, trust
//! bundle, stream and dialer.

use std::time::Duration;

use fedmesh_proto::v1::{self, sync_message::Msg};
use tracing::info;

use super::handles::PeeringHandles;
use super::session::remove_peer;

/// How long to wait for the peer's answer to Goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);

/// What `leave` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveOutcome {
    /// The peer answered and removed the peering too.
    pub remote_notified: bool,
    /// A sentence for the user.
    pub detail: String,
}

/// Why `fedctl leave` did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaveError {
    /// No peering with that name.
    #[error("{peer} is not a peer of {cluster}; `fedctl peers` lists the peers")]
    UnknownPeer {
        /// The name asked for.
        peer: String,
        /// This cluster.
        cluster: String,
    },
}

/// Ends the peering with `peer`.
///
/// # Errors
/// When there is no such peer.
pub async fn leave(h: &PeeringHandles, peer: &str) -> Result<LeaveOutcome, LeaveError> {
    if h.peers.record(peer).is_none() {
        return Err(LeaveError::UnknownPeer {
            peer: peer.to_string(),
            cluster: h.me.name.clone(),
        });
    }
    let remote_notified = match h.peers.await_goodbye(peer) {
        Some((outbound, answered)) => {
            let bye = v1::SyncMessage {
                msg: Some(Msg::Goodbye(v1::Goodbye {
                    reason: format!("{} left the peering", h.me.name),
                })),
            };
            outbound.try_send(bye).is_ok()
                && matches!(
                    tokio::time::timeout(GOODBYE_TIMEOUT, answered).await,
                    Ok(Ok(()))
                )
        }
        None => false,
    };
    remove_peer(h, peer).await;
    h.peers.remove(peer);
    h.acked.forget(peer);
    info!(%peer, remote_notified, "peering removed");
    let detail = if remote_notified {
        format!("left {peer}; {peer} removed the peering too")
    } else {
        format!(
            "left {peer} on this side only: {peer} could not be told (not connected); run `fedctl leave {}` on {peer} when it is back",
            h.me.name
        )
    };
    Ok(LeaveOutcome {
        remote_notified,
        detail,
    })
}

#[cfg(test)]
mod tests;
