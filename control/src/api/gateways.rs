//! What the control plane knows of this cluster's gateways, for `fedctl
//! check`: which hold a snapshot stream open (`Watch`), the status each
//! last reported (`ReportStatus`: ready, its probes of peer gateways) and
//! the end of its certificate (signed here, or as the gateway reports it).
//!
//! Data flows in from the gateway API ([`crate::api::gateway`]) and out to
//! [`crate::checks`] as [`GatewayView`]s. No lock is held across `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use fedmesh_proto::v1;

/// A gateway gone this long (no stream, no report) is forgotten, unless
/// the config names it: a renamed or scaled-down gateway stops failing
/// the check.
pub const FORGET_AFTER_MS: i64 = 10 * 60 * 1000;

/// One gateway as the control plane last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayView {
    /// Gateway name.
    pub name: String,
    /// Snapshot streams open now.
    pub watches: u32,
    /// When it last opened or closed a stream, or reported.
    pub last_seen_ms: i64,
    /// Whether its status stream is open now.
    pub reporting: bool,
    /// Its last status and when it arrived.
    pub status: Option<(v1::GatewayStatus, i64)>,
    /// The end of its newest certificate (0 when unknown).
    pub cert_not_after_ms: i64,
}

/// Every gateway of this cluster that talked to this control plane.
#[derive(Debug, Default)]
pub struct GatewayRegistry {
    gateways: Mutex<HashMap<String, GatewayView>>,
}

/// Held while a snapshot stream is open; dropping it records the close.
#[derive(Debug)]
pub struct WatchGuard {
    registry: Arc<GatewayRegistry>,
    name: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.registry.update(&self.name, |g| {
            g.watches = g.watches.saturating_sub(1);
        });
    }
}

impl GatewayRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, GatewayView>> {
        // A poisoned map is still a valid map: every update is one
        // assignment.
        self.gateways
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut GatewayView)) {
        let mut map = self.lock();
        let entry = map.entry(name.to_string()).or_insert_with(|| GatewayView {
            name: name.to_string(),
            ..GatewayView::default()
        });
        f(entry);
        entry.last_seen_ms = crate::clock::now_unix_ms();
    }

    /// Records a certificate signed for `name`.
    pub fn issued(&self, name: &str, not_after_ms: i64) {
        self.update(name, |g| {
            g.cert_not_after_ms = g.cert_not_after_ms.max(not_after_ms);
        });
    }

    /// Records an opened snapshot stream; the guard records its close.
    pub fn watch_opened(self: &Arc<Self>, name: &str) -> WatchGuard {
        self.update(name, |g| g.watches += 1);
        WatchGuard {
            registry: self.clone(),
            name: name.to_string(),
        }
    }

    /// Records a status report of `status.gateway_name`.
    pub fn reported(&self, status: v1::GatewayStatus) {
        let now = crate::clock::now_unix_ms();
        let name = status.gateway_name.clone();
        self.update(&name, |g| {
            g.reporting = true;
            g.cert_not_after_ms = g.cert_not_after_ms.max(status.cert_not_after_unix_ms);
            g.status = Some((status, now));
        });
    }

    /// Records the end of `name`'s status stream.
    pub fn report_closed(&self, name: &str) {
        self.update(name, |g| g.reporting = false);
    }

    /// Every gateway, by name, less those gone for [`FORGET_AFTER_MS`]
    /// that are not named `keep`.
    pub fn views(&self, keep: &str, now_ms: i64) -> Vec<GatewayView> {
        let mut map = self.lock();
        map.retain(|name, g| {
            name == keep
                || g.watches > 0
                || g.reporting
                || now_ms - g.last_seen_ms < FORGET_AFTER_MS
        });
        let mut out: Vec<GatewayView> = map.values().cloned().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_watch_guard_counts_the_stream_closed() {
        let registry = GatewayRegistry::new();
        let guard = registry.watch_opened("gw-1");
        assert_eq!(registry.views("", 0)[0].watches, 1);
        drop(guard);
        assert_eq!(registry.views("", 0)[0].watches, 0);
    }

    #[test]
    fn a_long_gone_gateway_is_forgotten_unless_the_config_names_it() {
        let registry = GatewayRegistry::new();
        drop(registry.watch_opened("gw-old"));
        drop(registry.watch_opened("gw-1"));
        let later = crate::clock::now_unix_ms() + FORGET_AFTER_MS + 1;
        let names: Vec<_> = registry
            .views("gw-1", later)
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["gw-1"]);
    }

    #[test]
    fn a_report_keeps_the_newest_certificate_end() {
        let registry = GatewayRegistry::new();
        registry.issued("gw-1", 2_000);
        registry.reported(v1::GatewayStatus {
            gateway_name: "gw-1".into(),
            cert_not_after_unix_ms: 1_000,
            ..Default::default()
        });
        let g = &registry.views("", 0)[0];
        assert_eq!((g.cert_not_after_ms, g.reporting), (2_000, true));
    }
}
