//! Reading certificates with x509-parser: validity, CA flag, subject, serial,
//! the SPIFFE ID, and the SubjectPublicKeyInfo pin used by join tokens.
//!
//! These are the checks that produce readable errors; the verifiers run them
//! before webpki's path validation, which has the final say on signatures.

use std::time::Duration;

use ring::digest::{SHA256, digest};
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::error::hex;
use super::{IdentityError, SpiffeId};

/// What fedmesh needs to know about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The SPIFFE ID from the URI SAN, if the certificate has one.
    pub spiffe_id: Option<SpiffeId>,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period (renew at two thirds of the lifetime).
    pub not_after: OffsetDateTime,
    /// Whether basicConstraints says `CA:TRUE`.
    pub is_ca: bool,
    /// The subject distinguished name, RFC 4514 style (`CN=east CA`).
    pub subject: String,
    /// The serial number in lowercase hex, without separators.
    pub serial_hex: String,
}

/// Parses a DER certificate and extracts its [`CertInfo`].
///
/// # Errors
///
/// - [`IdentityError::Malformed`] when the bytes are not one well-formed
///   X.509 certificate (or it has duplicate extensions);
/// - [`IdentityError::MultipleSpiffeIds`] when it has more than one
///   `spiffe:` URI SAN;
/// - [`IdentityError::BadSpiffeId`] when its `spiffe:` URI SAN is invalid.
pub fn inspect_cert(der: &[u8]) -> Result<CertInfo, IdentityError> {
    let cert = parse(der, "certificate")?;
    let mut info = basic_info(&cert, "certificate")?;
    info.spiffe_id = spiffe_id_of(&cert)?;
    Ok(info)
}

/// Checks that `now` lies inside the certificate's validity period (both
/// ends inclusive, RFC 5280 §4.1.2.5).
///
/// # Errors
///
/// [`IdentityError::NotYetValid`] or [`IdentityError::Expired`], with the date.
pub fn check_validity(info: &CertInfo, now: OffsetDateTime) -> Result<(), IdentityError> {
    if now < info.not_before {
        return Err(IdentityError::NotYetValid {
            subject: info.subject.clone(),
            not_before: info.not_before,
        });
    }
    if now > info.not_after {
        return Err(IdentityError::Expired {
            subject: info.subject.clone(),
            not_after: info.not_after,
        });
    }
    Ok(())
}

/// SHA-256 of the certificate's DER SubjectPublicKeyInfo: the CA pin carried
/// in join tokens. It survives re-issuing the CA certificate with the same key.
///
/// # Errors
///
/// [`IdentityError::Malformed`] when the bytes are not a certificate.
pub fn spki_sha256(der: &[u8]) -> Result<[u8; 32], IdentityError> {
    let cert = parse(der, "certificate")?;
    let hash = digest(&SHA256, cert.public_key().raw);
    let mut out = [0u8; 32];
    // SHA-256 output is always 32 bytes, so the lengths match.
    out.copy_from_slice(hash.as_ref());
    Ok(out)
}

/// [`spki_sha256`] in lowercase hex, as shown in messages.
pub fn pin_hex(pin: &[u8; 32]) -> String {
    hex(pin)
}

/// Like [`inspect_cert`], but without looking at the SAN (`spiffe_id` is
/// `None`): for CA certificates, whose URI SAN (if any) may be a bare
/// trust-domain ID that [`SpiffeId`] does not accept.
pub(super) fn inspect_basic(der: &[u8], what: &str) -> Result<CertInfo, IdentityError> {
    basic_info(&parse(der, what)?, what)
}

/// Converts rustls' clock reading for [`check_validity`].
pub(super) fn unix_to_offset(t: UnixTime) -> OffsetDateTime {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        // Beyond year 9999: later than any certificate's notAfter.
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// Converts a certificate time for webpki (times before 1970 become 1970).
pub(super) fn offset_to_unix(t: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, IdentityError> {
    let malformed = |reason: String| IdentityError::Malformed {
        what: what.to_owned(),
        reason,
    };
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| malformed(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

fn basic_info(cert: &X509Certificate<'_>, what: &str) -> Result<CertInfo, IdentityError> {
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| IdentityError::Malformed {
            what: what.to_owned(),
            reason: format!("basicConstraints: {e}"),
        })?
        .is_some_and(|bc| bc.value.ca);
    let validity = cert.validity();
    Ok(CertInfo {
        spiffe_id: None,
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        is_ca,
        subject: cert.subject().to_string(),
        serial_hex: format!("{:x}", cert.serial),
    })
}

/// X.509-SVID §2: the SPIFFE ID is the URI SAN; more than one is an error.
/// Other URI SANs (not `spiffe:`) are ignored.
fn spiffe_id_of(cert: &X509Certificate<'_>) -> Result<Option<SpiffeId>, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Malformed {
            what: "certificate".to_owned(),
            reason: format!("subjectAltName: {e}"),
        })?;
    let Some(san) = san else {
        return Ok(None);
    };
    let mut found: Option<&str> = None;
    for name in &san.value.general_names {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        // Case-insensitive, so "SPIFFE://…" is reported as a bad ID rather
        // than silently ignored.
        if !uri
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("spiffe:"))
        {
            continue;
        }
        if let Some(first) = found {
            return Err(IdentityError::MultipleSpiffeIds {
                first: first.to_owned(),
                second: (*uri).to_owned(),
            });
        }
        found = Some(uri);
    }
    found.map(SpiffeId::parse).transpose()
}

#[cfg(test)]
mod tests {
    use ring::digest::{SHA256, digest};
    use time::Duration;
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::identity::test_pki::Ca;
    #[test]
    fn inspect_cert_reads_identity_validity_and_ca_flag() {
        let east = Ca::new("east");
        let leaf = east.gateway("gw-1");
        let info = inspect_cert(&leaf.cert).expect("parses");
        assert_eq!(
            info.spiffe_id,
            Some(SpiffeId::gateway("east.fedmesh", "gw-1"))
        );
        assert!(!info.is_ca);
        assert_eq!(info.subject, "CN=east gw-1");
        assert!(!info.serial_hex.is_empty());
        assert!(
            info.serial_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(info.not_before < OffsetDateTime::now_utc());
        assert!(info.not_after > OffsetDateTime::now_utc());

        let ca = inspect_cert(&east.cert).expect("parses");
        assert!(ca.is_ca);
        assert_eq!(ca.spiffe_id, None);
        assert_eq!(ca.subject, "CN=east CA");
    }

    #[test]
    fn malformed_der_is_rejected_with_a_clear_error() {
        let err = inspect_cert(b"definitely not a certificate").expect_err("garbage");
        assert!(matches!(err, IdentityError::Malformed { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("malformed certificate"),
            "{err}"
        );

        let mut trailing = Ca::new("east").control().cert.to_vec();
        trailing.extend_from_slice(b"extra");
        let err = inspect_cert(&trailing).expect_err("trailing bytes");
        assert!(err.to_string().contains("5 trailing bytes"), "{err}");

        assert!(matches!(
            spki_sha256(&[0x30, 0x03, 0x02]),
            Err(IdentityError::Malformed { .. })
        ));
    }

    #[test]
    fn cert_with_two_spiffe_ids_is_rejected() {
        let east = Ca::new("east");
        let leaf = east.leaf_with_uris(&[
            "spiffe://east.fedmesh/control",
            "spiffe://east.fedmesh/gateway/g",
        ]);
        let err = inspect_cert(&leaf.cert).expect_err("ambiguous identity");
        assert!(
            matches!(err, IdentityError::MultipleSpiffeIds { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn non_spiffe_uri_sans_are_ignored_but_a_bad_spiffe_uri_is_an_error() {
        let east = Ca::new("east");
        let leaf = east.leaf_with_uris(&["https://example.com/x", "spiffe://east.fedmesh/control"]);
        let info = inspect_cert(&leaf.cert).expect("parses");
        assert_eq!(info.spiffe_id, Some(SpiffeId::control("east.fedmesh")));

        let bad = east.leaf_with_uris(&["spiffe://EAST.fedmesh/control"]);
        assert!(matches!(
            inspect_cert(&bad.cert),
            Err(IdentityError::BadSpiffeId { .. })
        ));
    }

    #[test]
    fn check_validity_reports_both_ends_with_dates() {
        let east = Ca::new("east");
        let info = inspect_cert(&east.expired_control().cert).expect("parses");
        let err = check_validity(&info, OffsetDateTime::now_utc()).expect_err("expired");
        assert!(
            matches!(err, IdentityError::Expired { not_after, .. } if not_after == info.not_after)
        );
        let date = info.not_after.format(&Rfc3339).expect("formats");
        assert!(
            err.to_string().contains(&date),
            "{err} should contain {date}"
        );

        let err = check_validity(&info, info.not_before - Duration::seconds(1)).expect_err("early");
        assert!(matches!(err, IdentityError::NotYetValid { .. }), "{err:?}");
        // Both ends are inclusive.
        check_validity(&info, info.not_before).expect("valid at notBefore");
        check_validity(&info, info.not_after).expect("valid at notAfter");
    }

    #[test]
    fn spki_sha256_is_the_hash_of_the_ca_public_key() {
        let east = Ca::new("east");
        let pin = spki_sha256(&east.cert).expect("parses");
        assert_eq!(pin.as_slice(), digest(&SHA256, &east.spki).as_ref());
        assert_ne!(pin, spki_sha256(&Ca::new("east").cert).expect("parses"));
        assert_eq!(pin_hex(&pin).len(), 64);
    }
}
