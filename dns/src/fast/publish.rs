//! Keeping a [`FastZone`] of the latest snapshot: one task encodes each
//! published snapshot off the query path and publishes the table with one
//! `Arc` swap; each UDP worker reads it through a [`FastReader`]. A
//! snapshot that follows the one encoded last costs only its changed
//! services: the task keeps that snapshot's index and updates both
//! (`ZoneIndex::update`, `FastZone::update`).
//!
//! A query never waits for encoding. While the table of the newest
//! snapshot is still being built, the reader says so and the query goes to
//! hickory, which reads the snapshot itself: an answer reflects a snapshot
//! as soon as it is published, on both paths.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

use super::FastZone;
use crate::snapshot::{ZoneIndex, ZoneSnapshot, zone_name};

/// Starts, in `tasks`, the task that encodes every snapshot published on
/// `snapshots`, and returns the channel of the tables. Must be called
/// within a tokio runtime. The task ends when `snapshots`' sender is
/// dropped; the readers then keep the last table.
pub(crate) fn spawn(
    snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<Arc<FastZone>> {
    let first = Arc::clone(&snapshots.borrow());
    let (index, table) = encode(None, first);
    let (tables, receiver) = watch::channel(Arc::new(table));
    tasks.spawn(run(snapshots, tables, index));
    receiver
}

async fn run(
    mut snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    tables: watch::Sender<Arc<FastZone>>,
    mut index: Option<Arc<ZoneIndex>>,
) {
    // Bounded by the publisher: each turn waits for a new snapshot, and the
    // loop ends when the sender is dropped.
    while snapshots.changed().await.is_ok() {
        let latest = Arc::clone(&snapshots.borrow_and_update());
        let previous = index
            .take()
            .map(|index| (index, Arc::clone(&tables.borrow())));
        // Encoding a whole zone of 30 000 names takes a while: keep it off
        // the runtime's worker threads, so UDP workers and hickory keep
        // answering.
        match tokio::task::spawn_blocking(move || encode(previous, latest)).await {
            Ok((next, table)) => {
                index = next;
                tables.send_replace(Arc::new(table));
            }
            // Only a panic in encoding gets here; hickory keeps answering.
            Err(error) => debug!(%error, "encoding the zone's answers failed"),
        }
    }
}

/// The table of `snapshot` (and its index), for the zone the snapshot
/// names: updated from `previous` (the last table and its snapshot's
/// index) when it can be, else encoded whole.
fn encode(
    previous: Option<(Arc<ZoneIndex>, Arc<FastZone>)>,
    snapshot: Arc<ZoneSnapshot>,
) -> (Option<Arc<ZoneIndex>>, FastZone) {
    let started = std::time::Instant::now();
    if let Some((index, table)) = previous
        && Arc::ptr_eq(index.snapshot(), table.snapshot())
        && let Some((index, changes)) = ZoneIndex::update(&index, Arc::clone(&snapshot))
    {
        let indexed = started.elapsed();
        let table = FastZone::update(&table, snapshot, &index, &changes);
        timing(started, indexed, changes.services.len());
        return (Some(Arc::new(index)), table);
    }
    match zone_name(&snapshot.zone) {
        Ok(zone) => {
            let index = ZoneIndex::build(Arc::clone(&snapshot), &zone);
            let indexed = started.elapsed();
            let table = FastZone::build(snapshot, Some(&index));
            timing(started, indexed, usize::MAX);
            (Some(Arc::new(index)), table)
        }
        // The router logs a zone it cannot serve; hickory answers it all.
        Err(_) => (None, FastZone::build(snapshot, None)),
    }
}

/// The debug line the convergence bench reads; `changed` is `usize::MAX`
/// for a whole zone.
fn timing(started: std::time::Instant, indexed: std::time::Duration, changed: usize) {
    debug!(
        index_us = indexed.as_micros() as u64,
        encode_us = (started.elapsed() - indexed).as_micros() as u64,
        whole = changed == usize::MAX,
        changed = changed.min(u32::MAX as usize),
        "stage timing: dns_fast"
    );
}

/// One UDP worker's view of the tables.
#[derive(Debug, Clone)]
pub(crate) struct FastReader {
    snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    tables: watch::Receiver<Arc<FastZone>>,
    current: Arc<FastZone>,
    /// Whether `current` is the table of the last snapshot seen.
    fresh: bool,
}

impl FastReader {
    /// A reader of `tables`, checked against the latest of `snapshots`.
    pub(crate) fn new(
        snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
        tables: watch::Receiver<Arc<FastZone>>,
    ) -> Self {
        let current = Arc::clone(&tables.borrow());
        Self {
            snapshots,
            tables,
            current,
            // Checked on the first query.
            fresh: false,
        }
    }

    /// The table of the latest published snapshot, or `None` while it is
    /// still being built.
    ///
    /// The common case is one atomic load (`has_changed`); the watch
    /// channels' read locks are taken only after a publish, and only to
    /// clone an `Arc`.
    pub(crate) fn current(&mut self) -> Option<&Arc<FastZone>> {
        if self.fresh && !self.snapshots.has_changed().unwrap_or(false) {
            return Some(&self.current);
        }
        let latest = Arc::clone(&self.snapshots.borrow_and_update());
        if !Arc::ptr_eq(self.current.snapshot(), &latest) {
            self.current = Arc::clone(&self.tables.borrow());
        }
        self.fresh = Arc::ptr_eq(self.current.snapshot(), &latest);
        self.fresh.then_some(&self.current)
    }
}
