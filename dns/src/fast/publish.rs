//! Keeping a [`FastZone`] of the latest snapshot: one task encodes each
//! published snapshot off the query path and publishes the table with one
//! `Arc` swap; each UDP worker reads it through a [`FastReader`].
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
    let (tables, receiver) = watch::channel(Arc::new(encode(first)));
    tasks.spawn(run(snapshots, tables));
    receiver
}

async fn run(
    mut snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    tables: watch::Sender<Arc<FastZone>>,
) {
    // Bounded by the publisher: each turn waits for a new snapshot, and the
    // loop ends when the sender is dropped.
    while snapshots.changed().await.is_ok() {
        let latest = Arc::clone(&snapshots.borrow_and_update());
        // Encoding 30 000 names takes a while: keep it off the runtime's
        // worker threads, so UDP workers and hickory keep answering.
        match tokio::task::spawn_blocking(move || encode(latest)).await {
            Ok(table) => {
                tables.send_replace(Arc::new(table));
            }
            // Only a panic in encoding gets here; hickory keeps answering.
            Err(error) => debug!(%error, "encoding the zone's answers failed"),
        }
    }
}

/// The table of `snapshot`, for the zone the snapshot names.
fn encode(snapshot: Arc<ZoneSnapshot>) -> FastZone {
    match zone_name(&snapshot.zone) {
        Ok(zone) => {
            let index = ZoneIndex::build(Arc::clone(&snapshot), &zone);
            FastZone::build(snapshot, Some(&index))
        }
        // The router logs a zone it cannot serve; hickory answers it all.
        Err(_) => FastZone::build(snapshot, None),
    }
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
