//! Re-encoding only the names a change touched.
//!
//! A [`FastZone`] is a base table (every name of some earlier snapshot,
//! shared by `Arc`) and an overlay: the names encoded since, and those
//! removed since (tombstones). [`FastZone::update`] takes what
//! [`ZoneIndex::update`] changed and re-encodes the names of each changed
//! service, the namespace names that appeared or went, and the apex (its
//! SOA carries the serial). The overlay is a persistent map, so the update
//! costs the names changed, not the zone. Once the overlay holds more than
//! a quarter of the base (and at least [`MIN_OVERLAY`] names), the next
//! update encodes the whole zone again into a new base: amortised, a few
//! names' encoding per changed name.

use std::sync::Arc;

use hickory_proto::rr::Name;

use super::{Encoded, FastZone, service_names, wire};
use crate::snapshot::{IndexChanges, ZoneIndex, ZoneSnapshot};

/// The overlay size below which no rebuild is asked for.
const MIN_OVERLAY: usize = 4096;

impl FastZone {
    /// The table of `snapshot`, from `previous` and what changed between
    /// their indexes (`index` is the new snapshot's).
    pub(crate) fn update(
        previous: &FastZone,
        snapshot: Arc<ZoneSnapshot>,
        index: &ZoneIndex,
        changes: &IndexChanges,
    ) -> FastZone {
        let Some(before) = &previous.zone else {
            return FastZone::build(snapshot, Some(index));
        };
        let limit = MIN_OVERLAY.max(before.names.len() / 4);
        if before.overlay.len() >= limit {
            return FastZone::build(snapshot, Some(index));
        }
        let mut zone = before.with_serial(index);
        let base = index.zone();
        // Tombstones first: a name both removed and added is added.
        for change in &changes.services {
            if let Some(old) = &change.old {
                for name in service_names(old) {
                    zone.forget(&name);
                }
            }
        }
        for ns in &changes.namespaces_removed {
            if let Some(name) = super::prepend(&[ns.as_bytes(), b"svc"], base) {
                zone.forget(&name);
            }
        }
        for change in &changes.services {
            if let Some(new) = &change.new {
                for name in service_names(new) {
                    zone.insert(index, &name);
                }
            }
        }
        for ns in &changes.namespaces_added {
            if let Some(name) = super::prepend(&[ns.as_bytes(), b"svc"], base) {
                zone.insert(index, &name);
            }
        }
        // The apex's SOA answer carries the serial.
        zone.insert(index, base);
        FastZone {
            snapshot,
            zone: Some(zone),
        }
    }
}

impl Encoded {
    /// A copy sharing the base and overlay, with the negative answers of
    /// `index` (their SOA carries the serial).
    fn with_serial(&self, index: &ZoneIndex) -> Self {
        let (nodata, nxdomain) = super::negatives(index);
        Self {
            wire: self.wire.clone(),
            names: Arc::clone(&self.names),
            overlay: self.overlay.clone(),
            nodata,
            nxdomain,
        }
    }

    /// Marks `name` as absent.
    fn forget(&mut self, name: &Name) {
        self.overlay.insert(wire(name).into(), None);
    }
}

#[cfg(test)]
mod tests;
