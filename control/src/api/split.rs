//! The effective split of a weighted service (`fedmesh.io/weights`), as
//! `fedctl services` shows it: the same rule the gateways' target choice
//! uses (Envoy's locality weighting: a cluster's weight times its health,
//! healthy / total endpoints), so a cluster with no healthy endpoint gets
//! nothing and its share is spread over the rest. Percentages are whole
//! numbers that sum to 100 (largest remainder), or nothing at all when no
//! weighted cluster can serve.

use std::collections::BTreeMap;

use crate::table::ClusterEntry;

/// Cluster → percent of new connections, over the weighted clusters that
/// have a healthy endpoint. Empty when `weights` is, or when none can serve.
pub fn effective_split(
    weights: &BTreeMap<String, u32>,
    clusters: &[ClusterEntry],
) -> BTreeMap<String, u32> {
    let scaled: Vec<(&str, f64)> = clusters
        .iter()
        .filter(|c| c.healthy > 0)
        .filter_map(|c| {
            let w = *weights.get(&c.cluster)?;
            let total = c.total.max(c.healthy);
            let share = f64::from(w) * f64::from(c.healthy) / f64::from(total);
            (share > 0.0).then_some((c.cluster.as_str(), share))
        })
        .collect();
    let sum: f64 = scaled.iter().map(|(_, s)| s).sum();
    if sum <= 0.0 {
        return BTreeMap::new();
    }
    // Largest remainder: floor every share, then hand the points left to
    // the largest fractions, so the split always sums to 100.
    let exact: Vec<(&str, f64)> = scaled.iter().map(|(c, s)| (*c, s * 100.0 / sum)).collect();
    let mut out: BTreeMap<String, u32> = exact
        .iter()
        .map(|(c, p)| ((*c).to_string(), p.floor() as u32))
        .collect();
    let given: u32 = out.values().sum();
    let mut by_fraction = exact.clone();
    by_fraction.sort_by(|a, b| (b.1 - b.1.floor()).total_cmp(&(a.1 - a.1.floor())));
    for (cluster, _) in by_fraction
        .iter()
        .take(100usize.saturating_sub(given as usize))
    {
        if let Some(p) = out.get_mut(*cluster) {
            *p += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Locality;

    fn cluster(name: &str, healthy: u32, total: u32) -> ClusterEntry {
        ClusterEntry {
            cluster: name.into(),
            local: false,
            locality: Locality::default(),
            healthy,
            total,
            stale: false,
            pinned_vip: None,
            exported_at_ms: 0,
            gateway_address: String::new(),
            ports: vec![],
            draining: false,
        }
    }

    fn weights(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(c, w)| ((*c).to_string(), *w)).collect()
    }

    fn split(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        weights(pairs)
    }

    #[test]
    fn healthy_clusters_split_by_their_weights() {
        let got = effective_split(
            &weights(&[("east", 70), ("west", 30)]),
            &[cluster("east", 1, 1), cluster("west", 2, 2)],
        );
        assert_eq!(got, split(&[("east", 70), ("west", 30)]));
    }

    #[test]
    fn a_cluster_without_a_healthy_endpoint_gets_nothing_and_the_rest_get_its_share() {
        let got = effective_split(
            &weights(&[("east", 70), ("west", 30)]),
            &[cluster("east", 0, 1), cluster("west", 1, 1)],
        );
        assert_eq!(got, split(&[("west", 100)]));
    }

    #[test]
    fn a_half_healthy_cluster_keeps_half_its_weight() {
        let got = effective_split(
            &weights(&[("east", 50), ("west", 50)]),
            &[cluster("east", 1, 2), cluster("west", 1, 1)],
        );
        assert_eq!(got, split(&[("east", 33), ("west", 67)]));
    }

    #[test]
    fn no_weights_or_nobody_healthy_is_an_empty_split() {
        let clusters = [cluster("east", 0, 1)];
        assert!(effective_split(&BTreeMap::new(), &clusters).is_empty());
        assert!(effective_split(&weights(&[("east", 1)]), &clusters).is_empty());
    }

    #[test]
    fn percentages_always_sum_to_a_hundred() {
        let got = effective_split(
            &weights(&[("a", 1), ("b", 1), ("c", 1)]),
            &[cluster("a", 1, 1), cluster("b", 1, 1), cluster("c", 1, 1)],
        );
        assert_eq!(got.values().sum::<u32>(), 100, "{got:?}");
    }
}
