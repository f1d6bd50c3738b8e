//! Egress limits (DESIGN.md, Gateway: Limits): a token bucket of new
//! connections per service (`gateway.rateLimit`, off by default) and a cap
//! on connections carried to one target cluster at once
//! (`gateway.maxConnectionsPerTarget`, default 10000). Connect and idle
//! timeouts live where they apply (egress, splice).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fedmesh_proto::config::GatewayConfig;

use crate::state::ServiceKey;

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Every egress limit.
#[derive(Debug)]
pub struct Limits {
    rate: u32,
    burst: u32,
    buckets: Mutex<HashMap<ServiceKey, TokenBucket>>,
    max_per_target: u32,
    per_target: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

/// One connection counted against a target; released when dropped.
#[derive(Debug)]
pub struct TargetPermit(Arc<AtomicU32>);

impl Drop for TargetPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    /// Limits from the gateway config.
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            rate: config.rate_limit.connections_per_second,
            burst: config.rate_limit.burst,
            buckets: Mutex::new(HashMap::new()),
            max_per_target: config.max_connections_per_target.max(1),
            per_target: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a new connection to `service` is within its rate.
    pub fn admit(&self, service: &ServiceKey, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(service.clone())
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst, now))
            .try_take(now)
    }

    /// A slot on `cluster`, unless it already carries the maximum.
    pub fn acquire(&self, cluster: &str) -> Option<TargetPermit> {
        let counter = {
            let mut map = self.per_target.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(cluster.to_string()).or_default().clone()
        };
        let max = self.max_per_target;
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| TargetPermit(counter))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(extra: &str) -> GatewayConfig {
        fedmesh_proto::config::Config::from_yaml(
            &format!(
                "cluster: east\nlocality: {{ region: r, zone: z }}\ndataDir: ./d\ngateway:\n{extra}"
            ),
            std::path::Path::new("/tmp/x.yaml"),
        )
        .unwrap()
        .gateway
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(
            b.try_take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        // Refill stops at the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.try_take(later)));
        assert!(!b.try_take(later));
    }

    #[test]
    fn rate_limits_are_per_service_and_off_by_default() {
        let t = Instant::now();
        let off = Limits::new(&config("  name: gw-1\n"));
        assert!((0..10_000).all(|_| off.admit(&("demo".into(), "a".into()), t)));
        let on = Limits::new(&config(
            "  rateLimit: { connectionsPerSecond: 2, burst: 2 }\n",
        ));
        let a = ("demo".to_string(), "a".to_string());
        let b = ("demo".to_string(), "b".to_string());
        assert!(on.admit(&a, t) && on.admit(&a, t));
        assert!(!on.admit(&a, t));
        assert!(on.admit(&b, t), "b has its own bucket");
    }

    #[test]
    fn a_target_carries_at_most_its_maximum_and_permits_free_slots() {
        let l = Limits::new(&config("  maxConnectionsPerTarget: 2\n"));
        let first = l.acquire("west").unwrap();
        let _second = l.acquire("west").unwrap();
        assert!(l.acquire("west").is_none());
        assert!(l.acquire("eu").is_some(), "other targets are not affected");
        drop(first);
        assert!(l.acquire("west").is_some());
    }
}
