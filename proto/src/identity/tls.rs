//! rustls configs for fedmesh mTLS: TLS 1.3 and 1.2, the ring provider
//! (explicitly, so a second provider elsewhere in the binary cannot change
//! it), this process's [`LiveCert`] and one of this module's verifiers.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};

use super::{IdentityError, LiveCert};

/// Protocol versions, most preferred first.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server config presenting `cert` (swappable) and checking clients with
/// `verifier` (usually a [`PeerClientVerifier`](super::PeerClientVerifier)).
///
/// `alpn` lists the protocols offered, most preferred first (for gRPC:
/// `&[b"h2"]`). Session resumption stays at the rustls default (on): a
/// resumed session skips certificate verification, so servers that must
/// notice a peer's removal call [`identify_peer`](super::identify_peer).
///
/// # Errors
///
/// [`IdentityError::Tls`] if rustls refuses the protocol versions for the
/// provider (not expected with ring).
pub fn server_config(
    cert: &LiveCert,
    verifier: Arc<dyn ClientCertVerifier>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, IdentityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(cert.clone()));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client config checking the server with `verifier` (a
/// [`PeerServerVerifier`](super::PeerServerVerifier), or a
/// [`PinnedServerVerifier`](super::PinnedServerVerifier) for joining) and
/// presenting `cert` when given.
///
/// The server name passed to the connector only becomes the SNI; the
/// verifiers ignore it. Session resumption is on (rustls default); build a
/// fresh config per join so that the pinned verifier always runs.
///
/// # Errors
///
/// [`IdentityError::Tls`] if rustls refuses the protocol versions for the
/// provider (not expected with ring).
pub fn client_config(
    cert: Option<&LiveCert>,
    verifier: Arc<dyn ServerCertVerifier>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, IdentityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match cert {
        Some(cert) => builder.with_client_cert_resolver(Arc::new(cert.clone())),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
