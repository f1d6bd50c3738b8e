//! The table's owner task: applies events, rebuilds what they touched and
//! publishes snapshots.
//!
//! Each turn coalesces every queued event, notes what it touches
//! ([`Touched`]), then either merges only those services again
//! ([`incremental::update`]) or, when the change is wider, builds the
//! whole table ([`build_all`], the reference). Either way the snapshot is
//! published only when something a reader sees changed, and the
//! persistent map shares every unchanged service with the snapshot
//! before, so readers (DNS, gateways) can diff two snapshots cheaply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{debug, warn};

use super::incremental::{self, Services, Touched, changed_exports, vips_needed};
use super::vips::{ExternalVips, VipAllocator, VipSource};
use super::{
    Imports, LocalCluster, PeerLink, Refusal, TableEvent, TableSnapshot, TableTask, VipMode,
    build_all, headless, policy,
};
use crate::exports::ExportState;
use crate::model::ServiceKey;

/// What the owner task keeps between turns.
struct Owner {
    imports: Imports,
    allocator: Option<VipAllocator>,
    version: u64,
    touched: Touched,
    exports: Option<Arc<ExportState>>,
    peers: Vec<PeerLink>,
    services: Services,
    headless: BTreeMap<ServiceKey, headless::HeadlessService>,
}

/// Runs the table's owner task.
pub async fn run(mut t: TableTask) {
    let allocator = match &t.vips {
        VipMode::Range(range) => {
            let stored = t.store.vips().unwrap_or_else(|error| {
                warn!(%error, "cannot read VIP allocations; allocating anew");
                BTreeMap::new()
            });
            Some(VipAllocator::new(*range, stored))
        }
        VipMode::External(_) => None,
    };
    let mut owner = Owner {
        imports: load_imports(&t.store),
        allocator,
        version: 0,
        touched: Touched::default(),
        exports: None,
        peers: Vec::new(),
        services: Services::new(),
        headless: BTreeMap::new(),
    };
    owner.touched.all();
    loop {
        // Coalesce: apply every event already queued before rebuilding.
        while let Ok(event) = t.events.try_recv() {
            owner.apply(event);
        }
        owner.turn(&mut t).await;
        tokio::select! {
            event = t.events.recv() => match event {
                Some(event) => owner.apply(event),
                None => return,
            },
            r = t.exports.changed() => if r.is_err() { return },
            r = t.peer_changes.changed() => if r.is_err() { return },
            r = external_changed(&mut t.vips) => match r {
                Ok(()) => owner.touched.all(),
                Err(_) => return,
            },
        }
    }
}

impl Owner {
    fn apply(&mut self, event: TableEvent) {
        self.touched.note(&event);
        apply(&mut self.imports, event);
    }

    /// Reads the inputs, rebuilds what changed and publishes.
    async fn turn(&mut self, t: &mut TableTask) {
        let exports = t.exports.borrow_and_update().clone();
        match &self.exports {
            Some(last) => self.touched.keys.extend(changed_exports(last, &exports)),
            None => self.touched.all(),
        }
        self.exports = Some(Arc::clone(&exports));
        t.peer_changes.borrow_and_update();
        let peers = (t.peers)();
        if peers != self.peers {
            self.touched.all();
            self.peers.clone_from(&peers);
        }
        self.imports
            .retain(|peer, _| peers.iter().any(|p| p.name == *peer));
        let started = Instant::now();
        let touched = std::mem::take(&mut self.touched);
        // A restricted policy judges every export: its refusals come
        // from a full pass.
        let incremental = !touched.full
            && !t.imports_policy.is_restricted()
            && self.room(&t.me, &exports, &touched, &peers);
        let (admitted, refused) = policy::admit(&t.imports_policy, &peers, &self.imports);
        let inputs = Inputs {
            me: &t.me,
            exports: &exports,
            peers: &peers,
            imports: &admitted,
            keys: incremental.then_some(&touched.keys),
        };
        let tables = (&mut self.services, &mut self.headless);
        match (&mut self.allocator, &mut t.vips) {
            (Some(range), _) => {
                rebuild(tables, &inputs, range);
                persist_vips(&t.store, range).await;
            }
            (None, VipMode::External(ips)) => {
                let mut external = ExternalVips(ips.borrow_and_update().clone());
                rebuild(tables, &inputs, &mut external);
            }
            (None, VipMode::Range(_)) => {
                *tables.0 = Services::new();
                tables.1.clear();
            }
        }
        let headless = self.headless.clone();
        drop(admitted);
        let built = started.elapsed();
        let services = self.services.clone();
        self.version = publish(&t.out, self.version, services, headless, refused);
        debug!(
            build_us = built.as_micros() as u64,
            publish_us = (started.elapsed() - built).as_micros() as u64,
            touched = touched.keys.len(),
            incremental,
            version = self.version,
            "stage timing: table"
        );
    }

    /// Whether the allocator has room for every VIP merging `touched` and
    /// the headless endpoints may ask for, so that none needs to reclaim.
    fn room(
        &self,
        me: &LocalCluster,
        exports: &ExportState,
        touched: &Touched,
        peers: &[PeerLink],
    ) -> bool {
        let Some(range) = &self.allocator else {
            // External VIPs are never reclaimed here.
            return true;
        };
        let endpoints = incremental::endpoints_of(&touched.keys, me, exports, peers, &self.imports);
        range.free() >= vips_needed(touched.keys.len(), peers.len()) + endpoints
    }
}

/// What one rebuild reads.
struct Inputs<'a> {
    me: &'a LocalCluster,
    exports: &'a ExportState,
    peers: &'a [PeerLink],
    imports: &'a Imports,
    /// The services to merge again, or `None` for a full build.
    keys: Option<&'a BTreeSet<ServiceKey>>,
}

/// Rebuilds the services and the headless services: the touched keys,
/// or all.
fn rebuild(
    (services, headless): (
        &mut Services,
        &mut BTreeMap<ServiceKey, headless::HeadlessService>,
    ),
    i: &Inputs<'_>,
    vips: &mut dyn VipSource,
) {
    match i.keys {
        Some(keys) => {
            // `room` made sure no allocation reclaims: nothing asks.
            incremental::update(services, keys, i.me, i.exports, i.peers, i.imports, vips);
            incremental::update_headless(headless, keys, i.me, i.exports, i.peers, i.imports, vips);
        }
        None => {
            let (all, named) = build_all(i.me, i.exports, i.peers, i.imports, vips);
            *services = Services::from(all);
            *headless = named;
        }
    }
}

/// Publishes a snapshot when the services or the refusals changed, and
/// always the first build, even when empty: readers (the import Service
/// controller) wait for it before acting. Returns the version published.
fn publish(
    out: &watch::Sender<Arc<TableSnapshot>>,
    version: u64,
    services: Services,
    headless: BTreeMap<ServiceKey, headless::HeadlessService>,
    refused: Vec<Refusal>,
) -> u64 {
    let unchanged = {
        let last = out.borrow();
        log_new_refusals(&last.refused, &refused);
        // Cheap: the maps share what did not change, and the comparison
        // skips shared parts.
        services == last.services && headless == last.headless && refused == last.refused
    };
    if unchanged && version > 0 {
        return version;
    }
    let version = version + 1;
    debug!(
        version,
        services = services.len(),
        refused = refused.len(),
        "service table changed"
    );
    out.send_replace(Arc::new(TableSnapshot {
        version,
        services,
        headless,
        refused,
    }));
    version
}

/// One warning per export the policy newly refuses, so an operator sees a
/// peer trying to serve a name it may not.
fn log_new_refusals(before: &[Refusal], now: &[Refusal]) {
    for r in now.iter().filter(|r| !before.contains(r)) {
        warn!(peer = %r.peer, service = %r.service, reason = %r.reason, "export refused by the imports policy");
    }
}

/// Waits for new external VIPs; never resolves in range mode.
async fn external_changed(vips: &mut VipMode) -> Result<(), watch::error::RecvError> {
    match vips {
        VipMode::External(ips) => ips.changed().await,
        VipMode::Range(_) => std::future::pending().await,
    }
}

/// Applies one event to the imports.
pub(super) fn apply(imports: &mut Imports, event: TableEvent) {
    match event {
        TableEvent::Imports {
            peer,
            full,
            upserts,
            removals,
        } => {
            let services = imports.entry(peer).or_default();
            if full {
                services.clear();
            }
            for key in removals {
                services.remove(&key);
            }
            services.extend(upserts);
        }
    }
}

fn load_imports(store: &crate::store::Store) -> Imports {
    let stored = match store.imports() {
        Ok(s) => s,
        Err(error) => {
            warn!(%error, "cannot read stored imports; waiting for peers to resend them");
            return Imports::new();
        }
    };
    stored
        .into_iter()
        .map(|(peer, p)| {
            let services = p
                .services
                .iter()
                .filter_map(|(key, record)| Some((key.clone(), record.to_import()?)))
                .collect();
            (peer, services)
        })
        .collect()
}

async fn persist_vips(store: &Arc<crate::store::Store>, vips: &mut VipAllocator) {
    let (added, removed) = vips.take_changes();
    if added.is_empty() && removed.is_empty() {
        return;
    }
    let store = store.clone();
    let saved = tokio::task::spawn_blocking(move || store.update_vips(&added, &removed)).await;
    if !matches!(saved, Ok(Ok(()))) {
        warn!("cannot persist VIP allocations; they may change after a restart");
    }
}
