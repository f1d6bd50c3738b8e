//! Every message the peering port accepts from a peer (`peering.proto`),
//! decoded with prost and converted into the model as the control plane
//! does: `Join` requests and responses (`PeerInfo::from_proto`), and each
//! kind of `SyncMessage` on the sync stream: Hello (`PeerInfo`), export
//! updates (`import_from_proto` per upsert, `ServiceKey::try_from` per
//! removal), trust bundle updates (`parse_roots`), acks, heartbeats and
//! goodbyes.
//!
//! The first input byte picks the message; the rest is its encoding.
//!
//! Rules checked: no panic, and every export accepted has DNS-label
//! names, a port, and no more healthy endpoints than endpoints.

use fedmesh_control::model::is_dns_label;
use fedmesh_control::peering::info::{PeerInfo, parse_roots};
use fedmesh_control::peering::sync::import_from_proto;
use fedmesh_proto::v1::{self, sync_message::Msg};
use prost::Message;

/// Decodes `data` as the message its first byte names and converts it.
pub fn run(data: &[u8]) {
    let Some((kind, rest)) = crate::selector(data) else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(m) = v1::SyncMessage::decode(rest) {
                sync(m);
            }
        }
        1 => {
            if let Ok(m) = v1::JoinRequest::decode(rest)
                && let Some(info) = &m.joiner
            {
                let _ = PeerInfo::from_proto(info, "joiner");
            }
        }
        _ => {
            if let Ok(m) = v1::JoinResponse::decode(rest)
                && let Some(info) = &m.acceptor
            {
                let _ = PeerInfo::from_proto(info, "acceptor");
            }
        }
    }
}

fn sync(message: v1::SyncMessage) {
    match message.msg {
        Some(Msg::Hello(hello)) => {
            if let Some(info) = &hello.info
                && let Ok(peer) = PeerInfo::from_proto(info, "hello.info")
            {
                assert!(is_dns_label(&peer.name), "peer name {:?}", peer.name);
            }
        }
        Some(Msg::Exports(update)) => exports(&update),
        Some(Msg::Trust(trust)) => {
            let _ = parse_roots(&trust.ca_roots_pem);
        }
        Some(Msg::Ack(_) | Msg::Heartbeat(_) | Msg::Goodbye(_) | Msg::TrustAck(_)) | None => {}
    }
}

fn exports(update: &v1::ExportUpdate) {
    for export in &update.upserts {
        if let Ok((key, import)) = import_from_proto(export) {
            assert!(
                is_dns_label(&key.namespace) && is_dns_label(&key.name),
                "{key:?}"
            );
            assert!(!import.ports.is_empty(), "an import without ports");
            assert!(import.healthy <= import.total, "healthy > total");
        }
    }
    for key in &update.removals {
        let _ = fedmesh_control::model::ServiceKey::try_from(key);
    }
}
