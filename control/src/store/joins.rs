//! The two join transactions (DESIGN.md, Joining), each all-or-nothing.
//!
//! Issuer ([`Store::accept_join`]): in ONE write transaction it checks the
//! token, refuses a joiner whose name or trust domain clashes with a stored
//! peer, marks the token used by the joiner and stores the joiner. A retry
//! by the same joiner (same name, trust domain and CA roots) with the same
//! token finds the token used by itself and gets the same answer again, so
//! a joiner that crashed, or lost the answer, after the issuer committed
//! can simply run the same `fedctl join` again.
//!
//! Joiner ([`Store::add_joined_peer`]): only after the issuer's answer was
//! checked, one write transaction refuses a clash with a stored peer and
//! stores the issuer; a retry that finds the same peer stored is done.
//!
//! Collisions are checked inside the transaction, against what is stored,
//! not against a copy in memory: the store is what a restart loads, and a
//! clashing record that reached it would shadow the real peer then.

use super::records::{PeerRecord, TokenRecord, TokenRefusal};
use super::{PEERS, Store, StoreError, TOKENS, db, get_json, put_json};
use redb::ReadableTable;

/// Why a join was refused by a store transaction; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// The token check failed.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// A stored peer has this name but is another cluster (other CA or
    /// trust domain).
    #[error(
        "{name} is already a peer here, with another CA or trust domain; run `fedctl leave {name}` first"
    )]
    NameTaken {
        /// The clashing name.
        name: String,
    },
    /// Another stored peer has this trust domain.
    #[error(
        "trust domain {trust_domain} already belongs to peer {peer}; every cluster needs its own trustDomain"
    )]
    TrustDomainTaken {
        /// The clashing trust domain.
        trust_domain: String,
        /// The peer that has it.
        peer: String,
    },
}

/// What a successful join transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStored {
    /// The peer was stored now.
    New,
    /// The same peer was already stored by an earlier try of this join;
    /// nothing was written.
    Again,
}

/// Whether `a` and `b` describe the same cluster: a retry of a join may
/// carry a new locality or address, never a new identity.
fn same_cluster(a: &PeerRecord, b: &PeerRecord) -> bool {
    a.name == b.name && a.trust_domain == b.trust_domain && a.roots_pem == b.roots_pem
}

impl Store {
    /// The issuer's join, in one transaction: checks the token (known;
    /// unused, or used by this same joiner; unexpired), refuses a name or
    /// trust-domain clash with a stored peer, marks the token used by
    /// `peer.name` and stores the peer. Nothing is written when refused.
    ///
    /// # Errors
    /// `Ok(Err(refusal))` when the join is refused; `Err` on store failure.
    pub fn accept_join(
        &self,
        hash_hex: &str,
        now_unix_ms: i64,
        peer: &PeerRecord,
    ) -> Result<Result<JoinStored, JoinRefusal>, StoreError> {
        self.write(|txn| {
            let Some(mut token) = get_json::<TokenRecord>(txn, TOKENS, "tokens", hash_hex)? else {
                return Ok(Err(TokenRefusal::Unknown.into()));
            };
            if let Some(at) = token.used_unix_ms {
                let stored = get_json::<PeerRecord>(txn, PEERS, "peers", &peer.name)?;
                let by_this_joiner = token.used_by.as_deref() == Some(peer.name.as_str())
                    && stored.is_some_and(|s| same_cluster(&s, peer));
                if by_this_joiner {
                    return Ok(Ok(JoinStored::Again));
                }
                return Ok(Err(TokenRefusal::Used {
                    by: token.used_by.clone().unwrap_or_default(),
                    at: crate::clock::rfc3339_ms(at),
                }
                .into()));
            }
            if now_unix_ms > token.expires_unix_ms {
                return Ok(Err(TokenRefusal::Expired {
                    at: crate::clock::rfc3339_ms(token.expires_unix_ms),
                }
                .into()));
            }
            if let Err(refusal) = check_clash(txn, peer)? {
                return Ok(Err(refusal));
            }
            token.used_unix_ms = Some(now_unix_ms);
            token.used_by = Some(peer.name.clone());
            put_json(txn, TOKENS, hash_hex, &token)?;
            put_json(txn, PEERS, &peer.name, peer)?;
            Ok(Ok(JoinStored::New))
        })
    }

    /// The joiner's side, in one transaction after the issuer accepted:
    /// refuses a clash with a stored peer, finds an earlier try of the same
    /// join done, or stores `peer`.
    ///
    /// # Errors
    /// `Ok(Err(refusal))` on a clash; `Err` on store failure.
    pub fn add_joined_peer(
        &self,
        peer: &PeerRecord,
    ) -> Result<Result<JoinStored, JoinRefusal>, StoreError> {
        self.write(|txn| {
            let stored = get_json::<PeerRecord>(txn, PEERS, "peers", &peer.name)?;
            if stored.is_some_and(|s| same_cluster(&s, peer) && s.role == peer.role) {
                return Ok(Ok(JoinStored::Again));
            }
            if let Err(refusal) = check_clash(txn, peer)? {
                return Ok(Err(refusal));
            }
            put_json(txn, PEERS, &peer.name, peer)?;
            Ok(Ok(JoinStored::New))
        })
    }
}

/// Refuses `peer` when a stored peer has its name but another identity, or
/// another name with its trust domain. The same cluster joining again (a
/// new token after a leave on the other side) is no clash.
fn check_clash(
    txn: &redb::WriteTransaction,
    peer: &PeerRecord,
) -> Result<Result<(), JoinRefusal>, StoreError> {
    let table = txn.open_table(PEERS).map_err(db("open peers"))?;
    for row in table.iter().map_err(db("list peers"))? {
        let (k, v) = row.map_err(db("list peers"))?;
        let stored: PeerRecord = super::decode("peers", k.value(), v.value())?;
        if stored.name == peer.name && !same_cluster(&stored, peer) {
            return Ok(Err(JoinRefusal::NameTaken {
                name: peer.name.clone(),
            }));
        }
        if stored.name != peer.name && stored.trust_domain == peer.trust_domain {
            return Ok(Err(JoinRefusal::TrustDomainTaken {
                trust_domain: peer.trust_domain.clone(),
                peer: stored.name,
            }));
        }
    }
    Ok(Ok(()))
}
