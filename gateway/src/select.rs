//! Target choice for a new egress connection (DESIGN.md, Gateway: Egress),
//! as a pure function of the import, this cluster's locality and how many
//! endpoints of each target are usable right now.
//!
//! Locality levels: this cluster's endpoints, then peers in the same zone,
//! the same region, then any. Affinity `local` walks them in that order,
//! `remote` moves this cluster after every peer, `none` makes one level of
//! everything; weights (`fedmesh.io/weights`) split between clusters
//! instead of walking levels.
//!
//! Spill-over by capacity follows Envoy's priority levels and their
//! overprovisioning factor ([`OVERPROVISIONING`]). A group of endpoints has
//! health `min(1, 1.4 × healthy / total)`. Each level keeps the share of
//! the traffic its health says and passes the rest on to the next level,
//! which does the same; when the levels' health sums below 100 %, the
//! shares are scaled up to sum to 100 % (Envoy's normalised total health),
//! so traffic always goes where something is healthy. A weighted cluster's
//! weight is scaled by its own health the same way (Envoy's locality
//! weighted load balancing), and the split is over the scaled weights.
//!
//! A peer's endpoint counts are its own claim, so they are capped at
//! `gateway.maxClaimedEndpoints` before they weigh anything: a peer claiming
//! more counts as that many, with its claimed health ratio kept. Without
//! the cap a peer that claims 9 endpoints beside another's 1 would draw
//! 90 % of a level; with a cap of 1 both draw half. Weights already split
//! by health ratios alone, which a bigger claim cannot raise above 1.
//!
//! Data flow: [`order`] gathers each target with its usable and total
//! endpoints, draws the level (or weighted cluster) that goes first by
//! those shares, picks within that level by usable endpoints, then lists
//! every other usable target as failover order. The caller tries them in
//! turn, so a failed connect moves to the next.
//!
//! Draining clusters (`fedctl drain`) are ordered the same way among
//! themselves, but only after every other usable target: they get a new
//! connection only when nothing else can serve it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{Affinity, Import, Locality, Target};

/// Envoy's default overprovisioning factor: a group of endpoints counts as
/// fully healthy until fewer than 1 / 1.4 ≈ 71.4 % of them are usable, so
/// losing a few endpoints moves no traffic; below that, its share shrinks
/// in proportion and the rest spills over. Fixed on purpose: no setting.
pub const OVERPROVISIONING: f64 = 1.4;

/// Locality levels, best first: this cluster, same zone, same region, any,
/// and (affinity `remote`) this cluster again, last.
const LEVELS: usize = 5;

/// The targets to try, best first.
///
/// `healthy_now` says how many of a target's endpoints are usable right
/// now: 0 when the target cannot be used at all (its gateway probes down,
/// or it is ejected), fewer than `t.healthy` when some of its endpoints are
/// ejected; `t.healthy` is the usual answer. Targets at 0 are never
/// returned. The first target is drawn by spill-over (see the module
/// docs); the rest follow as failover order: the other targets of its
/// level, then the other levels in locality order. A peer's counts weigh
/// at most `max_claimed` endpoints (`gateway.maxClaimedEndpoints`).
pub fn order<'a>(
    import: &'a Import,
    me: &Locality,
    healthy_now: impl Fn(&Target) -> u32,
    max_claimed: u32,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    let (serving, draining): (Vec<Candidate<'a>>, Vec<Candidate<'a>>) = import
        .targets
        .iter()
        .map(|t| Candidate::new(t, healthy_now(t), max_claimed))
        .partition(|c| !c.target.draining);
    let mut out = spread(import, serving, me, rng);
    out.extend(spread(import, draining, me, rng));
    out
}

/// The order of `candidates` by weights, else by locality levels.
fn spread<'a>(
    import: &'a Import,
    candidates: Vec<Candidate<'a>>,
    me: &Locality,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    if candidates.is_empty() {
        return Vec::new();
    }
    if import.weights.is_empty() {
        return by_levels(candidates, me, import.affinity, rng);
    }
    let weight = |c: &Candidate<'_>| import.weights.get(&c.target.cluster).copied();
    let (weighted, rest): (Vec<Candidate<'a>>, Vec<Candidate<'a>>) = candidates
        .into_iter()
        .partition(|c| weight(c).is_some_and(|w| w > 0));
    // Envoy's locality weighting: effective weight = weight × health, so a
    // cluster at half its endpoints keeps 70 % of its weight and the rest
    // goes to the others in proportion to theirs. A cluster with nothing
    // usable has no effective weight and is not listed.
    let mut out = shuffle(usable(&weighted), rng, |c| {
        f64::from(weight(c).unwrap_or(0)) * c.health()
    });
    // Unweighted clusters stay a last resort, in locality order.
    out.extend(by_levels(rest, me, Affinity::Local, rng));
    out
}

/// One target with its endpoint counts for this choice.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    target: &'a Target,
    /// Endpoints usable now (the caller's `healthy_now`).
    now: u32,
    /// Every endpoint, so never below `now` or the target's `healthy`.
    total: u32,
    /// What one endpoint weighs: 1, or `max_claimed / total` for a peer
    /// claiming more than the cap, so its counts weigh at most the cap.
    scale: f64,
}

impl<'a> Candidate<'a> {
    fn new(target: &'a Target, now: u32, max_claimed: u32) -> Self {
        let total = target.total.max(target.healthy).max(now);
        // This cluster's own counts come from its registry, not a claim.
        let scale = if target.local || total <= max_claimed {
            1.0
        } else {
            f64::from(max_claimed) / f64::from(total)
        };
        Self {
            target,
            now,
            total,
            scale,
        }
    }

    /// Usable endpoints as they weigh: at most the cap for a peer.
    fn weighed_now(&self) -> f64 {
        f64::from(self.now) * self.scale
    }

    /// Every endpoint as it weighs: at most the cap for a peer.
    fn weighed_total(&self) -> f64 {
        f64::from(self.total) * self.scale
    }

    fn health(&self) -> f64 {
        health(u64::from(self.now), u64::from(self.total))
    }
}

/// Envoy's health of a group of endpoints: `min(1, 1.4 × healthy / total)`;
/// 0 for an empty group.
fn health(healthy: u64, total: u64) -> f64 {
    weighed_health(healthy as f64, total as f64)
}

/// [`health`] of weighed (capped) counts.
fn weighed_health(healthy: f64, total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    (OVERPROVISIONING * healthy / total).min(1.0)
}

/// Draws a level by spill-over, picks within it by usable endpoints, then
/// lists the rest of that level and every other level in order.
fn by_levels<'a>(
    candidates: Vec<Candidate<'a>>,
    me: &Locality,
    affinity: Affinity,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    let mut levels: [Vec<Candidate<'a>>; LEVELS] = Default::default();
    for c in candidates {
        levels[level(c.target, me, affinity)].push(c);
    }
    let health = levels.each_ref().map(|l| level_health(l));
    let first = draw(&priority_loads(&health), rng);
    let mut out = Vec::new();
    if let Some(first) = first {
        out.extend(shuffle(usable(&levels[first]), rng, within_level));
    }
    for (i, level) in levels.iter().enumerate() {
        if Some(i) != first {
            out.extend(shuffle(usable(level), rng, within_level));
        }
    }
    out
}

/// A level's health counts every endpoint of every target in it, usable or
/// not: a peer whose gateway is down has lost its whole capacity.
fn level_health(level: &[Candidate<'_>]) -> f64 {
    let now = level.iter().map(Candidate::weighed_now).sum();
    let total = level.iter().map(Candidate::weighed_total).sum();
    weighed_health(now, total)
}

/// Envoy's priority load: each level takes its health's share of what the
/// levels before it left over. When the healths sum below 1, each is first
/// divided by that sum (the normalised total health), so the shares still
/// add up to the whole; when they are all 0 there is nothing to share.
fn priority_loads(health: &[f64; LEVELS]) -> [f64; LEVELS] {
    let total = health.iter().sum::<f64>().min(1.0);
    if total <= 0.0 {
        return [0.0; LEVELS];
    }
    let mut left = 1.0_f64;
    health.map(|h| {
        let load = (h / total).min(left).max(0.0);
        left -= load;
        load
    })
}

/// The index drawn with probability proportional to its load; `None` when
/// every load is 0.
fn draw(loads: &[f64], rng: &mut Rng) -> Option<usize> {
    let sum: f64 = loads.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    let mut point = rng.unit() * sum;
    let last = loads.iter().rposition(|l| *l > 0.0);
    for (i, load) in loads.iter().enumerate() {
        if *load > 0.0 && point <= *load {
            return Some(i);
        }
        point -= load;
    }
    // Rounding left the point just past the end: the last level with load.
    last
}

/// The candidates with something usable now.
fn usable<'a>(cs: &[Candidate<'a>]) -> Vec<Candidate<'a>> {
    cs.iter().copied().filter(|c| c.now > 0).collect()
}

/// Within a level, targets are spread by their usable endpoints, a peer's
/// capped at `gateway.maxClaimedEndpoints`.
fn within_level(c: &Candidate<'_>) -> f64 {
    c.weighed_now()
}

/// A weighted random order (Efraimidis–Spirakis: sort by `u^(1/w)`), so a
/// target with twice the weight comes first twice as often.
fn shuffle<'a>(
    items: Vec<Candidate<'a>>,
    rng: &mut Rng,
    weight: impl Fn(&Candidate<'a>) -> f64,
) -> Vec<&'a Target> {
    let mut keyed: Vec<(f64, &Target)> = items
        .into_iter()
        .map(|c| {
            let w = weight(&c).max(f64::MIN_POSITIVE);
            (rng.unit().powf(1.0 / w), c.target)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, t)| t).collect()
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

#[cfg(test)]
mod tests_drain;
