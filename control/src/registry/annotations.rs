//! The `fedmesh.io/*` annotations on a Service (DESIGN.md, Exporting),
//! parsed with errors that name the annotation, the bad value and the fix.
//! A bad optional annotation stops the export rather than being ignored:
//! ignoring a mistyped `export-to` would send the service to every peer.

use std::collections::BTreeMap;

use crate::model::is_dns_label;
use crate::model::{Affinity, ExportSpec};

/// Marks a Service exported.
pub const EXPORT: &str = "fedmesh.io/export";
/// Limits the peers that receive it.
pub const EXPORT_TO: &str = "fedmesh.io/export-to";
/// Target ordering on the importing side.
pub const AFFINITY: &str = "fedmesh.io/affinity";
/// Weighted split between clusters.
pub const WEIGHTS: &str = "fedmesh.io/weights";

/// An annotation whose value cannot be used; the message names it, the
/// value, and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// `fedmesh.io/export` other than `true` or `false`.
    #[error("annotation fedmesh.io/export must be \"true\" or \"false\", not {0:?}")]
    Export(String),
    /// An `export-to` entry that is not a cluster name.
    #[error(
        "annotation fedmesh.io/export-to: {0:?} is not a cluster name (lowercase letters, digits, '-'); write e.g. \"west,eu\""
    )]
    ExportTo(String),
    /// An affinity other than `local`, `remote` or `none`.
    #[error("annotation fedmesh.io/affinity must be local, remote or none, not {0:?}")]
    Affinity(String),
    /// A `weights` entry without `=`.
    #[error(
        "annotation fedmesh.io/weights: {0:?} is not cluster=weight; write e.g. \"east=90,west=10\""
    )]
    WeightPair(String),
    /// A `weights` cluster that is not a cluster name.
    #[error("annotation fedmesh.io/weights: {0:?} is not a cluster name")]
    WeightCluster(String),
    /// A weight that is not 0 to 10000.
    #[error(
        "annotation fedmesh.io/weights: weight {weight:?} of {cluster} is not a whole number from 0 to 10000"
    )]
    Weight {
        /// The cluster.
        cluster: String,
        /// The value written.
        weight: String,
    },
    /// A cluster with two weights.
    #[error("annotation fedmesh.io/weights: {0} is named twice")]
    WeightTwice(String),
    /// Every weight zero.
    #[error("annotation fedmesh.io/weights: at least one weight must be above 0")]
    AllZero,
}

/// The export a Service's annotations ask for: `Ok(None)` when it is not
/// exported.
///
/// # Errors
/// The first bad annotation, named, with the value and what is expected.
pub fn parse_export(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<ExportSpec>, AnnotationError> {
    match annotations.get(EXPORT).map(|v| v.trim()) {
        None | Some("false") => return Ok(None),
        Some("true") => {}
        Some(other) => return Err(AnnotationError::Export(other.to_string())),
    }
    let to = match annotations.get(EXPORT_TO) {
        Some(v) => parse_export_to(v)?,
        None => Vec::new(),
    };
    let affinity = match annotations.get(AFFINITY) {
        Some(v) => parse_affinity(v)?,
        None => Affinity::default(),
    };
    let weights = match annotations.get(WEIGHTS) {
        Some(v) => parse_weights(v)?,
        None => BTreeMap::new(),
    };
    Ok(Some(ExportSpec {
        to,
        affinity,
        weights,
    }))
}

/// `"west,eu"` → `["eu", "west"]`.
///
/// # Errors
/// An empty list or an entry that is not a cluster name.
pub fn parse_export_to(value: &str) -> Result<Vec<String>, AnnotationError> {
    let mut peers = Vec::new();
    for part in value.split(',').map(str::trim) {
        if !is_dns_label(part) {
            return Err(AnnotationError::ExportTo(part.to_string()));
        }
        peers.push(part.to_string());
    }
    peers.sort();
    peers.dedup();
    Ok(peers)
}

/// `local`, `remote` or `none`.
///
/// # Errors
/// Any other value.
pub fn parse_affinity(value: &str) -> Result<Affinity, AnnotationError> {
    value
        .parse()
        .map_err(|_| AnnotationError::Affinity(value.trim().to_string()))
}

/// `"east=90,west=10"` → `{east: 90, west: 10}`.
///
/// # Errors
/// A malformed pair, a bad cluster name, a weight that is not a whole
/// number up to 10000, a cluster named twice, or all weights zero.
pub fn parse_weights(value: &str) -> Result<BTreeMap<String, u32>, AnnotationError> {
    let mut weights = BTreeMap::new();
    for pair in value.split(',').map(str::trim) {
        let (cluster, weight) = pair
            .split_once('=')
            .ok_or_else(|| AnnotationError::WeightPair(pair.to_string()))?;
        let cluster = cluster.trim();
        if !is_dns_label(cluster) {
            return Err(AnnotationError::WeightCluster(cluster.to_string()));
        }
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| *w <= 10_000)
            .ok_or_else(|| AnnotationError::Weight {
                cluster: cluster.to_string(),
                weight: weight.to_string(),
            })?;
        if weights.insert(cluster.to_string(), weight).is_some() {
            return Err(AnnotationError::WeightTwice(cluster.to_string()));
        }
    }
    if weights.values().all(|w| *w == 0) {
        return Err(AnnotationError::AllZero);
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_service_without_the_annotation_is_not_exported() {
        assert_eq!(parse_export(&ann(&[])), Ok(None));
        assert_eq!(parse_export(&ann(&[(EXPORT, "false")])), Ok(None));
    }

    #[test]
    fn export_true_uses_the_defaults() {
        let spec = parse_export(&ann(&[(EXPORT, "true")])).unwrap().unwrap();
        assert_eq!(spec, ExportSpec::default());
        assert!(spec.allows("anyone"));
    }

    #[test]
    fn every_annotation_is_read() {
        let spec = parse_export(&ann(&[
            (EXPORT, "true"),
            (EXPORT_TO, "west, eu"),
            (AFFINITY, "remote"),
            (WEIGHTS, "east=90,west=10"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(spec.to, ["eu", "west"]);
        assert!(spec.allows("west") && !spec.allows("east"));
        assert_eq!(spec.affinity, Affinity::Remote);
        assert_eq!(spec.weights.get("east"), Some(&90));
    }

    #[test]
    fn bad_values_name_the_annotation() {
        let cases = [
            (EXPORT, "yes"),
            (EXPORT_TO, "west,,eu"),
            (EXPORT_TO, "West"),
            (AFFINITY, "nearest"),
            (WEIGHTS, "east:90"),
            (WEIGHTS, "east=ninety"),
            (WEIGHTS, "east=1,east=2"),
            (WEIGHTS, "east=0"),
            (WEIGHTS, "east=20000"),
        ];
        for (key, value) in cases {
            let mut a = ann(&[(EXPORT, "true")]);
            a.insert(key.to_string(), value.to_string());
            let err = parse_export(&a).unwrap_err();
            assert!(err.to_string().contains(key), "{key}={value}: {err}");
        }
    }
}
