//! Passive outlier detection (DESIGN.md, Gateway: Health), one record per
//! key: a cluster (ejected when its ingress says it has nothing to serve
//! with) or an endpoint address (ejected when dials to it fail, at the
//! ingress and for local endpoints at the egress). `consecutiveFailures`
//! failures in a row eject the key for `baseEjection`, doubling with each
//! ejection up to `maxEjection`; at most `maxEjectedPercent` of a group
//! (the remote clusters of a service, the endpoints of a service) is
//! ejected at once, so that detection never takes out everything.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use fedmesh_proto::config::OutlierConfig;

/// One key's record.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    consecutive: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Record {
    fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| t > now)
    }
}

/// Outlier records of one kind of key.
#[derive(Debug)]
pub struct Outliers<K> {
    config: OutlierConfig,
    records: Mutex<HashMap<K, Record>>,
}

impl<K: Hash + Eq + Clone> Outliers<K> {
    /// No record yet.
    pub fn new(config: OutlierConfig) -> Self {
        Self {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Records a result for `key`, one of a group of `group` keys (for the
    /// max-ejected share), of which `ejected_in_group` are ejected now;
    /// returns true when this ejected it.
    pub fn record(
        &self,
        key: &K,
        ok: bool,
        group: usize,
        ejected_in_group: usize,
        now: Instant,
    ) -> bool {
        let mut records = lock(&self.records);
        if ok {
            // A success after the ejection ran out forgives the key; a
            // success of a key never seen needs no record.
            if let Some(r) = records.get_mut(key) {
                r.consecutive = 0;
                if r.ejected_until.is_some_and(|t| t <= now) {
                    records.remove(key);
                }
            }
            return false;
        }
        let r = records.entry(key.clone()).or_default();
        r.consecutive = r.consecutive.saturating_add(1);
        if r.ejected(now) || r.consecutive < self.config.consecutive_failures.max(1) {
            return false;
        }
        let cap = group * usize::from(self.config.max_ejected_percent) / 100;
        if ejected_in_group + 1 > cap {
            return false;
        }
        let factor = 1u32 << r.ejections.min(16);
        let duration = self
            .config
            .base_ejection
            .saturating_mul(factor)
            .min(self.config.max_ejection);
        r.ejected_until = Some(now + duration);
        r.ejections = r.ejections.saturating_add(1);
        r.consecutive = 0;
        true
    }

    /// Whether `key` is ejected at `now`.
    pub fn ejected(&self, key: &K, now: Instant) -> bool {
        lock(&self.records).get(key).is_some_and(|r| r.ejected(now))
    }

    /// How many of `keys` are ejected at `now`.
    pub fn ejected_among<'a>(&self, keys: impl IntoIterator<Item = &'a K>, now: Instant) -> usize
    where
        K: 'a,
    {
        let records = lock(&self.records);
        keys.into_iter()
            .filter(|k| records.get(*k).is_some_and(|r| r.ejected(now)))
            .count()
    }

    /// How many keys are ejected at `now`.
    pub fn ejected_count(&self, now: Instant) -> usize {
        lock(&self.records)
            .values()
            .filter(|r| r.ejected(now))
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
