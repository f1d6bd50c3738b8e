//! [`LiveCert`]: this process's own certificate chain and key, swappable at
//! run time so renewal needs no new TLS config and drops no connection.
//!
//! Existing connections keep the certificate they were established with;
//! every handshake after [`LiveCert::replace`] presents the new one.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use super::IdentityError;
use super::cert::inspect_basic;

/// A hot-swappable certificate chain (leaf first) and private key, used as
/// the certificate resolver of server and client configs.
///
/// Clones share the same slot: replacing through one clone changes what
/// every config built from any clone presents.
#[derive(Clone)]
pub struct LiveCert {
    slot: Arc<RwLock<Current>>,
}

#[derive(Clone)]
struct Current {
    key: Arc<CertifiedKey>,
    not_after: OffsetDateTime,
    subject: String,
}

impl LiveCert {
    /// Loads a chain (leaf first, then its CA; servers that joining clusters
    /// dial must send the CA too) and the leaf's private key.
    ///
    /// # Errors
    ///
    /// [`IdentityError::EmptyChain`], [`IdentityError::Malformed`] when the
    /// leaf does not parse, [`IdentityError::Tls`] when the key is not a
    /// supported PKCS#8/SEC1/PKCS#1 key, and [`IdentityError::KeyMismatch`]
    /// when the key is not the leaf's.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<LiveCert, IdentityError> {
        Ok(LiveCert {
            slot: Arc::new(RwLock::new(load(chain, key)?)),
        })
    }

    /// Swaps in a new chain and key; the next handshake presents them.
    ///
    /// # Errors
    ///
    /// As [`LiveCert::new`]; on error the current certificate stays.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), IdentityError> {
        let next = load(chain, key)?;
        // Writers only store a complete value, so a poisoned lock is sound.
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// The chain and key presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.read().key
    }

    /// When the current leaf expires (renew at two thirds of its lifetime).
    pub fn not_after(&self) -> OffsetDateTime {
        self.read().not_after
    }

    fn read(&self) -> Current {
        self.slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn load(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Current, IdentityError> {
    let leaf = chain.first().ok_or(IdentityError::EmptyChain)?;
    let info = inspect_basic(leaf, "leaf certificate")?;
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key type cannot report its public key; nothing to compare.
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(IdentityError::KeyMismatch {
                subject: info.subject,
            });
        }
        Err(other) => return Err(other.into()),
    }
    Ok(Current {
        key: Arc::new(certified),
        not_after: info.not_after,
        subject: info.subject,
    })
}

impl fmt::Debug for LiveCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.read();
        f.debug_struct("LiveCert")
            .field("subject", &current.subject)
            .field("not_after", &current.not_after)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for LiveCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
