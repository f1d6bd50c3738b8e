//! The one error type of the identity module, and its bridge into rustls.
//!
//! Verifiers return [`IdentityError`] internally and hand it to rustls as
//! `Error::InvalidCertificate(CertificateError::Other(..))`, so the full text
//! ("certificate … expired at …", "… not signed by any root of peer west")
//! reaches the logs of the side that rejected the handshake (rustls shows it
//! as `invalid peer certificate: Other(OtherError(<message>))`).
//! [`IdentityError::from_rustls`] and [`IdentityError::from_io`] get it back.
//!
//! On the wire, rustls maps `CertificateError::Other` to the TLS alert
//! `certificate_unknown` (46), so the *other* side only learns that its
//! certificate was refused, never why. rustls itself sends
//! `certificate_required` (116) when a mandatory client certificate is
//! missing, and `decrypt_error` (51) when a handshake signature is bad.

use std::fmt;
use std::sync::Arc;

use rustls::{CertificateError, OtherError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Everything that can go wrong while parsing certificates, checking SPIFFE
/// IDs, maintaining the trust bundle or building TLS configs.
///
/// `Debug` prints the same sentence as `Display`: rustls formats the error
/// of a custom verifier with `Debug` ("invalid peer certificate:
/// Other(OtherError(…))"), and that is what ends up in logs.
#[derive(thiserror::Error)]
pub enum IdentityError {
    /// The input could not be parsed: `what` names the input (for example
    /// "certificate" or "root 1 of peer west"), `reason` says why.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: String,
        /// Why parsing failed.
        reason: String,
    },

    /// The certificate has no URI SAN with a `spiffe://` ID.
    #[error(
        "certificate has no SPIFFE ID: it needs one URI SAN like spiffe://<trust-domain>/<path>"
    )]
    NoSpiffeId,

    /// The certificate carries more than one `spiffe://` URI SAN, so its
    /// identity is ambiguous (the X.509-SVID spec allows exactly one).
    #[error(
        "certificate has more than one SPIFFE ID ({first} and {second}); exactly one is allowed"
    )]
    MultipleSpiffeIds {
        /// The first SPIFFE URI found.
        first: String,
        /// The second SPIFFE URI found.
        second: String,
    },

    /// A string is not a valid SPIFFE ID.
    #[error("invalid SPIFFE ID {uri:?}: {reason}")]
    BadSpiffeId {
        /// The offending URI.
        uri: String,
        /// What rule it breaks.
        reason: String,
    },

    /// A string is not a valid SPIFFE trust domain.
    #[error("invalid trust domain {td:?}: {reason}")]
    BadTrustDomain {
        /// The offending trust domain.
        td: String,
        /// What rule it breaks.
        reason: String,
    },

    /// The certificate's validity period ended before now.
    #[error("certificate {subject:?} expired at {}; renew it", rfc3339(.not_after))]
    Expired {
        /// Subject of the expired certificate.
        subject: String,
        /// When it expired.
        not_after: OffsetDateTime,
    },

    /// The certificate's validity period starts after now (check the clocks).
    #[error(
        "certificate {subject:?} is not valid before {}; check the clocks of both hosts",
        rfc3339(.not_before)
    )]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// When it becomes valid.
        not_before: OffsetDateTime,
    },

    /// No peer in the trust bundle has this trust domain.
    #[error("trust domain {td:?} belongs to no peer in the trust bundle")]
    UnknownTrustDomain {
        /// The trust domain of the presented SPIFFE ID.
        td: String,
    },

    /// The SPIFFE ID is in another trust domain than the expected peer's.
    #[error("SPIFFE ID is in trust domain {got:?}, expected the peer's trust domain {expected:?}")]
    WrongTrustDomain {
        /// The expected peer's trust domain.
        expected: String,
        /// The trust domain of the presented SPIFFE ID.
        got: String,
    },

    /// The SPIFFE ID's path does not match what the caller accepts.
    #[error("SPIFFE ID path {got:?} is not accepted here: expected {expected}")]
    WrongPath {
        /// The rule, in words (for example `exactly "/control"`).
        expected: String,
        /// The presented path.
        got: String,
    },

    /// The cluster is not in the trust bundle.
    #[error("cluster {cluster:?} is not a peer in the trust bundle; join it first")]
    UnknownPeer {
        /// The cluster name looked up.
        cluster: String,
    },

    /// Another peer already uses this trust domain; trust domains must be
    /// unique, or one peer could impersonate another.
    #[error("trust domain {td:?} is already used by peer {cluster:?}")]
    DuplicateTrustDomain {
        /// The duplicated trust domain.
        td: String,
        /// The peer that already has it.
        cluster: String,
    },

    /// A peer was given no CA roots, so nothing of it could ever be verified.
    #[error("peer {cluster:?} has no CA roots")]
    NoRoots {
        /// The peer's cluster name.
        cluster: String,
    },

    /// A certificate given as a peer's CA root is not a CA certificate.
    #[error(
        "root {subject:?} of peer {cluster:?} is not a CA certificate (basicConstraints CA:TRUE)"
    )]
    RootNotCa {
        /// The peer's cluster name.
        cluster: String,
        /// Subject of the offending certificate.
        subject: String,
    },

    /// The last certificate of a chain checked against a pin is not a CA.
    #[error(
        "the last certificate of the presented chain is not a CA; the server must send [leaf, ca]"
    )]
    NotCa,

    /// The presented CA's public key does not match the pin (join token).
    #[error(
        "CA public key pin mismatch: expected sha256 {expected_hex}, got {got_hex}; \
         the token was issued by another cluster or the address is wrong"
    )]
    PinMismatch {
        /// The pin, in lowercase hex.
        expected_hex: String,
        /// The presented CA's SPKI SHA-256, in lowercase hex.
        got_hex: String,
    },

    /// The chain does not verify against the peer's roots.
    #[error("certificate chain does not verify against the CA roots of {peer}: {reason}")]
    ChainInvalid {
        /// The cluster whose roots were tried (or "the pinned CA").
        peer: String,
        /// What the path validation reported.
        reason: String,
    },

    /// A certificate chain to serve or present is empty.
    #[error("certificate chain is empty; it needs at least the leaf certificate")]
    EmptyChain,

    /// The private key does not belong to the chain's leaf certificate.
    #[error("private key does not match the public key of certificate {subject:?}")]
    KeyMismatch {
        /// Subject of the leaf certificate.
        subject: String,
    },

    /// rustls refused a key or a configuration.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

impl fmt::Debug for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl IdentityError {
    /// The identity error inside a rustls error produced by one of this
    /// module's verifiers, if there is one.
    pub fn from_rustls(err: &rustls::Error) -> Option<&IdentityError> {
        match err {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<IdentityError>()
            }
            _ => None,
        }
    }

    /// The identity error inside an I/O error returned by tokio-rustls (which
    /// wraps the rustls error), if there is one.
    pub fn from_io(err: &std::io::Error) -> Option<&IdentityError> {
        err.get_ref()?
            .downcast_ref::<rustls::Error>()
            .and_then(IdentityError::from_rustls)
    }
}

impl From<IdentityError> for rustls::Error {
    /// Rejects the certificate with the full reason attached.
    ///
    /// A wrapped [`IdentityError::Tls`] is passed through unchanged.
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::Tls(inner) => inner,
            other => rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(other),
            ))),
        }
    }
}

/// Formats a time as RFC 3339 for messages; falls back to `Display` for
/// times RFC 3339 cannot express.
pub(super) fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Lowercase hex, for pins and serial numbers.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
