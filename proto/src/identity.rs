//! Identity and trust for fedmesh: who a peer is, and whether to believe it.
//!
//! Every cluster has its own CA. Workloads are named by SPIFFE IDs in the URI
//! SAN of their certificates ([`SpiffeId`]: `spiffe://<td>/control`,
//! `spiffe://<td>/gateway/<name>`), never by IP address or DNS name. The
//! [`TrustBundle`] maps each peer cluster to its trust domain and CA roots
//! (several during a rotation). The rule everything here enforces:
//!
//! > a peer's certificate is accepted only if it chains to **that peer's**
//! > root and its SPIFFE ID is in **that peer's** trust domain.
//!
//! Data flow:
//! - the control plane keeps a [`SharedTrust`] (a live [`TrustBundle`]) and
//!   updates it as peers join, leave and rotate roots;
//! - servers build [`server_config`] with a [`PeerClientVerifier`] and
//!   dialers [`client_config`] with a [`PeerServerVerifier`]; both hold a
//!   clone of the [`SharedTrust`] and see updates on the next handshake;
//! - after a handshake, servers map the client's leaf to its peer with
//!   [`identify_peer`];
//! - `fedctl join` dials with a [`PinnedServerVerifier`] (the CA key pin of
//!   the join token) and reads the accepted CA from it;
//! - each process's own certificate sits in a [`LiveCert`], replaced on
//!   renewal without touching configs or connections.
//!
//! Errors are [`IdentityError`]s; inside rustls they travel as
//! `CertificateError::Other` (see [`IdentityError::from_rustls`]).
//!
//! Start reading at `identity/verify.rs`.

mod bundle;
mod cert;
mod error;
mod live_cert;
mod pinned;
mod spiffe;
mod tls;
mod verify;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod test_pki;
#[cfg(test)]
mod tests;

pub use bundle::{PeerTrust, SharedTrust, TrustBundle};
pub use cert::{CertInfo, check_validity, inspect_cert, pin_hex, spki_sha256};
pub use error::IdentityError;
pub use live_cert::LiveCert;
pub use pinned::PinnedServerVerifier;
pub use spiffe::{SpiffeId, validate_trust_domain};
pub use tls::{client_config, server_config};
pub use verify::{PathRule, PeerClientVerifier, PeerServerVerifier, identify_peer};
