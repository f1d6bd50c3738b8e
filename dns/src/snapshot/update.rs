//! Indexing a snapshot from the index of the one before: per changed
//! service, not per service.
//!
//! A snapshot's services are a persistent map ([`super::ServiceRecords`]);
//! the control plane publishes each change as a new map sharing every
//! unchanged record with the one before. `OrdMap::diff` skips the shared
//! parts, so [`ZoneIndex::update`] finds the changed services in time
//! proportional to the change and updates a copy of the index (itself
//! persistent maps, so the copy is O(1)). It returns what changed
//! ([`IndexChanges`]), which the fast path uses to re-encode only the
//! names of those services.

use std::sync::Arc;

use imbl::ordmap::DiffItem;
use tracing::warn;

use super::{ServiceEntry, ServiceRecord, ZoneIndex, ZoneSnapshot, zone_name};

/// One service whose entry changed between two indexes.
#[derive(Debug, Clone)]
pub(crate) struct ServiceChange {
    /// Its entry before, if it was indexed.
    pub(crate) old: Option<Arc<ServiceEntry>>,
    /// Its entry now, if it is indexed.
    pub(crate) new: Option<Arc<ServiceEntry>>,
}

/// What [`ZoneIndex::update`] changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexChanges {
    /// The services changed, added or removed.
    pub(crate) services: Vec<ServiceChange>,
    /// Namespaces (lowercase) that hold services now and did not before.
    pub(crate) namespaces_added: Vec<String>,
    /// Namespaces (lowercase) that held services before and no longer do.
    pub(crate) namespaces_removed: Vec<String>,
}

impl ZoneIndex {
    /// The index of `snapshot`, from `previous` and the services that
    /// differ between their snapshots; `None` when the two cannot be
    /// compared that way (another zone or TTL, or a previous index that
    /// served no zone): the caller then builds the index whole.
    pub(crate) fn update(
        previous: &ZoneIndex,
        snapshot: Arc<ZoneSnapshot>,
    ) -> Option<(Self, IndexChanges)> {
        let before = previous.snapshot();
        if before.zone != snapshot.zone
            || before.ttl != snapshot.ttl
            || zone_name(&snapshot.zone).ok().as_ref() != Some(&previous.zone)
        {
            return None;
        }
        let mut index = Self {
            snapshot: Arc::clone(&snapshot),
            zone: previous.zone.clone(),
            namespaces: previous.namespaces.clone(),
        };
        let mut changes = IndexChanges::default();
        for item in before.services.diff(&snapshot.services) {
            match item {
                DiffItem::Add(_, record) => index.replace(None, Some(record), &mut changes),
                DiffItem::Remove(_, record) => index.replace(Some(record), None, &mut changes),
                DiffItem::Update { old, new } => {
                    index.replace(Some(old.1), Some(new.1), &mut changes);
                }
            }
        }
        Some((index, changes))
    }

    /// Removes `old`'s entry and indexes `new`, noting what changed.
    fn replace(
        &mut self,
        old: Option<&ServiceRecord>,
        new: Option<&ServiceRecord>,
        changes: &mut IndexChanges,
    ) {
        let mut removed = None;
        if let Some(old) = old {
            let (ns, svc) = lowercase(old);
            removed = self.remove_entry(&ns, &svc, changes);
        }
        let mut added = None;
        if let Some(new) = new {
            match self.entry_of(new) {
                Ok(entry) => {
                    let (ns, svc) = lowercase(new);
                    let entry = Arc::new(entry);
                    self.insert_entry(&ns, &svc, Arc::clone(&entry), changes);
                    added = Some(entry);
                }
                Err(error) => warn!(
                    namespace = %new.namespace,
                    service = %new.name,
                    %error,
                    "service name is not a valid DNS name; leaving it out of DNS"
                ),
            }
        }
        if removed.is_some() || added.is_some() {
            changes.services.push(ServiceChange {
                old: removed,
                new: added,
            });
        }
    }

    fn remove_entry(
        &mut self,
        ns: &str,
        svc: &str,
        changes: &mut IndexChanges,
    ) -> Option<Arc<ServiceEntry>> {
        let mut services = self.namespaces.get(ns)?.clone();
        let entry = services.remove(svc)?;
        if services.is_empty() {
            self.namespaces.remove(ns);
            note(
                &mut changes.namespaces_removed,
                &mut changes.namespaces_added,
                ns,
            );
        } else {
            self.namespaces.insert(ns.to_string(), services);
        }
        Some(entry)
    }

    fn insert_entry(
        &mut self,
        ns: &str,
        svc: &str,
        entry: Arc<ServiceEntry>,
        changes: &mut IndexChanges,
    ) {
        let mut services = self.namespaces.get(ns).cloned().unwrap_or_default();
        if services.is_empty() {
            note(
                &mut changes.namespaces_added,
                &mut changes.namespaces_removed,
                ns,
            );
        }
        services.insert(svc.to_string(), entry);
        self.namespaces.insert(ns.to_string(), services);
    }
}

/// Records `ns` in `to`, or cancels it out of `from` (a namespace emptied
/// and filled again in one update did not change).
fn note(to: &mut Vec<String>, from: &mut Vec<String>, ns: &str) {
    match from.iter().position(|n| n == ns) {
        Some(i) => {
            from.swap_remove(i);
        }
        None => to.push(ns.to_string()),
    }
}

/// The record's index key: its namespace and name, lowercase (RFC 4343).
fn lowercase(record: &ServiceRecord) -> (String, String) {
    (
        record.namespace.to_ascii_lowercase(),
        record.name.to_ascii_lowercase(),
    )
}
