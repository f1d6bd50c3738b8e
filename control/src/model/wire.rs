//! The one adapter between the vocabulary and the wire types of
//! `fedmesh-proto`: `From` towards the wire, `TryFrom` (whose errors name
//! the bad field) from it.

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
    #[error("field {field} {value:?} is not a DNS label")]
    NotALabel {
        /// `namespace` or `name`.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// A locality without a region or a zone.
    #[error("field {field} needs a region and a zone")]
    IncompleteLocality {
        /// The field path.
        field: String,
    },
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
        for (field, value) in [("namespace", &k.namespace), ("name", &k.name)] {
            if !is_dns_label(value) {
                return Err(WireError::NotALabel {
                    field,
                    value: value.clone(),
                });
            }
        }
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

    /// A locality from a message field named `field`; both parts required.
    ///
    /// # Errors
    /// A missing locality, region or zone.
    pub fn from_proto(l: Option<&v1::Locality>, field: &str) -> Result<Self, WireError> {
        l.filter(|l| !l.region.is_empty() && !l.zone.is_empty())
            .map(|l| Locality {
                region: l.region.clone(),
                zone: l.zone.clone(),
            })
            .ok_or_else(|| WireError::IncompleteLocality {
                field: field.to_string(),
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
}
