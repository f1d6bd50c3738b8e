//! Target choice for a new egress connection (DESIGN.md, Gateway: Egress).
//!
//! Order by locality — this cluster's endpoints, then peers in the same
//! zone, the same region, then any — subject to the service's affinity
//! (`local` walks that order, `remote` puts this cluster last, `none` makes
//! one level of everything) or, when it has weights, a weighted split
//! between clusters that overrides the locality order. Within a level,
//! targets are spread by healthy endpoint count (capacity-aware). Only
//! usable targets are returned: healthy endpoints and, for remote ones, a
//! gateway that probes up and is not ejected. The caller tries them in
//! order, so a failed connect moves to the next.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::{Affinity, Import, Locality, Target};

/// The targets to try, best first.
pub fn order<'a>(
    import: &'a Import,
    me: &Locality,
    usable: impl Fn(&Target) -> bool,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    let candidates: Vec<&Target> = import
        .targets
        .iter()
        .filter(|t| t.healthy > 0 && usable(t))
        .collect();
    if !import.weights.is_empty() {
        let weight = |t: &Target| import.weights.get(&t.cluster).copied().unwrap_or(0);
        let (weighted, rest): (Vec<&Target>, Vec<&Target>) =
            candidates.into_iter().partition(|t| weight(t) > 0);
        // A cluster with no healthy endpoint was filtered out above, so its
        // share is spread over the rest by the shuffle's weights.
        let mut out = shuffle(weighted, |t| f64::from(weight(t)), rng);
        out.extend(by_levels(rest, me, Affinity::Local, rng));
        return out;
    }
    by_levels(candidates, me, import.affinity, rng)
}

fn by_levels<'a>(
    targets: Vec<&'a Target>,
    me: &Locality,
    affinity: Affinity,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    let mut levels: [Vec<&Target>; 5] = Default::default();
    for t in targets {
        levels[level(t, me, affinity)].push(t);
    }
    levels
        .into_iter()
        .flat_map(|level| shuffle(level, |t| f64::from(t.healthy), rng))
        .collect()
}

/// 0 best … 4 last.
fn level(t: &Target, me: &Locality, affinity: Affinity) -> usize {
    let distance = if t.local {
        0
    } else if t.locality == *me {
        1
    } else if t.locality.region == me.region {
        2
    } else {
        3
    };
    match affinity {
        Affinity::Local => distance,
        Affinity::Remote if t.local => 4,
        Affinity::Remote => distance,
        Affinity::None => 0,
    }
}

/// A weighted random order (Efraimidis–Spirakis: sort by `u^(1/w)`), so a
/// target with twice the weight comes first twice as often.
fn shuffle<'a>(
    items: Vec<&'a Target>,
    weight: impl Fn(&Target) -> f64,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    let mut keyed: Vec<(f64, &Target)> = items
        .into_iter()
        .map(|t| {
            let w = weight(t).max(f64::MIN_POSITIVE);
            (rng.unit().powf(1.0 / w), t)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// A small, fast, non-cryptographic random source (xorshift64*): target
/// spreading needs speed and spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and a process-wide counter, so concurrent
    /// connections differ.
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Self::seeded(COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ u64::from(nanos))
    }

    /// A fixed seed, for tests.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // 53 random bits, shifted away from zero.
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
