//! The one adapter between the vocabulary and the wire types of
//! `fedmesh-proto`: `From` towards the wire, `TryFrom` (whose errors name
//! the bad field) from it.
//!
//! Everything a peer sends is bounded here, where it is decoded: names are
//! DNS labels (RFC 1035 §2.3.4: at most 63 octets), regions and zones at
//! most 63 characters of a safe set, lists at most a fixed length. A value
//! quoted in an error is cut and escaped ([`shown`]), so a hostile peer
//! cannot flood a log or a terminal through the error either.

use fedmesh_proto::v1;

use super::{Affinity, Locality, ServiceKey, is_dns_label};

/// A wire value that does not map onto the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An affinity number this release does not know.
    #[error("field {field} {value} is not a known affinity; upgrade this cluster")]
    UnknownAffinity {
        /// The field path.
        field: &'static str,
        /// The number received.
        value: i32,
    },
    /// A service key part that is not a DNS label.
    #[error("field {field} {value} is not a DNS label")]
    NotALabel {
        /// `namespace`, `name` or another name's field path.
        field: &'static str,
        /// What was sent, cut and escaped ([`shown`]).
        value: String,
    },
    /// A locality without a region or a zone.
    #[error("field {field} needs a region and a zone")]
    IncompleteLocality {
        /// The field path.
        field: String,
    },
    /// A region or zone that is too long or has an unsafe character.
    #[error(
        "field {field}.{part} {value} must be 1 to {MAX_LOCALITY_LEN} characters of a-z, A-Z, 0-9, '-', '_' or '.'"
    )]
    BadLocality {
        /// The locality's field path.
        field: String,
        /// `region` or `zone`.
        part: &'static str,
        /// What was sent, cut and escaped.
        value: String,
    },
    /// A value that must be unique in its list but appears twice.
    #[error("field {field} {value} appears twice")]
    Duplicate {
        /// The field path.
        field: &'static str,
        /// The repeated value, cut and escaped.
        value: String,
    },
    /// A list longer than this release accepts.
    #[error("field {field} has {count} entries; at most {max} are accepted")]
    TooMany {
        /// The field path.
        field: &'static str,
        /// How many were sent.
        count: usize,
        /// The bound.
        max: usize,
    },
}

/// Longest region or zone accepted from a peer (a DNS label's length).
pub const MAX_LOCALITY_LEN: usize = 63;

/// How many characters of a refused value an error quotes.
const SHOWN_CHARS: usize = 64;

/// `value` as an error quotes it: escaped (no control character reaches a
/// log or a terminal) and cut to 64 characters, with its full length.
pub fn shown(value: &str) -> String {
    let count = value.chars().count();
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    if count > SHOWN_CHARS {
        format!("{:?}… ({count} characters)", head)
    } else {
        format!("{head:?}")
    }
}

/// Refuses `value` unless it is a DNS label.
///
/// # Errors
/// [`WireError::NotALabel`] naming `field`.
pub fn check_label(field: &'static str, value: &str) -> Result<(), WireError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(WireError::NotALabel {
            field,
            value: shown(value),
        })
    }
}

/// Refuses a list of `count` entries when it is longer than `max`.
///
/// # Errors
/// [`WireError::TooMany`] naming `field`.
pub fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), WireError> {
    if count > max {
        Err(WireError::TooMany { field, count, max })
    } else {
        Ok(())
    }
}

/// Whether a region or zone is safe to store, route on and print.
fn is_safe_locality_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LOCALITY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl From<Affinity> for v1::Affinity {
    fn from(a: Affinity) -> Self {
        match a {
            Affinity::Local => v1::Affinity::Local,
            Affinity::Remote => v1::Affinity::Remote,
            Affinity::None => v1::Affinity::None,
        }
    }
}

impl Affinity {
    /// The enum number carried in proto messages.
    pub fn to_proto(self) -> i32 {
        v1::Affinity::from(self) as i32
    }

    /// The affinity in a proto message's `affinity` field.
    ///
    /// # Errors
    /// A number this release does not know.
    pub fn from_proto(value: i32) -> Result<Self, WireError> {
        match v1::Affinity::try_from(value) {
            Ok(v1::Affinity::Local) => Ok(Affinity::Local),
            Ok(v1::Affinity::Remote) => Ok(Affinity::Remote),
            Ok(v1::Affinity::None) => Ok(Affinity::None),
            Err(_) => Err(WireError::UnknownAffinity {
                field: "affinity",
                value,
            }),
        }
    }
}

impl From<&ServiceKey> for v1::ServiceKey {
    fn from(k: &ServiceKey) -> Self {
        v1::ServiceKey {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
        }
    }
}

impl TryFrom<&v1::ServiceKey> for ServiceKey {
    type Error = WireError;

    fn try_from(k: &v1::ServiceKey) -> Result<Self, WireError> {
        check_label("namespace", &k.namespace)?;
        check_label("name", &k.name)?;
        Ok(ServiceKey::new(&k.namespace, &k.name))
    }
}

impl From<&Locality> for v1::Locality {
    fn from(l: &Locality) -> Self {
        v1::Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
        }
    }
}

impl Locality {
    /// The wire form.
    pub fn to_proto(&self) -> v1::Locality {
        self.into()
    }

    /// A locality from a message field named `field`; both parts required,
    /// each at most 63 characters of a safe set.
    ///
    /// # Errors
    /// A missing locality, region or zone; a part too long or unsafe.
    pub fn from_proto(l: Option<&v1::Locality>, field: &str) -> Result<Self, WireError> {
        let l = l
            .filter(|l| !l.region.is_empty() && !l.zone.is_empty())
            .ok_or_else(|| WireError::IncompleteLocality {
                field: field.to_string(),
            })?;
        for (part, value) in [("region", &l.region), ("zone", &l.zone)] {
            if !is_safe_locality_part(value) {
                return Err(WireError::BadLocality {
                    field: field.to_string(),
                    part,
                    value: shown(value),
                });
            }
        }
        Ok(Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_affinity_survives_the_wire() {
        for a in [Affinity::Local, Affinity::Remote, Affinity::None] {
            assert_eq!(Affinity::from_proto(a.to_proto()), Ok(a));
            assert_eq!(a.as_str().parse::<Affinity>(), Ok(a));
        }
        let err = Affinity::from_proto(99).unwrap_err();
        assert!(err.to_string().contains("affinity 99"), "{err}");
    }

    #[test]
    fn a_service_key_survives_the_wire_and_a_bad_part_is_named() {
        let key = ServiceKey::new("demo", "hello");
        let wire = v1::ServiceKey::from(&key);
        assert_eq!(ServiceKey::try_from(&wire), Ok(key));
        let bad = v1::ServiceKey {
            namespace: "demo".into(),
            name: "Hello".into(),
        };
        let err = ServiceKey::try_from(&bad).unwrap_err();
        assert_eq!(err.to_string(), "field name \"Hello\" is not a DNS label");
    }

    #[test]
    fn a_locality_without_a_zone_names_the_field() {
        let half = v1::Locality {
            region: "eu".into(),
            zone: String::new(),
        };
        let err = Locality::from_proto(Some(&half), "hello.info.locality").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field hello.info.locality needs a region and a zone"
        );
        let whole = Locality {
            region: "eu".into(),
            zone: "eu-1".into(),
        };
        assert_eq!(
            Locality::from_proto(Some(&whole.to_proto()), "l"),
            Ok(whole)
        );
    }

    #[test]
    fn a_long_or_unsafe_region_is_refused_with_the_field_and_a_cut_value() {
        for region in ["r".repeat(65_536), "eu\u{1b}[31m".into(), "eu\nwest".into()] {
            let l = v1::Locality {
                region: region.clone(),
                zone: "z".into(),
            };
            let err = Locality::from_proto(Some(&l), "hello.info.locality").unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("field hello.info.locality.region "),
                "{text}"
            );
            assert!(text.len() < 300, "the value is cut: {} bytes", text.len());
            assert!(!text.chars().any(char::is_control), "escaped: {text:?}");
        }
        let longest = v1::Locality {
            region: "r".repeat(63),
            zone: "us-west-2a".into(),
        };
        assert!(Locality::from_proto(Some(&longest), "l").is_ok());
    }

    #[test]
    fn a_huge_name_is_quoted_cut_and_a_long_list_is_refused() {
        let err = check_label("ports.name", &"x".repeat(70_000)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("(70000 characters)"), "{text}");
        assert!(text.len() < 200, "{text}");
        assert_eq!(
            check_count("ports", 65, 64).unwrap_err().to_string(),
            "field ports has 65 entries; at most 64 are accepted"
        );
        assert!(check_count("ports", 64, 64).is_ok());
    }
}
