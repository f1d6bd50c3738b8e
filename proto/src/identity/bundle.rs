//! The trust bundle: for each peer cluster, its trust domain and CA roots.
//!
//! [`TrustBundle`] is a plain value, checked on insert (unique trust domains,
//! CA roots only) and carrying the roots already parsed as webpki trust
//! anchors. [`SharedTrust`] publishes it to the verifiers: writers build a
//! new bundle and swap it in; a handshake takes the current `Arc` and works
//! on it without holding any lock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls_pki_types::{CertificateDer, TrustAnchor};

use super::IdentityError;
use super::cert::inspect_basic;

/// One peer cluster as the trust bundle knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTrust {
    /// The peer's cluster name (the key of the bundle).
    pub cluster: String,
    /// The peer's trust domain; every SPIFFE ID it presents must be in it.
    pub trust_domain: String,
    /// The peer's CA root certificates (DER). Several during a rotation:
    /// certificates chaining to any of them are accepted.
    pub roots: Vec<CertificateDer<'static>>,
}

/// A peer plus its roots parsed for webpki, computed once on insert.
#[derive(Clone)]
pub(super) struct PeerEntry {
    pub(super) peer: PeerTrust,
    pub(super) anchors: Vec<TrustAnchor<'static>>,
}

/// The set of peers a cluster trusts, keyed by cluster name, with unique
/// trust domains.
#[derive(Clone, Default)]
pub struct TrustBundle {
    peers: BTreeMap<String, PeerEntry>,
    /// trust domain → cluster name.
    by_td: BTreeMap<String, String>,
}

impl TrustBundle {
    /// An empty bundle.
    pub fn new() -> TrustBundle {
        TrustBundle::default()
    }

    /// Adds a peer, or replaces the peer of the same cluster name (root
    /// rotation, changed trust domain).
    ///
    /// # Errors
    ///
    /// - [`IdentityError::Malformed`] when the cluster name is empty or a
    ///   root is not a parseable certificate;
    /// - [`IdentityError::BadTrustDomain`] when the trust domain is invalid;
    /// - [`IdentityError::DuplicateTrustDomain`] when another cluster already
    ///   has this trust domain;
    /// - [`IdentityError::NoRoots`] when `roots` is empty;
    /// - [`IdentityError::RootNotCa`] when a root is not a CA certificate.
    ///
    /// On error the bundle is unchanged.
    pub fn insert(&mut self, peer: PeerTrust) -> Result<(), IdentityError> {
        if peer.cluster.is_empty() {
            return Err(IdentityError::Malformed {
                what: "peer cluster name".to_owned(),
                reason: "must not be empty".to_owned(),
            });
        }
        super::validate_trust_domain(&peer.trust_domain)?;
        if let Some(other) = self.by_td.get(&peer.trust_domain)
            && *other != peer.cluster
        {
            return Err(IdentityError::DuplicateTrustDomain {
                td: peer.trust_domain.clone(),
                cluster: other.clone(),
            });
        }
        let anchors = parse_roots(&peer)?;
        if let Some(old) = self.peers.get(&peer.cluster) {
            self.by_td.remove(&old.peer.trust_domain);
        }
        self.by_td
            .insert(peer.trust_domain.clone(), peer.cluster.clone());
        self.peers
            .insert(peer.cluster.clone(), PeerEntry { peer, anchors });
        Ok(())
    }

    /// Removes a peer; returns it if it was there.
    pub fn remove(&mut self, cluster: &str) -> Option<PeerTrust> {
        let entry = self.peers.remove(cluster)?;
        self.by_td.remove(&entry.peer.trust_domain);
        Some(entry.peer)
    }

    /// The peer with this cluster name.
    pub fn get(&self, cluster: &str) -> Option<&PeerTrust> {
        self.peers.get(cluster).map(|e| &e.peer)
    }

    /// The peer that owns this trust domain.
    pub fn by_trust_domain(&self, td: &str) -> Option<&PeerTrust> {
        self.entry_by_trust_domain(td).map(|e| &e.peer)
    }

    /// All peers, ordered by cluster name.
    pub fn iter(&self) -> impl Iterator<Item = &PeerTrust> {
        self.peers.values().map(|e| &e.peer)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub(super) fn entry(&self, cluster: &str) -> Option<&PeerEntry> {
        self.peers.get(cluster)
    }

    pub(super) fn entry_by_trust_domain(&self, td: &str) -> Option<&PeerEntry> {
        self.by_td.get(td).and_then(|c| self.peers.get(c))
    }
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for e in self.peers.values() {
            list.entry(&format_args!(
                "{} ({}, {} root(s))",
                e.peer.cluster,
                e.peer.trust_domain,
                e.peer.roots.len()
            ));
        }
        list.finish()
    }
}

fn parse_roots(peer: &PeerTrust) -> Result<Vec<TrustAnchor<'static>>, IdentityError> {
    if peer.roots.is_empty() {
        return Err(IdentityError::NoRoots {
            cluster: peer.cluster.clone(),
        });
    }
    let mut anchors = Vec::with_capacity(peer.roots.len());
    for (i, root) in peer.roots.iter().enumerate() {
        let what = format!("root {i} of peer {:?}", peer.cluster);
        let info = inspect_basic(root, &what)?;
        if !info.is_ca {
            return Err(IdentityError::RootNotCa {
                cluster: peer.cluster.clone(),
                subject: info.subject,
            });
        }
        let anchor =
            webpki::anchor_from_trusted_cert(root).map_err(|e| IdentityError::Malformed {
                what,
                reason: format!("not usable as a trust anchor: {e}"),
            })?;
        anchors.push(anchor.to_owned());
    }
    Ok(anchors)
}

/// The live trust bundle shared by all verifiers of a process.
///
/// Clones share one bundle: a [`SharedTrust::replace`] or
/// [`SharedTrust::update`] is seen by the next handshake of every verifier
/// holding a clone, so new peers are trusted (and removed peers refused)
/// without rebuilding TLS configs or restarting listeners.
///
/// Handshakes only take a read lock long enough to clone an `Arc`; updates
/// build the new bundle outside the read/write lock, so a slow update never
/// stalls a handshake.
#[derive(Clone, Default)]
pub struct SharedTrust {
    inner: Arc<SharedInner>,
}

#[derive(Default)]
struct SharedInner {
    current: RwLock<Arc<TrustBundle>>,
    /// Serializes writers so that concurrent `update`s don't lose changes.
    writer: Mutex<()>,
}

impl SharedTrust {
    /// Shares `bundle`.
    pub fn new(bundle: TrustBundle) -> Self {
        SharedTrust {
            inner: Arc::new(SharedInner {
                current: RwLock::new(Arc::new(bundle)),
                writer: Mutex::new(()),
            }),
        }
    }

    /// The bundle as of now; later updates do not change it.
    pub fn snapshot(&self) -> Arc<TrustBundle> {
        // A poisoned lock still holds a complete bundle: writers only ever
        // store a fully built `Arc`.
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the whole bundle.
    pub fn replace(&self, bundle: TrustBundle) {
        let _writer = self.lock_writer();
        self.store(bundle);
    }

    /// Changes the bundle with `f` and publishes the result; returns what `f`
    /// returns.
    ///
    /// `f` works on a copy of the current bundle, and the copy is published
    /// as `f` leaves it. [`TrustBundle::insert`] changes nothing on error, so
    /// `trust.update(|b| b.insert(peer))` publishes either the new peer or
    /// the unchanged bundle. If `f` panics, nothing is published. Handshakes
    /// keep using the previous bundle while `f` runs.
    pub fn update<R>(&self, f: impl FnOnce(&mut TrustBundle) -> R) -> R {
        let _writer = self.lock_writer();
        let mut next = TrustBundle::clone(&self.snapshot());
        let out = f(&mut next);
        self.store(next);
        out
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded value is `()`: poisoning leaves nothing inconsistent.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self, bundle: TrustBundle) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(bundle);
    }
}

impl fmt::Debug for SharedTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedTrust")
            .field(&self.snapshot())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_pki::Ca;
    #[test]
    fn duplicate_trust_domain_is_refused() {
        let east = Ca::new("east");
        let mut bundle = TrustBundle::default();
        bundle.insert(east.peer()).expect("first");
        let mut impostor = Ca::new("mallory").peer();
        impostor.trust_domain = "east.fedmesh".to_owned();
        let err = bundle.insert(impostor).expect_err("duplicate");
        assert!(
            matches!(&err, IdentityError::DuplicateTrustDomain { td, cluster } if td == "east.fedmesh" && cluster == "east"),
            "{err:?}"
        );
        assert_eq!(bundle.len(), 1);
        assert!(bundle.get("mallory").is_none());
    }

    #[test]
    fn inserting_the_same_cluster_replaces_it_and_frees_its_old_trust_domain() {
        let east = Ca::new("east");
        let mut bundle = TrustBundle::default();
        bundle.insert(east.peer()).expect("first");
        let mut renamed = east.peer();
        renamed.trust_domain = "east2.fedmesh".to_owned();
        bundle
            .insert(renamed)
            .expect("same cluster may change its trust domain");
        assert_eq!(bundle.len(), 1);
        assert!(bundle.by_trust_domain("east.fedmesh").is_none());
        assert_eq!(
            bundle
                .by_trust_domain("east2.fedmesh")
                .map(|p| p.cluster.as_str()),
            Some("east")
        );
        let mut other = Ca::new("other").peer();
        other.trust_domain = "east.fedmesh".to_owned();
        bundle
            .insert(other)
            .expect("the old trust domain is free again");
    }

    #[test]
    fn bundle_refuses_roots_that_are_not_ca_certificates() {
        let east = Ca::new("east");
        let mut bundle = TrustBundle::default();

        let mut leaf_as_root = east.peer();
        leaf_as_root.roots = vec![east.control().cert];
        let err = bundle.insert(leaf_as_root).expect_err("leaf is no CA");
        assert!(
            matches!(&err, IdentityError::RootNotCa { cluster, .. } if cluster == "east"),
            "{err:?}"
        );

        let mut garbage = east.peer();
        garbage.roots.push(CertificateDer::from(b"junk".to_vec()));
        let err = bundle.insert(garbage).expect_err("garbage root");
        assert!(err.to_string().contains("root 1 of peer \"east\""), "{err}");

        let mut none = east.peer();
        none.roots.clear();
        assert!(matches!(
            bundle.insert(none),
            Err(IdentityError::NoRoots { .. })
        ));

        let mut bad_td = east.peer();
        bad_td.trust_domain = "East".to_owned();
        assert!(matches!(
            bundle.insert(bad_td),
            Err(IdentityError::BadTrustDomain { .. })
        ));
        assert!(bundle.is_empty());
    }

    #[test]
    fn bundle_lookups_and_removal() {
        let (east, west) = (Ca::new("east"), Ca::new("west"));
        let mut bundle = TrustBundle::default();
        bundle.insert(west.peer()).expect("west");
        bundle.insert(east.peer()).expect("east");
        let names: Vec<_> = bundle.iter().map(|p| p.cluster.as_str()).collect();
        assert_eq!(names, ["east", "west"]);
        assert_eq!(bundle.get("west"), Some(&west.peer()));
        assert_eq!(bundle.remove("west"), Some(west.peer()));
        assert!(bundle.by_trust_domain("west.fedmesh").is_none());
        assert_eq!(bundle.remove("west"), None);
        assert_eq!(bundle.len(), 1);
    }

    #[test]
    fn shared_trust_update_returns_the_closures_result_and_publishes_changes() {
        let shared = SharedTrust::default();
        let before = shared.snapshot();
        let west = Ca::new("west");
        shared.update(|b| b.insert(west.peer())).expect("inserted");
        assert!(before.is_empty(), "old snapshots do not change");
        assert_eq!(shared.clone().snapshot().len(), 1);
        let err = shared.update(|b| {
            b.insert(PeerTrust {
                roots: vec![],
                ..west.peer()
            })
        });
        assert!(err.is_err());
        assert_eq!(
            shared.snapshot().get("west"),
            Some(&west.peer()),
            "failed insert changed nothing"
        );
        shared.replace(TrustBundle::default());
        assert!(shared.snapshot().is_empty());
    }
}
