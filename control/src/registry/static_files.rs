//! The static registry: a folder of Kubernetes YAML manifests, read again
//! on file events (DESIGN.md, Exporting).
//!
//! File rules ([`manifest`]): only `*.yaml` / `*.yml`, dotfiles (and
//! dot-folders) skipped, sub-folders read too, several documents per file,
//! kinds other than `v1` `Service`, `discovery.k8s.io/v1`
//! `EndpointSlice`, `gateway.networking.k8s.io/v1` `HTTPRoute` and
//! `fedmesh.io/v1alpha1` `FaultInjection` ignored, objects keyed by
//! kind/namespace/name with duplicates reported. Routes are checked by
//! [`crate::routes::RouteView`]: an invalid one is a warning and ignored.
//!
//! How a change flows: the folder is watched recursively ([`events`],
//! inotify on Linux); the watcher notes the changed paths; the registry's
//! task waits until writes pause ([`QUIET`], at most [`SETTLE_CAP`]),
//! re-reads only those paths into the [`Folder`] (which keeps each file's
//! parsed objects) and publishes the rebuilt view when it differs. A full
//! rescan every `rescan` interval (files whose size, mtime and inode did
//! not change are not read) catches lost events; while the folder cannot
//! be watched (missing, replaced, watch limits) it runs every [`RETRY`] and
//! tries to watch again.
//!
//! Nothing is forgotten on a read error ([`folder`]): a file that cannot be
//! read or parsed, or a folder that cannot be listed, keeps its last good
//! objects and is reported as a problem (`fedctl check`); only a file whose
//! entry is gone is withdrawn.

mod events;
mod folder;
mod manifest;
pub mod text;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use self::events::{Changes, Pending, Watch};
use self::folder::Folder;
use super::Registry;
use crate::model::LocalSnapshot;

/// Quiet time after the last event before the folder is read: an editor's
/// save or a generator's burst of writes is read once.
pub const QUIET: Duration = Duration::from_millis(15);
/// Longest wait after the first event of a burst, so a steady stream of
/// writes is still read and published.
pub const SETTLE_CAP: Duration = Duration::from_millis(100);
/// The full-rescan interval while the folder cannot be watched.
pub const RETRY: Duration = Duration::from_secs(1);

/// The static-files registry.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    dir: PathBuf,
    rescan: Duration,
    /// Snapshots published (for tests of the debounce).
    publishes: Arc<AtomicUsize>,
}

impl StaticFiles {
    /// The safety-net full-rescan interval a daemon should use: events
    /// carry every change; the rescan only catches lost ones.
    pub const RESCAN: Duration = Duration::from_secs(30);

    /// Watches `dir` for file events, and rescans it in full every
    /// `rescan` (see [`StaticFiles::RESCAN`]; at least [`QUIET`]).
    pub fn new(dir: impl Into<PathBuf>, rescan: Duration) -> Self {
        Self {
            dir: dir.into(),
            rescan,
            publishes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Reads `dir` once, with the same rules as the running registry: what
    /// `fedctl run` would serve from it, problems included. For checking a
    /// folder of manifests without a control plane (the examples' tests).
    pub fn load(dir: &Path) -> LocalSnapshot {
        let mut folder = Folder::new(dir);
        folder.rescan();
        folder.snapshot()
    }
}

impl Registry for StaticFiles {
    fn describe(&self) -> String {
        format!("static manifests in {}", self.dir.display())
    }

    fn run(
        self: Box<Self>,
        out: watch::Sender<Arc<LocalSnapshot>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut task = Task::new(&self, out);
            task.run(self.rescan).await;
        })
    }
}

/// What woke the task.
enum Wake {
    Event,
    Rescan,
}

/// The running registry: owns the folder state, the watch and the output.
struct Task {
    root: PathBuf,
    changes: Arc<Changes>,
    /// Shared with the blocking reads; never locked across an `.await`.
    folder: Arc<Mutex<Folder>>,
    watch: Option<Watch>,
    /// True while the folder is not watched (for logging the change).
    unwatched: bool,
    out: watch::Sender<Arc<LocalSnapshot>>,
    published: bool,
    publishes: Arc<AtomicUsize>,
}

impl Task {
    fn new(registry: &StaticFiles, out: watch::Sender<Arc<LocalSnapshot>>) -> Self {
        Self {
            root: registry.dir.clone(),
            changes: Changes::new(&registry.dir),
            folder: Arc::new(Mutex::new(Folder::new(&registry.dir))),
            watch: None,
            unwatched: false,
            out,
            published: false,
            publishes: Arc::clone(&registry.publishes),
        }
    }

    /// Reads the folder, publishes, then follows events and rescans until
    /// the future is dropped.
    async fn run(&mut self, rescan: Duration) {
        // A zero interval would spin.
        let rescan = rescan.max(QUIET);
        self.full(true).await;
        self.publish().await;
        let mut last_full = Instant::now();
        loop {
            let every = if self.watch.is_some() {
                rescan
            } else {
                rescan.min(RETRY)
            };
            let changes = Arc::clone(&self.changes);
            let wake = tokio::select! {
                () = changes.wait() => Wake::Event,
                () = tokio::time::sleep_until(last_full + every) => Wake::Rescan,
            };
            let changed = match wake {
                Wake::Event => {
                    changes.settle(QUIET, SETTLE_CAP).await;
                    let pending = changes.take();
                    if pending.rescan || pending.rearm {
                        last_full = Instant::now();
                    }
                    self.apply(pending).await
                }
                Wake::Rescan => {
                    last_full = Instant::now();
                    self.full(false).await
                }
            };
            if changed {
                self.publish().await;
            }
        }
    }

    /// Re-reads what the events name; true when anything changed.
    async fn apply(&mut self, pending: Pending) -> bool {
        if pending.rescan || pending.rearm {
            return self.full(pending.rearm).await;
        }
        let tops = pending.tops();
        if tops.is_empty() {
            return false;
        }
        self.blocking(move |folder| {
            tops.iter()
                .fold(false, |changed, path| folder.refresh(path) | changed)
        })
        .await
        .unwrap_or(false)
    }

    /// Watches the folder again if asked to or if the watch is gone or
    /// stale, then re-reads the whole folder; true when anything changed.
    /// Watching first means no change between the two is missed.
    async fn full(&mut self, rearm: bool) -> bool {
        let stale = rearm
            || !self
                .watch
                .as_ref()
                .is_some_and(|w| w.is_current(&self.root));
        let watch = self.watch.take();
        let changes = Arc::clone(&self.changes);
        let done = self
            .blocking(move |folder| {
                let (watch, changed) = if stale {
                    drop(watch);
                    let (watch, problem) = match Watch::arm(&changes) {
                        Ok(watch) => (Some(watch), None),
                        Err(error) => (None, Some(watch_problem(&error))),
                    };
                    (watch, folder.set_watch_problem(problem))
                } else {
                    (watch, false)
                };
                (watch, folder.rescan() | changed)
            })
            .await;
        let Some((watch, changed)) = done else {
            return false;
        };
        // Logged once per outage, not once per retry.
        match (watch.is_some(), self.unwatched) {
            (false, false) => warn!(
                path = %self.root.display(),
                "cannot watch the registry folder; rescanning it every second"
            ),
            (true, true) => {
                info!(path = %self.root.display(), "watching the registry folder again")
            }
            _ => {}
        }
        self.unwatched = watch.is_none();
        self.watch = watch;
        changed
    }

    /// Runs `f` on the folder off the async workers (file reads block).
    /// `None` when it panicked: the folder keeps its last state.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Folder) -> T + Send + 'static,
    ) -> Option<T> {
        let folder = Arc::clone(&self.folder);
        let task = tokio::task::spawn_blocking(move || {
            let mut folder = folder.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut folder)
        });
        match task.await {
            Ok(value) => Some(value),
            Err(error) => {
                warn!(%error, "manifest read failed; the last good view keeps serving");
                None
            }
        }
    }

    /// Publishes the folder's view if it differs from the last one (the
    /// first publish always notifies: it tells readers the registry was
    /// read, even when it holds nothing).
    async fn publish(&mut self) {
        let Some(snap) = self.blocking(|folder| folder.snapshot()).await else {
            return;
        };
        for p in &snap.problems {
            warn!(source = %p.source, problem = %p.message, "manifest problem");
        }
        for p in &snap.routes.problems {
            warn!(source = %p.source, problem = %p.message, "route ignored or incomplete");
        }
        info!(
            services = snap.services.len(),
            routes = snap.routes.routes.len(),
            problems = snap.problems.len(),
            "manifests loaded"
        );
        let sent = if self.published {
            self.out.send_if_modified(|cur| {
                let modified = **cur != snap;
                if modified {
                    *cur = Arc::new(snap);
                }
                modified
            })
        } else {
            self.out.send_replace(Arc::new(snap));
            self.published = true;
            true
        };
        if sent {
            self.publishes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The problem of a folder that cannot be watched (it can be read).
fn watch_problem(error: &notify::Error) -> String {
    format!(
        "cannot watch the folder for file events: {error}; changes are read by a full rescan every {} s instead; if inotify's limits are reached, raise the sysctls fs.inotify.max_user_watches or fs.inotify.max_user_instances",
        RETRY.as_secs()
    )
}

#[cfg(test)]
mod tests;
