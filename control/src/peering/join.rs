//! The join handshake, both sides (DESIGN.md, Joining).
//!
//! Joiner ([`join`]): dial the address in the token over TLS, accept the
//! server only if its chain ends in the pinned CA (before the secret is
//! sent), call Join with the secret and this cluster's info, check the
//! answer in full, and only then store the acceptor in one transaction
//! (refusing a name or trust-domain clash) and start dialing it.
//!
//! Acceptor ([`accept`]): check the request field by field, refuse a
//! clashing name, trust domain or DNS zone, then check and consume the
//! token and store the joiner in one store transaction; answer with this
//! cluster's info.
//!
//! Commit order, so a join is all-or-nothing and safe to retry: the
//! acceptor commits first (token used + joiner stored, one transaction);
//! the joiner commits only after that answer. A crash of either side, or
//! a lost answer, leaves at most the acceptor's commit; the same
//! `fedctl join` again is answered as the first time (the token is "used by
//! this joiner", see `Store::accept_join`) and completes the joiner's side.

use fedmesh_proto::identity::spki_sha256;
use fedmesh_proto::v1::{self, peering_client::PeeringClient};
use tonic::Status;
use tracing::info;

use super::LinkState;
use super::PeerSetError;
use super::handles::{Dialer, PeeringHandles, join_tls};
use super::info::{InfoError, PeerInfo, RootError, parse_roots};
use crate::clock;
use crate::store::{JoinRefusal, JoinStored, PeerRecord, Role, StoreError};
use fedmesh_proto::identity::IdentityError;
use fedmesh_proto::token::{JoinToken, hex, secret_hash_hex};
use fedmesh_proto::transport::{connect, error_chain};

/// Why `fedctl join` failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// TLS or TCP to the issuer failed (including a CA that does not match
    /// the token's pin).
    #[error("cannot reach the issuing cluster at {address}: {}", error_chain(.source))]
    Unreachable {
        /// The token's address.
        address: String,
        /// The whole cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The issuer answered with a refusal.
    #[error("{address} refused the join: {}", .status.message())]
    Refused {
        /// The token's address.
        address: String,
        /// The issuer's answer.
        #[source]
        status: Status,
    },
    /// The issuer's answer has no `acceptor`.
    #[error("the issuing cluster's answer is unusable: acceptor is missing")]
    NoAcceptor,
    /// The issuer's `acceptor` has a bad field.
    #[error("the issuing cluster's answer is unusable: {0}")]
    BadAcceptor(#[source] InfoError),
    /// The issuer's roots do not parse.
    #[error("the issuing cluster's answer is unusable: {0}")]
    BadRoots(#[source] RootError),
    /// None of the issuer's roots is the CA the token pinned.
    #[error(
        "the issuing cluster's answer is unusable: none of its CA roots matches the token's pin sha256:{pin}"
    )]
    PinMismatch {
        /// The token's pin, hex.
        pin: String,
    },
    /// The issuer has this cluster's name.
    #[error("the issuing cluster is named {0:?} like this one; every cluster needs its own name")]
    SameName(String),
    /// The issuer has this cluster's trust domain.
    #[error(
        "the issuing cluster has this cluster's trust domain {0}; every cluster needs its own trustDomain"
    )]
    SameTrustDomain(String),
    /// The issuer clashes with a stored peer (name or trust domain).
    #[error("refusing to store the issuing cluster: {0}")]
    Clash(#[source] JoinRefusal),
    /// Our own TLS configuration was refused.
    #[error("cannot build join TLS: {0}")]
    Tls(#[source] IdentityError),
    /// The peer could not be stored.
    #[error("cannot store the peer: {0}")]
    Store(#[source] StoreError),
    /// The blocking store task died.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The peer set refused the peer (its trust domain is another peer's).
    #[error(transparent)]
    PeerSet(#[from] PeerSetError),
}

impl JoinError {
    /// The status the admin API answers with.
    pub fn to_status(&self) -> Status {
        match self {
            JoinError::Unreachable { .. } => Status::unavailable(self.to_string()),
            JoinError::Refused { .. } => Status::permission_denied(self.to_string()),
            _ => Status::failed_precondition(self.to_string()),
        }
    }
}

/// Joins the cluster that issued `token` and starts dialing it.
///
/// # Errors
/// See [`JoinError`]; nothing is stored when it fails.
pub async fn join(dialer: &Dialer, token: &JoinToken) -> Result<PeerRecord, JoinError> {
    let h = &dialer.peering;
    let address = token.address.clone();
    let (tls, verifier) = join_tls(token.pin).map_err(JoinError::Tls)?;
    let channel = connect(&address, tls, dialer.timeout)
        .await
        .map_err(|source| JoinError::Unreachable {
            address: address.clone(),
            source,
        })?;
    if let Some(td) = verifier.server_trust_domain() {
        precheck_trust_domain(h, &td, token.pin)?;
    }
    let request = v1::JoinRequest {
        secret: token.secret.to_vec(),
        joiner: Some(h.me_now()),
        taken_names: taken_names(h, token.pin),
    };
    let answer = PeeringClient::new(channel)
        .join(request)
        .await
        .map_err(|status| JoinError::Refused {
            address: address.clone(),
            status,
        })?
        .into_inner();
    let acceptor = answer.acceptor.ok_or(JoinError::NoAcceptor)?;
    let info = PeerInfo::from_proto(&acceptor, "acceptor").map_err(JoinError::BadAcceptor)?;
    check_pinned_root(&info, token.pin)?;
    if info.name == h.me.name {
        return Err(JoinError::SameName(info.name));
    }
    if info.trust_domain == h.me.trust_domain {
        return Err(JoinError::SameTrustDomain(info.trust_domain));
    }
    let record = PeerRecord {
        name: info.name.clone(),
        trust_domain: info.trust_domain,
        locality: info.locality,
        roots_pem: info.roots_pem,
        role: Role::Dialer,
        endpoint: address,
        gateway_address: info.gateway_address,
        joined_unix_ms: clock::now_unix_ms(),
    };
    let stored = store_peer(h, &record).await?;
    if stored == JoinStored::Again
        && let Some(existing) = h.peers.record(&record.name)
    {
        // An earlier try of this join completed here; its dialer runs.
        info!(peer = %record.name, "join already done; nothing to change");
        return Ok(existing);
    }
    h.peers.insert(
        record.clone(),
        LinkState::Disconnected,
        clock::now_unix_ms(),
    )?;
    dialer.spawn(record.name.clone());
    info!(peer = %record.name, endpoint = %record.endpoint, "joined; dialing the peer");
    Ok(record)
}

/// Refuses, before the secret is sent (so before the issuer stores
/// anything), an issuer whose TLS leaf names this cluster's trust domain or
/// that of another peer. A stored peer with that trust domain whose roots
/// include the pinned CA is the issuer itself: a retry, not a clash.
fn precheck_trust_domain(h: &PeeringHandles, td: &str, pin: [u8; 32]) -> Result<(), JoinError> {
    if td == h.me.trust_domain {
        return Err(JoinError::SameTrustDomain(td.to_string()));
    }
    for view in h.peers.views() {
        let r = &view.record;
        if r.trust_domain != td {
            continue;
        }
        let same_ca = parse_roots(&r.roots_pem)
            .is_ok_and(|roots| roots.iter().any(|c| spki_sha256(c).is_ok_and(|p| p == pin)));
        if !same_ca {
            return Err(JoinError::Clash(JoinRefusal::TrustDomainTaken {
                trust_domain: td.to_string(),
                peer: r.name.clone(),
            }));
        }
    }
    Ok(())
}

/// The names of this cluster's peers that are not the issuer: those whose
/// roots do not include the CA the token pins. The issuer refuses the join
/// if its name is one of them (a retry of a join that completed here keeps
/// the issuer's own name out, so it is not refused).
fn taken_names(h: &PeeringHandles, pin: [u8; 32]) -> Vec<String> {
    h.peers
        .views()
        .into_iter()
        .filter(|view| {
            !parse_roots(&view.record.roots_pem)
                .is_ok_and(|roots| roots.iter().any(|c| spki_sha256(c).is_ok_and(|p| p == pin)))
        })
        .map(|view| view.record.name.clone())
        .collect()
}

/// The roots the acceptor sent must include the CA the token pinned.
fn check_pinned_root(info: &PeerInfo, pin: [u8; 32]) -> Result<(), JoinError> {
    let roots = parse_roots(&info.roots_pem).map_err(JoinError::BadRoots)?;
    let pinned = roots.iter().any(|r| spki_sha256(r).is_ok_and(|p| p == pin));
    if pinned {
        Ok(())
    } else {
        Err(JoinError::PinMismatch { pin: hex(&pin) })
    }
}

/// Serves a Join request.
///
/// # Errors
/// A status naming what was refused and what to do.
pub async fn accept(
    h: &PeeringHandles,
    request: v1::JoinRequest,
) -> Result<v1::JoinResponse, Status> {
    let joiner = request
        .joiner
        .ok_or_else(|| Status::invalid_argument("field joiner is missing"))?;
    let info = PeerInfo::from_proto(&joiner, "joiner")
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if request.secret.len() != 32 {
        return Err(Status::invalid_argument("field secret must be 32 bytes"));
    }
    check_joiner(h, &info)?;
    if request.taken_names.iter().any(|n| *n == h.me.name) {
        return Err(Status::already_exists(format!(
            "{joiner} already has another peer named {me}; every cluster needs its own name: \
             rename one, or run `fedctl leave {me}` on {joiner} first",
            joiner = info.name,
            me = h.me.name
        )));
    }
    let record = PeerRecord {
        name: info.name.clone(),
        trust_domain: info.trust_domain.clone(),
        locality: info.locality.clone(),
        roots_pem: info.roots_pem.clone(),
        role: Role::Acceptor,
        endpoint: info.peering_endpoint.clone(),
        gateway_address: info.gateway_address.clone(),
        joined_unix_ms: clock::now_unix_ms(),
    };
    let store = h.store.clone();
    let hash = secret_hash_hex(&request.secret);
    let stored = record.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        store.accept_join(&hash, clock::now_unix_ms(), &stored)
    })
    .await
    .map_err(|e| Status::internal(format!("join task failed: {e}")))?
    .map_err(|e| Status::internal(e.to_string()))?;
    let stored = match outcome {
        Ok(stored) => stored,
        Err(refusal) => {
            info!(joiner = %info.name, %refusal, "join refused");
            return Err(refusal_status(&refusal));
        }
    };
    // A retry of a committed join answers the same; the peer set has the
    // joiner already unless this process restarted since (then it loaded it).
    if stored == JoinStored::New || h.peers.record(&info.name).is_none() {
        h.peers
            .insert(record, LinkState::Disconnected, clock::now_unix_ms())
            .map_err(|e| Status::internal(e.to_string()))?;
    }
    info!(peer = %info.name, trust_domain = %info.trust_domain, ?stored, "cluster joined");
    Ok(v1::JoinResponse {
        acceptor: Some(h.me_now()),
    })
}

/// Refuses a joiner that clashes with this cluster or its peers.
fn check_joiner(h: &PeeringHandles, info: &PeerInfo) -> Result<(), Status> {
    let me = &h.me;
    if info.name == me.name {
        return Err(Status::failed_precondition(format!(
            "the joining cluster is named {:?} like this one; every cluster needs its own name",
            info.name
        )));
    }
    if info.trust_domain == me.trust_domain {
        return Err(Status::failed_precondition(format!(
            "trust domain {} is this cluster's own; give the joining cluster its own trustDomain",
            info.trust_domain
        )));
    }
    if info.dns_zone != me.dns_zone {
        return Err(Status::failed_precondition(format!(
            "DNS zone mismatch: {} serves {}, the joining cluster serves {}; use the same dns.zone in every cluster",
            me.name, me.dns_zone, info.dns_zone
        )));
    }
    for existing in h.peers.views() {
        let r = &existing.record;
        if r.name == info.name && r.roots_pem != info.roots_pem {
            return Err(Status::already_exists(format!(
                "{} is already a peer of {} with another CA; run `fedctl leave {}` on {} first",
                r.name, me.name, r.name, me.name
            )));
        }
        if r.name != info.name && r.trust_domain == info.trust_domain {
            return Err(Status::already_exists(format!(
                "trust domain {} already belongs to peer {}",
                r.trust_domain, r.name
            )));
        }
    }
    Ok(())
}

/// The status a refused join is answered with.
fn refusal_status(refusal: &JoinRefusal) -> Status {
    match refusal {
        JoinRefusal::Token(_) => Status::permission_denied(refusal.to_string()),
        JoinRefusal::NameTaken { .. } | JoinRefusal::TrustDomainTaken { .. } => {
            Status::already_exists(refusal.to_string())
        }
    }
}

/// The joiner's one store transaction (see `Store::add_joined_peer`).
async fn store_peer(h: &PeeringHandles, record: &PeerRecord) -> Result<JoinStored, JoinError> {
    let store = h.store.clone();
    let record = record.clone();
    tokio::task::spawn_blocking(move || store.add_joined_peer(&record))
        .await
        .map_err(JoinError::Task)?
        .map_err(JoinError::Store)?
        .map_err(JoinError::Clash)
}

#[cfg(test)]
mod tests;
