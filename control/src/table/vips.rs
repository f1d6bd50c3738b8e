//! VIP allocation from `gateway.vipRange`: one VIP per global service
//! (`ns/name`) and one pinned VIP per (service, cluster) (`ns/name@cluster`).
//! Allocations are stable: kept in the store, never moved while the range
//! holds them, and reclaimed only when the range is full and the name is
//! no longer in use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use fedmesh_proto::config::Ipv4Net;

use crate::model::VipName;

/// Where VIPs come from: allocated here from `gateway.vipRange`
/// ([`VipAllocator`]), or, in Kubernetes mode, the ClusterIPs of the
/// Services the control plane creates for imports ([`ExternalVips`]).
pub trait VipSource {
    /// The VIP of `name`, if it has one.
    fn vip(&mut self, name: &VipName, in_use: &dyn Fn(&VipName) -> bool) -> Option<Ipv4Addr>;
}

impl VipSource for VipAllocator {
    fn vip(&mut self, name: &VipName, in_use: &dyn Fn(&VipName) -> bool) -> Option<Ipv4Addr> {
        self.get(name, in_use)
    }
}

/// VIPs assigned elsewhere (Kubernetes ClusterIPs), by name.
#[derive(Debug, Clone, Default)]
pub struct ExternalVips(pub std::sync::Arc<BTreeMap<VipName, Ipv4Addr>>);

impl VipSource for ExternalVips {
    fn vip(&mut self, name: &VipName, _in_use: &dyn Fn(&VipName) -> bool) -> Option<Ipv4Addr> {
        self.0.get(name).copied()
    }
}

/// Allocates and remembers VIPs.
#[derive(Debug, Clone)]
pub struct VipAllocator {
    range: Ipv4Net,
    by_name: BTreeMap<VipName, Ipv4Addr>,
    used: BTreeSet<Ipv4Addr>,
    cursor: u64,
    added: Vec<(VipName, Ipv4Addr)>,
    removed: Vec<VipName>,
}

impl VipAllocator {
    /// An allocator over `range`, starting from stored allocations; those
    /// outside the range (after a `vipRange` change) are dropped.
    pub fn new(range: Ipv4Net, stored: BTreeMap<VipName, Ipv4Addr>) -> Self {
        let mut removed = Vec::new();
        let mut by_name = BTreeMap::new();
        let mut used = BTreeSet::new();
        for (name, ip) in stored {
            if range.contains(ip) && used.insert(ip) {
                by_name.insert(name, ip);
            } else {
                removed.push(name);
            }
        }
        Self {
            range,
            by_name,
            used,
            cursor: 1,
            added: Vec::new(),
            removed,
        }
    }

    /// The VIP of `name`, allocating one if needed. When the range is full,
    /// names for which `in_use` is false are reclaimed first; `None` when
    /// even that leaves no address.
    pub fn get(&mut self, name: &VipName, in_use: impl Fn(&VipName) -> bool) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_name.get(name) {
            return Some(*ip);
        }
        let ip = match self.next_free() {
            Some(ip) => ip,
            None => {
                self.reclaim(in_use);
                self.next_free()?
            }
        };
        self.by_name.insert(name.clone(), ip);
        self.used.insert(ip);
        self.added.push((name.clone(), ip));
        Some(ip)
    }

    /// Allocations made and released since the last call, to persist.
    /// A name both released and allocated again is only in the first list.
    pub fn take_changes(&mut self) -> (Vec<(VipName, Ipv4Addr)>, Vec<VipName>) {
        let added = std::mem::take(&mut self.added);
        let mut removed = std::mem::take(&mut self.removed);
        removed.retain(|n| !added.iter().any(|(a, _)| a == n));
        (added, removed)
    }

    /// How many addresses are still free: so many new names get one
    /// without reclaiming any.
    pub fn free(&self) -> usize {
        let usable = usize::try_from(self.usable()).unwrap_or(usize::MAX);
        usable.saturating_sub(self.used.len())
    }

    /// Usable addresses: the range without its first and last address.
    fn usable(&self) -> u64 {
        self.range.size().saturating_sub(2)
    }

    fn next_free(&mut self) -> Option<Ipv4Addr> {
        let usable = self.usable();
        for _ in 0..usable {
            let n = self.cursor;
            self.cursor = if self.cursor >= usable {
                1
            } else {
                self.cursor + 1
            };
            let ip = self.range.nth(n)?;
            if !self.used.contains(&ip) {
                return Some(ip);
            }
        }
        None
    }

    fn reclaim(&mut self, in_use: impl Fn(&VipName) -> bool) {
        let stale: Vec<VipName> = self
            .by_name
            .keys()
            .filter(|n| !in_use(n))
            .cloned()
            .collect();
        for name in stale {
            if let Some(ip) = self.by_name.remove(&name) {
                self.used.remove(&ip);
                self.added.retain(|(n, _)| *n != name);
                self.removed.push(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceKey;

    /// The global VIP name of `demo/<name>`.
    fn v(name: &str) -> VipName {
        ServiceKey::new("demo", name).global_vip()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn allocations_are_stable_and_skip_the_network_address() {
        let mut a = VipAllocator::new(net("127.77.0.0/16"), BTreeMap::new());
        let first = a.get(&v("hello"), |_| true).unwrap();
        assert_eq!(first, Ipv4Addr::new(127, 77, 0, 1));
        assert_eq!(a.get(&v("hello"), |_| true), Some(first));
        let pinned = a
            .get(&ServiceKey::new("demo", "hello").pinned_vip("east"), |_| {
                true
            })
            .unwrap();
        assert_ne!(pinned, first);
        let (added, removed) = a.take_changes();
        assert_eq!(added.len(), 2);
        assert!(removed.is_empty());
        // Reloaded from the store, the same names keep the same addresses.
        let mut b = VipAllocator::new(net("127.77.0.0/16"), added.into_iter().collect());
        assert_eq!(b.get(&v("hello"), |_| true), Some(first));
        assert_ne!(b.get(&v("new"), |_| true), Some(first));
    }

    #[test]
    fn a_full_range_reclaims_names_no_longer_in_use() {
        // A /30 has two usable addresses.
        let mut a = VipAllocator::new(net("10.0.0.0/30"), BTreeMap::new());
        let x = a.get(&v("x"), |_| true).unwrap();
        a.get(&v("y"), |_| true).unwrap();
        assert_eq!(a.get(&v("z"), |_| true), None, "full and everything in use");
        let z = a.get(&v("z"), |n| *n != v("x")).unwrap();
        assert_eq!(z, x, "x's address went to z");
        let (_, removed) = a.take_changes();
        assert_eq!(removed, [v("x")]);
    }

    #[test]
    fn allocations_outside_a_new_range_are_dropped() {
        let stored = BTreeMap::from([(v("a"), Ipv4Addr::new(127, 88, 0, 1))]);
        let mut a = VipAllocator::new(net("127.77.0.0/16"), stored);
        assert_eq!(a.get(&v("a"), |_| true), Some(Ipv4Addr::new(127, 77, 0, 1)));
        let (added, removed) = a.take_changes();
        assert!(
            removed.is_empty(),
            "re-allocated, so not deleted: {removed:?}"
        );
        assert_eq!(added, [(v("a"), Ipv4Addr::new(127, 77, 0, 1))]);
    }
}
