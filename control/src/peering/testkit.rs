//! Test fixtures for the peering tasks: a whole cluster side (CA, store in
//! a temporary folder, peer set, export channel, table channel) whose
//! handles are driven directly, and sessions wired back to back over
//! in-memory channels instead of sockets.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::v1;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::handles::{Dialer, PeeringHandles, Timing};
use super::session::{self, SessionEnd};
use super::sync::AckedViews;
use super::{LinkState, PeerSet};
use crate::ca::rotation::CaRotation;
use crate::ca::{ClusterCa, LEAF_LIFETIME};
use crate::exports::{ExportEntry, ExportState};
use crate::model::{ExportSpec, Locality, PortSpec, ServiceKey};
use crate::store::{PeerRecord, Role, Store};
use crate::table::TableEvent;

/// The longest any test waits for a state to show.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// One cluster, as its peering tasks see it.
pub(crate) struct Side {
    pub h: PeeringHandles,
    pub ca: ClusterCa,
    pub exports: watch::Sender<Arc<ExportState>>,
    pub table: mpsc::Receiver<TableEvent>,
    _dir: tempfile::TempDir,
}

/// A cluster named `name` (trust domain `name.fedmesh`, zone
/// `clusterset.local`) with no peers, heartbeats every 50 ms and
/// `peerDeadAfter` of `dead_after`.
pub(crate) fn side(name: &str, dead_after: Duration) -> Side {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Arc::new(Store::open(dir.path()).expect("a fresh store"));
    let ca = ClusterCa::generate(name, &format!("{name}.fedmesh")).expect("a CA");
    let (exports, exports_rx) = watch::channel(Arc::new(ExportState::default()));
    let (table_tx, table) = mpsc::channel(64);
    let me = v1::ClusterInfo {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: Some(v1::Locality {
            region: format!("{name}-region"),
            zone: format!("{name}-zone"),
        }),
        gateway_address: "127.0.0.1:15443".into(),
        dns_zone: "clusterset.local".into(),
        ca_roots_pem: vec![ca.cert_pem().to_string()],
        peering_endpoint: "127.0.0.1:15017".into(),
    };
    let h = PeeringHandles {
        me: Arc::new(me),
        timing: Timing {
            heartbeat: Duration::from_millis(50),
            dead_after,
        },
        peers: Arc::new(PeerSet::new(Vec::new()).0),
        store: store.clone(),
        exports: exports_rx,
        acked: Arc::new(AckedViews::default()),
        table: table_tx,
        ca: Arc::new(
            CaRotation::load(
                store.clone(),
                ClusterCa::from_pem(ca.cert_pem(), ca.key_pem(), &format!("{name}.fedmesh"))
                    .expect("a copy of the CA"),
                name,
                false,
            )
            .expect("a rotation over a fresh store"),
        ),
    };
    Side {
        h,
        ca,
        exports,
        table,
        _dir: dir,
    }
}

impl Side {
    /// The record `self` keeps of `other`, with `role` on our side.
    pub(crate) fn record_of(&self, other: &Side, role: Role) -> PeerRecord {
        let info = &other.h.me;
        PeerRecord {
            name: info.name.clone(),
            trust_domain: info.trust_domain.clone(),
            locality: Locality {
                region: format!("{}-region", info.name),
                zone: format!("{}-zone", info.name),
            },
            roots_pem: info.ca_roots_pem.clone(),
            role,
            endpoint: info.peering_endpoint.clone(),
            gateway_address: info.gateway_address.clone(),
            joined_unix_ms: 1,
        }
    }

    /// Makes `other` a peer of `self`, stored and in the set.
    pub(crate) fn add_peer(&self, other: &Side, role: Role) {
        let record = self.record_of(other, role);
        self.h.store.put_peer(&record).expect("store the peer");
        self.h
            .peers
            .insert(record, LinkState::Disconnected, 0)
            .expect("trust the peer");
    }

    /// The link state of `peer`, `None` once it is gone.
    pub(crate) fn state(&self, peer: &str) -> Option<LinkState> {
        self.h.peers.view(peer).map(|v| v.state)
    }

    /// A dialer presenting a fresh control leaf of this cluster's CA.
    pub(crate) fn dialer(&self) -> Dialer {
        let leaf = self.ca.issue_control_leaf(LEAF_LIFETIME).expect("a leaf");
        let key = leaf.key.expect("a new leaf has its key");
        Dialer {
            peering: self.h.clone(),
            cert: LiveCert::new(leaf.chain, key).expect("a usable leaf"),
            timeout: Duration::from_secs(5),
        }
    }

    /// Publishes exports `names` (in namespace `demo`) at `version`.
    pub(crate) fn export(&self, epoch: u64, version: u64, names: &[&str]) {
        let entries = names
            .iter()
            .map(|name| {
                let key = ServiceKey::new("demo", *name);
                let entry = ExportEntry {
                    key: key.clone(),
                    ports: vec![PortSpec {
                        name: "http".into(),
                        port: 8080,
                        app_protocol: Default::default(),
                    }],
                    exported_at_ms: 1,
                    spec: ExportSpec::default(),
                    healthy: 1,
                    total: 1,
                    headless: None,
                    draining: false,
                };
                (key, Arc::new(entry))
            })
            .collect();
        self.exports
            .send_replace(Arc::new(ExportState::new(epoch, version, entries)));
    }
}

/// A session of `side` with `peer` whose far end the test holds: `to_us`
/// feeds the session, `from_us` reads what it sends.
pub(crate) struct Remote {
    pub to_us: mpsc::Sender<Result<v1::SyncMessage, tonic::Status>>,
    pub from_us: mpsc::Receiver<v1::SyncMessage>,
    pub task: JoinHandle<SessionEnd>,
}

/// Opens and runs a session of `side` with `peer` over in-memory channels.
pub(crate) fn open(side: &Side, peer: &str) -> Remote {
    let (to_us, inbound) = mpsc::channel(64);
    let (outbound, from_us) = mpsc::channel(64);
    let (id, kill) = side
        .h
        .peers
        .open_session(peer, outbound.clone())
        .expect("the peer is known");
    let task = tokio::spawn(session::run(
        side.h.clone(),
        peer.to_string(),
        id,
        ReceiverStream::new(inbound),
        outbound,
        kill,
    ));
    Remote {
        to_us,
        from_us,
        task,
    }
}

/// Runs a session on each side, each one's output the other's input.
pub(crate) fn wire(a: &Side, b: &Side) -> (JoinHandle<SessionEnd>, JoinHandle<SessionEnd>) {
    let (a_out, a_out_rx) = mpsc::channel(64);
    let (b_out, b_out_rx) = mpsc::channel(64);
    (
        spawn_session(a, &b.h.me.name, b_out_rx, a_out),
        spawn_session(b, &a.h.me.name, a_out_rx, b_out),
    )
}

fn spawn_session(
    side: &Side,
    peer: &str,
    inbound: mpsc::Receiver<v1::SyncMessage>,
    outbound: mpsc::Sender<v1::SyncMessage>,
) -> JoinHandle<SessionEnd> {
    let (id, kill) = side
        .h
        .peers
        .open_session(peer, outbound.clone())
        .expect("the peer is known");
    tokio::spawn(session::run(
        side.h.clone(),
        peer.to_string(),
        id,
        ReceiverStream::new(inbound).map(Ok::<_, tonic::Status>),
        outbound,
        kill,
    ))
}

/// The next message the session sends other than a heartbeat.
pub(crate) async fn next_non_heartbeat(
    from_us: &mut mpsc::Receiver<v1::SyncMessage>,
) -> v1::sync_message::Msg {
    let wait = async {
        loop {
            match from_us.recv().await.and_then(|m| m.msg) {
                Some(v1::sync_message::Msg::Heartbeat(_)) => continue,
                Some(msg) => return msg,
                None => panic!("the session stopped sending"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("a message before the deadline")
}

/// Polls `check` until it holds or the deadline passes.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A Hello as `peer` sends it.
pub(crate) fn hello(peer: &Side, epoch: u64, acked_version: u64) -> v1::SyncMessage {
    v1::SyncMessage {
        msg: Some(v1::sync_message::Msg::Hello(v1::Hello {
            info: Some((*peer.h.me).clone()),
            acked_version,
            epoch,
        })),
    }
}
