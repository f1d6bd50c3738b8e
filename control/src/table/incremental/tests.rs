//! The incremental update against the reference: after every step of a
//! random sequence of export and import changes, the table updated in
//! place equals a full [`build`] from the same inputs (VIPs included).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::exports::ExportEntry;
use crate::model::{
    Affinity, ExportSpec, ImportedService, Locality, NamedEndpoint, NamedEndpoints, PortSpec,
};
use crate::table::build_all;
use crate::table::owner::apply;
use crate::table::vips::VipAllocator;

/// xorshift64: a fixed seed per run, so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const NAMES: u64 = 12;

fn me() -> LocalCluster {
    LocalCluster {
        name: "east".into(),
        locality: Locality::default(),
    }
}

fn peers() -> Vec<PeerLink> {
    ["west", "eu", "gone"]
        .iter()
        .zip([
            LinkState::Connected,
            LinkState::Stale,
            LinkState::Disconnected,
        ])
        .map(|(name, state)| PeerLink {
            name: (*name).into(),
            locality: Locality::default(),
            gateway_address: format!("{name}-gw:15443"),
            state,
        })
        .collect()
}

fn key(rng: &mut Rng) -> ServiceKey {
    ServiceKey::new("demo", format!("svc-{}", rng.below(NAMES)))
}

fn ports(rng: &mut Rng) -> Vec<PortSpec> {
    vec![PortSpec {
        name: "http".into(),
        port: 8080 + u16::try_from(rng.below(2)).unwrap_or(0),
        app_protocol: Default::default(),
    }]
}

/// Headless one time in three: one or two named pods.
fn named(rng: &mut Rng) -> Option<NamedEndpoints> {
    (rng.below(3) == 0).then(|| {
        let pods = (0..=rng.below(2)).map(|i| NamedEndpoint {
            hostname: format!("pod-{i}"),
            ready: rng.below(2) == 0,
        });
        NamedEndpoints::from_list(pods.collect::<Vec<_>>())
    })
}

fn import(rng: &mut Rng) -> ImportedService {
    ImportedService {
        ports: ports(rng),
        exported_at_ms: i64::try_from(rng.below(5)).unwrap_or(0),
        affinity: if rng.below(2) == 0 {
            Affinity::Local
        } else {
            Affinity::Remote
        },
        weights: BTreeMap::new(),
        healthy: u32::try_from(rng.below(3)).unwrap_or(0),
        total: 2,
        headless: named(rng),
        draining: rng.below(4) == 0,
    }
}

fn export_entry(rng: &mut Rng, key: ServiceKey) -> Arc<ExportEntry> {
    Arc::new(ExportEntry {
        key,
        ports: ports(rng),
        exported_at_ms: i64::try_from(rng.below(5)).unwrap_or(0),
        spec: ExportSpec::default(),
        healthy: u32::try_from(rng.below(3)).unwrap_or(0),
        total: 2,
        headless: named(rng),
        draining: false,
    })
}

/// One random change: a peer's delta, or an export added, changed or
/// removed here.
fn step(rng: &mut Rng, imports: &mut Imports, exports: &mut ExportState, touched: &mut Touched) {
    if rng.below(3) == 0 {
        let mut entries = (*exports.entries).clone();
        let k = key(rng);
        if rng.below(3) == 0 {
            entries.remove(&k);
        } else {
            entries.insert(k.clone(), export_entry(rng, k));
        }
        let next = ExportState::new(exports.epoch, exports.version + 1, entries);
        touched.keys.extend(changed_exports(exports, &next));
        *exports = next;
        return;
    }
    let peer = ["west", "eu", "gone"][usize::try_from(rng.below(3)).unwrap_or(0)];
    let upserts = (0..rng.below(3)).map(|_| (key(rng), import(rng))).collect();
    let removals = (0..rng.below(2)).map(|_| key(rng)).collect();
    let event = TableEvent::Imports {
        peer: peer.into(),
        full: false,
        upserts,
        removals,
    };
    touched.note(&event);
    apply(imports, event);
}

#[test]
fn applying_any_sequence_of_changes_gives_the_table_a_full_build_gives() {
    let (me, peers) = (me(), peers());
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut imports = Imports::new();
        let mut exports = ExportState::new(1, 1, BTreeMap::new());
        let range = "127.77.0.0/24".parse().expect("a valid range");
        let mut vips = VipAllocator::new(range, BTreeMap::new());
        let mut services = Services::new();
        let mut headless = BTreeMap::new();
        for turn in 0..60 {
            let mut touched = Touched::default();
            for _ in 0..=rng.below(3) {
                step(&mut rng, &mut imports, &mut exports, &mut touched);
            }
            assert!(!touched.full, "deltas only");
            let mut reference_vips = vips.clone();
            update(
                &mut services,
                &touched.keys,
                &me,
                &exports,
                &peers,
                &imports,
                &mut vips,
            );
            update_headless(
                &mut headless,
                &touched.keys,
                &me,
                &exports,
                &peers,
                &imports,
                &mut vips,
            );
            let (full, named) = build_all(&me, &exports, &peers, &imports, &mut reference_vips);
            assert_eq!(
                services,
                Services::from(full),
                "seed {seed}, turn {turn}: the updated table differs from a full build"
            );
            assert_eq!(headless, named, "seed {seed}, turn {turn}: headless");
        }
    }
}

#[test]
fn only_the_changed_exports_are_reported() {
    let mut rng = Rng(7);
    let (a, b, c) = (
        ServiceKey::new("demo", "a"),
        ServiceKey::new("demo", "b"),
        ServiceKey::new("demo", "c"),
    );
    let shared = export_entry(&mut rng, b.clone());
    let before = ExportState::new(
        1,
        1,
        BTreeMap::from([
            (a.clone(), export_entry(&mut rng, a.clone())),
            (b.clone(), shared.clone()),
        ]),
    );
    let after = ExportState::new(
        1,
        2,
        BTreeMap::from([
            (b.clone(), shared),
            (c.clone(), export_entry(&mut rng, c.clone())),
        ]),
    );
    assert_eq!(changed_exports(&before, &after), [a, c]);
    assert!(changed_exports(&after, &after).is_empty());
}

#[test]
fn a_full_update_from_a_peer_asks_for_a_full_build() {
    let mut touched = Touched::default();
    touched.note(&TableEvent::Imports {
        peer: "west".into(),
        full: true,
        upserts: vec![],
        removals: vec![],
    });
    assert!(touched.full);
}
