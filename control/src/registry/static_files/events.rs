//! File events: a `notify` watcher (inotify on Linux) on the folder, and
//! [`Changes`], where its events wait for the registry's task.
//!
//! The watch is recursive because the registry reads sub-folders. The
//! watcher's thread only notes which paths changed (bounded: past
//! [`MAX_PATHS`] it asks for a full rescan instead) and wakes the task; the
//! task waits for the burst to settle ([`Changes::settle`]), takes the
//! paths and re-reads just those.
//!
//! Events can be lost or stop: the kernel queue overflows (notify flags
//! the event "rescan"), the folder is deleted, moved or replaced (its
//! watch ends), a watch limit is reached. Each of these asks for a rescan
//! and, where the watch itself is gone, for a new watch ([`Pending`]); the
//! registry's slow periodic rescan catches whatever still slips through.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use super::manifest::listable;

/// Most distinct paths noted between two reads; past it one full rescan
/// is cheaper than many small reads (and memory stays bounded).
pub(super) const MAX_PATHS: usize = 4096;

/// What happened since the registry last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pending {
    /// Paths (as the registry names them) that changed.
    pub(super) paths: BTreeSet<PathBuf>,
    /// Events were lost or cannot be trusted: read the whole folder.
    pub(super) rescan: bool,
    /// The watch itself ended (the folder was deleted or moved): watch
    /// again, then read the whole folder.
    pub(super) rearm: bool,
}

impl Pending {
    /// The paths to re-read: those with no ancestor among the others (a
    /// sub-folder's listing covers its files).
    pub(super) fn tops(&self) -> Vec<PathBuf> {
        let mut tops: Vec<PathBuf> = Vec::new();
        // Sorted order puts a folder before everything under it.
        for path in &self.paths {
            if !tops.last().is_some_and(|t| path.starts_with(t)) {
                tops.push(path.clone());
            }
        }
        tops
    }
}

/// Where the watcher's thread leaves events for the registry's task.
#[derive(Debug)]
pub(super) struct Changes {
    /// The folder as configured (the registry's paths start with it).
    root: PathBuf,
    /// The folder as the watcher reports it (absolute).
    watched: PathBuf,
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Changes {
    /// Nothing pending for the folder `root`.
    pub(super) fn new(root: &Path) -> Arc<Self> {
        // notify makes relative paths absolute against the current folder.
        let watched = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir().map_or_else(|_| root.to_path_buf(), |cwd| cwd.join(root))
        };
        Arc::new(Self {
            root: root.to_path_buf(),
            watched,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
        })
    }

    /// Notes one event (or watch error) from the watcher's thread.
    pub(super) fn handle(&self, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // A failed read of the queue, or a new sub-folder that could
                // not be watched (the watch limit): trust nothing.
                warn!(%error, "file watch error; watching the registry folder again");
                self.note(|p| {
                    p.rescan = true;
                    p.rearm = true;
                });
                return;
            }
        };
        if event.need_rescan() {
            // IN_Q_OVERFLOW: the kernel dropped events (inotify(7)).
            self.note(|p| p.rescan = true);
            return;
        }
        if !changes_content(&event.kind) {
            return;
        }
        self.note(|p| {
            for path in &event.paths {
                self.add(p, &event.kind, path);
            }
        });
    }

    fn add(&self, pending: &mut Pending, kind: &EventKind, path: &Path) {
        let Ok(rel) = path.strip_prefix(&self.watched) else {
            return;
        };
        if rel.as_os_str().is_empty() {
            // The folder itself: deleted or moved away ends its watch
            // (IN_DELETE_SELF, IN_MOVE_SELF); anything else (chmod) may
            // change what can be read.
            pending.rescan = true;
            pending.rearm |= matches!(
                kind,
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            );
            return;
        }
        let path = self.root.join(rel);
        if atomic_writer_swap(kind, rel) {
            pending.rescan = true;
            return;
        }
        if !listable(&self.root, &path) {
            return;
        }
        if pending.paths.len() < MAX_PATHS {
            pending.paths.insert(path);
        } else {
            pending.paths.clear();
            pending.rescan = true;
        }
    }

    fn note(&self, f: impl FnOnce(&mut Pending)) {
        {
            // A panic elsewhere while holding the lock leaves valid data.
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut pending);
        }
        self.wake.notify_one();
    }

    /// Takes what is pending, leaving nothing.
    pub(super) fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Returns when something was noted since the last [`Changes::take`]
    /// (or at once if it already was).
    pub(super) async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Waits until no event came for `quiet`, or `cap` after the call, so a
    /// burst of writes (an editor's save, a generator writing 30 files) is
    /// read once, and a steady stream of writes still is read every `cap`.
    pub(super) async fn settle(&self, quiet: Duration, cap: Duration) {
        let cap_at = Instant::now() + cap;
        loop {
            let quiet_at = (Instant::now() + quiet).min(cap_at);
            tokio::select! {
                // Events noted now are in the next take(): no wake-up is
                // owed for them.
                () = self.wake.notified() => {
                    if Instant::now() >= cap_at {
                        return;
                    }
                }
                () = tokio::time::sleep_until(quiet_at) => return,
            }
        }
    }
}

/// False for events of reading: the registry's own reads of its files
/// cause them (IN_OPEN, IN_CLOSE_NOWRITE), and they change nothing.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// True when `rel` (relative to the folder) is Kubernetes' atomic
/// writer swapping a ConfigMap or Secret volume: it writes a new
/// `..<timestamp>` folder and renames the `..data` symlink onto it, and
/// the visible files are symlinks through `..data`. Dot-entries are not
/// read, so no event names those files: the swap asks for a rescan.
fn atomic_writer_swap(kind: &EventKind, rel: &Path) -> bool {
    let top_level = rel.components().count() == 1;
    let name = rel.to_string_lossy();
    top_level
        && name.starts_with("..")
        && matches!(
            kind,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_))
        )
}

/// A live watch of the folder: dropping it stops the watcher's thread.
pub(super) struct Watch {
    _watcher: RecommendedWatcher,
    /// The folder watched (device, inode): when the path names another
    /// folder (replaced, or a symlink re-pointed) the watch is stale.
    identity: Option<(u64, u64)>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Watches the folder of `changes`, recursively. Blocks while notify
    /// adds a watch per sub-folder.
    ///
    /// # Errors
    /// When the folder is missing or unreadable, or inotify's limits
    /// (`fs.inotify.max_user_instances`, `max_user_watches`) are reached.
    pub(super) fn arm(changes: &Arc<Changes>) -> notify::Result<Self> {
        let sink = Arc::clone(changes);
        let mut watcher = notify::recommended_watcher(move |event| sink.handle(event))?;
        watcher.watch(&changes.root, RecursiveMode::Recursive)?;
        Ok(Self {
            _watcher: watcher,
            identity: identity(&changes.root),
        })
    }

    /// True while `root` still names the folder this watch watches.
    pub(super) fn is_current(&self, root: &Path) -> bool {
        self.identity.is_some() && identity(root) == self.identity
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests;
