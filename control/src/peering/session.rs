//! One peering stream, the same loop on both ends: send Hello, send a
//! heartbeat every `heartbeatInterval`, treat a peer silent for
//! `peerDeadAfter` as dead, and handle Goodbye (`fedctl leave`).
//!
//! The session ends when the stream breaks, the peer goes silent, a newer
//! stream from the same peer replaces it (the kill signal), or the peering
//! is removed. Its end is recorded in the [`super::PeerSet`].

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::v1::{self, sync_message::Msg};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_stream::{Stream, StreamExt};
use tracing::{debug, info, warn};

use super::handles::PeeringHandles;
use super::info::PeerInfo;
use super::sync::{ExportSender, ImportReceiver};
use crate::clock;
use crate::exports::ExportState;
use crate::store::SyncPos;

/// How long the side answering a Goodbye waits for the leaver to close.
const GOODBYE_LINGER: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// A newer stream replaced it, or the peering was removed here.
    Replaced,
    /// The peer left (Goodbye), or answered ours.
    Left,
    /// The stream broke or the peer went silent.
    Failed(String),
}

/// Runs one session to its end and records the end in the peer set.
pub async fn run<S>(
    h: PeeringHandles,
    peer: String,
    id: u64,
    inbound: S,
    outbound: mpsc::Sender<v1::SyncMessage>,
    kill: oneshot::Receiver<()>,
) -> SessionEnd
where
    S: Stream<Item = Result<v1::SyncMessage, tonic::Status>> + Unpin + Send,
{
    let end = drive(&h, &peer, id, inbound, &outbound, kill).await;
    match &end {
        SessionEnd::Failed(reason) => {
            warn!(%peer, session = id, %reason, "peering stream ended");
            h.peers.session_ended(&peer, id, Some(reason.clone()));
        }
        SessionEnd::Replaced | SessionEnd::Left => {
            debug!(%peer, session = id, ?end, "peering stream closed");
            h.peers.session_ended(&peer, id, None);
        }
    }
    end
}

async fn drive<S>(
    h: &PeeringHandles,
    peer: &str,
    id: u64,
    mut inbound: S,
    outbound: &mpsc::Sender<v1::SyncMessage>,
    mut kill: oneshot::Receiver<()>,
) -> SessionEnd
where
    S: Stream<Item = Result<v1::SyncMessage, tonic::Status>> + Unpin + Send,
{
    let mut sync = match open(h, peer, outbound).await {
        Ok(sync) => sync,
        Err(end) => return end,
    };
    let dead_after = h.timing.dead_after;
    let mut heartbeat = tokio::time::interval(h.timing.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deadline = Instant::now() + dead_after;
    loop {
        tokio::select! {
            _ = &mut kill => return SessionEnd::Replaced,
            _ = heartbeat.tick() => {
                let beat = Msg::Heartbeat(v1::Heartbeat { sent_unix_ms: clock::now_unix_ms() });
                if send(outbound, beat).is_err() {
                    return SessionEnd::Failed("stream closed".into());
                }
            }
            changed = sync.ca.changed() => {
                // The published roots changed (CA rotation): tell the peer.
                if changed.is_err() {
                    return SessionEnd::Failed("CA state stopped".into());
                }
                let view = sync.ca.borrow_and_update().clone();
                // The signer switch keeps the roots: nothing new to send.
                if view.digest != sync.sent_digest {
                    sync.sent_digest.clone_from(&view.digest);
                    if let Some(end) = send_or_end(h, outbound, super::trust::bundle(&view)).await {
                        return end;
                    }
                }
            }
            changed = sync.exports.changed() => {
                if changed.is_err() {
                    return SessionEnd::Failed("export state stopped".into());
                }
                if let Some(end) = send_exports(h, &mut sync, outbound).await {
                    return end;
                }
            }
            () = sleep_until(deadline) => {
                return SessionEnd::Failed(format!(
                    "peer silent for {} ms (peerDeadAfter)", dead_after.as_millis()
                ));
            }
            next = inbound.next() => {
                let msg = match next {
                    None => return SessionEnd::Failed("stream closed by peer".into()),
                    Some(Err(status)) => return SessionEnd::Failed(status_text(&status)),
                    Some(Ok(m)) => m,
                };
                deadline = Instant::now() + dead_after;
                h.peers.heard(peer, id);
                if let Some(end) = handle(h, peer, id, msg, outbound, &mut inbound, &mut sync).await {
                    return end;
                }
            }
        }
    }
}

/// Opens the session: reads where the peer's exports stand here and sends
/// Hello with that position (DESIGN.md, Export sync: the peer resumes from
/// it or resends everything).
async fn open(
    h: &PeeringHandles,
    peer: &str,
    outbound: &mpsc::Sender<v1::SyncMessage>,
) -> Result<SyncState, SessionEnd> {
    let store = h.store.clone();
    let name = peer.to_string();
    let pos = match tokio::task::spawn_blocking(move || store.sync_pos(&name)).await {
        Ok(Ok(pos)) => pos,
        // An unreadable position costs a full resync, not the session.
        _ => SyncPos::default(),
    };
    let hello = Msg::Hello(v1::Hello {
        info: Some(h.me_now()),
        acked_version: pos.version,
        epoch: pos.epoch,
    });
    if send(outbound, hello).is_err() {
        return Err(SessionEnd::Failed("stream closed before hello".into()));
    }
    let mut ca = h.ca.subscribe();
    let view = ca.borrow_and_update().clone();
    // While a rotation runs, a peer that (re)connects acks the bundle too.
    if view.phase.rotating() && send(outbound, super::trust::bundle(&view)).is_err() {
        return Err(SessionEnd::Failed("stream closed before hello".into()));
    }
    Ok(SyncState {
        sender: ExportSender::new(peer),
        receiver: ImportReceiver::new(peer, pos),
        exports: h.exports.clone(),
        ca,
        sent_digest: view.digest.clone(),
    })
}

/// Export sync state of one session.
struct SyncState {
    sender: ExportSender,
    receiver: ImportReceiver,
    exports: tokio::sync::watch::Receiver<Arc<ExportState>>,
    /// This cluster's published roots: a change is sent to the peer.
    ca: tokio::sync::watch::Receiver<Arc<crate::ca::rotation::CaView>>,
    /// The bundle the peer last got (in Hello or a trust update).
    sent_digest: String,
}

/// Sends what changed in our exports for this peer, if anything.
async fn send_exports(
    h: &PeeringHandles,
    sync: &mut SyncState,
    outbound: &mpsc::Sender<v1::SyncMessage>,
) -> Option<SessionEnd> {
    let state = sync.exports.borrow_and_update().clone();
    let update = sync.sender.next_update(&state, &h.acked)?;
    debug!(
        version = update.version,
        full = update.full,
        upserts = update.upserts.len(),
        removals = update.removals.len(),
        "sending exports"
    );
    send_or_end(h, outbound, Msg::Exports(update)).await
}

/// Sends a message that must not be dropped like a heartbeat: waits for
/// room, but no longer than a silent peer is tolerated (it is not reading).
async fn send_or_end(
    h: &PeeringHandles,
    outbound: &mpsc::Sender<v1::SyncMessage>,
    msg: Msg,
) -> Option<SessionEnd> {
    let dead_after = h.timing.dead_after;
    let msg = v1::SyncMessage { msg: Some(msg) };
    match tokio::time::timeout(dead_after, outbound.send(msg)).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(SessionEnd::Failed("stream closed".into())),
        Err(_) => Some(SessionEnd::Failed(format!(
            "peer read nothing for {} ms (peerDeadAfter)",
            dead_after.as_millis()
        ))),
    }
}

/// Handles one message; `Some` ends the session.
async fn handle<S>(
    h: &PeeringHandles,
    peer: &str,
    id: u64,
    msg: v1::SyncMessage,
    outbound: &mpsc::Sender<v1::SyncMessage>,
    inbound: &mut S,
    sync: &mut SyncState,
) -> Option<SessionEnd>
where
    S: Stream<Item = Result<v1::SyncMessage, tonic::Status>> + Unpin + Send,
{
    match msg.msg {
        Some(Msg::Hello(hello)) => on_hello(h, peer, hello, outbound, sync).await,
        Some(Msg::Trust(update)) => {
            let ack = match super::trust::received(&update) {
                Ok(ack) => ack,
                Err(reason) => return Some(SessionEnd::Failed(reason)),
            };
            let roots = update.ca_roots_pem;
            if let Some(end) = persist(h, peer, move |r| r.roots_pem = roots).await {
                return Some(end);
            }
            // Stored and trusted: the peer may present leaves of them.
            send_or_end(h, outbound, ack).await
        }
        Some(Msg::TrustAck(ack)) => {
            super::trust::acked(h, peer, ack).await;
            None
        }
        Some(Msg::Goodbye(bye)) => Some(on_goodbye(h, peer, id, bye, outbound, inbound).await),
        Some(Msg::Heartbeat(_)) => None,
        Some(Msg::Exports(update)) => match sync.receiver.receive(&h.store, &h.table, update).await
        {
            Ok(ack) => send_or_end(h, outbound, Msg::Ack(ack)).await,
            Err(reason) => Some(SessionEnd::Failed(reason.to_string())),
        },
        Some(Msg::Ack(ack)) => {
            sync.sender.ack(&ack, &h.acked);
            None
        }
        None => {
            debug!(%peer, "ignoring an empty sync message");
            None
        }
    }
}

/// The peer's Hello: check it is who the stream was authenticated as, keep
/// what it says about itself, and send what it lacks of our exports.
async fn on_hello(
    h: &PeeringHandles,
    peer: &str,
    hello: v1::Hello,
    outbound: &mpsc::Sender<v1::SyncMessage>,
    sync: &mut SyncState,
) -> Option<SessionEnd> {
    let Some(info) = hello.info else {
        return Some(SessionEnd::Failed("hello without info".into()));
    };
    match PeerInfo::from_proto(&info, "hello.info") {
        Ok(info) if info.name == peer => {
            if let Some(end) = update_peer(h, peer, &info).await {
                return Some(end);
            }
            sync.sender.hello(SyncPos {
                epoch: hello.epoch,
                version: hello.acked_version,
            });
            send_exports(h, sync, outbound).await
        }
        Ok(info) => Some(SessionEnd::Failed(format!(
            "peer sent name {:?} on a stream authenticated as {peer:?}",
            info.name
        ))),
        Err(e) => Some(SessionEnd::Failed(format!("bad hello: {e}"))),
    }
}

/// The peer's Goodbye: the answer to ours (`fedctl leave` here), or the
/// peer leaving, which removes the peering here too and answers.
async fn on_goodbye<S>(
    h: &PeeringHandles,
    peer: &str,
    id: u64,
    bye: v1::Goodbye,
    outbound: &mpsc::Sender<v1::SyncMessage>,
    inbound: &mut S,
) -> SessionEnd
where
    S: Stream<Item = Result<v1::SyncMessage, tonic::Status>> + Unpin + Send,
{
    if h.peers.answer_goodbye(peer, id) {
        return SessionEnd::Left;
    }
    info!(%peer, reason = %bye.reason, "peer left the peering; removing it here too");
    // Removed before the answer says so: the leaver reports "removed the
    // peering too" only once it is true here.
    remove_peer(h, peer).await;
    h.acked.forget(peer);
    let ack = Msg::Goodbye(v1::Goodbye {
        reason: format!("{} removed the peering", h.me.name),
    });
    let _ = send(outbound, ack);
    // Let the leaver read the answer and close first.
    let _ = tokio::time::timeout(GOODBYE_LINGER, async {
        while let Some(Ok(_)) = inbound.next().await {}
    })
    .await;
    h.peers.remove(peer);
    SessionEnd::Left
}

/// Applies what the peer says about itself on a new stream.
async fn update_peer(h: &PeeringHandles, peer: &str, info: &PeerInfo) -> Option<SessionEnd> {
    let info = info.clone();
    persist(h, peer, move |r| {
        r.locality = info.locality;
        r.gateway_address = info.gateway_address;
        r.roots_pem = info.roots_pem;
        if r.role == crate::store::Role::Acceptor {
            // The dialer's own advertised address; a dialer keeps dialing
            // the address from the token.
            r.endpoint = info.peering_endpoint;
        }
    })
    .await
}

async fn persist(
    h: &PeeringHandles,
    peer: &str,
    update: impl FnOnce(&mut crate::store::PeerRecord),
) -> Option<SessionEnd> {
    match h.peers.update_record(peer, update) {
        Ok(None) => None,
        Ok(Some(record)) => {
            let store = h.store.clone();
            let saved = tokio::task::spawn_blocking(move || store.put_peer(&record)).await;
            match saved {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(SessionEnd::Failed(format!("cannot store peer update: {e}"))),
                Err(e) => Some(SessionEnd::Failed(format!("cannot store peer update: {e}"))),
            }
        }
        Err(e) => Some(SessionEnd::Failed(format!("refused peer update: {e}"))),
    }
}

/// Removes the peering from the store (the caller removes it from the set
/// afterwards, which ends this session).
pub async fn remove_peer(h: &PeeringHandles, peer: &str) {
    let store = h.store.clone();
    let name = peer.to_string();
    match tokio::task::spawn_blocking(move || store.remove_peer(&name)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(%peer, error = %e, "cannot remove peer from the store"),
        Err(e) => warn!(%peer, error = %e, "cannot remove peer from the store"),
    }
}

fn send(outbound: &mpsc::Sender<v1::SyncMessage>, msg: Msg) -> Result<(), ()> {
    match outbound.try_send(v1::SyncMessage { msg: Some(msg) }) {
        Ok(()) => Ok(()),
        // The peer is not reading; a heartbeat or hello can wait for the
        // next one. Silence on its side is caught by its own deadline.
        Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    }
}

fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("stream failed: {:?}", status.code())
    } else {
        format!("stream failed: {}", status.message())
    }
}

#[cfg(test)]
mod tests;
