//! The static registry: a folder of Kubernetes YAML manifests, watched for
//! changes (DESIGN.md, Exporting).
//!
//! File rules: only `*.yaml` / `*.yml`, dotfiles (and dot-folders) skipped,
//! sub-folders read too, several documents per file, kinds other than `v1`
//! `Service` and `discovery.k8s.io/v1` `EndpointSlice` ignored, objects keyed
//! by kind/namespace/name with duplicates reported. A file that does not
//! parse is reported and skipped as a whole; the others keep working.
//!
//! The folder is polled: each round compares every file's size, mtime and
//! inode with the last round and re-reads only the files that changed, so
//! an edit (in place or by rename) shows within one interval.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Registry;
use super::build::{Sourced, build};
use crate::model::{LocalSnapshot, Problem};

/// How deep sub-folders are read.
const MAX_DEPTH: usize = 8;

/// The static-files registry.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    dir: PathBuf,
    interval: Duration,
}

impl StaticFiles {
    /// Watches `dir`, checking for changes every `interval`.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration) -> Self {
        Self {
            dir: dir.into(),
            interval,
        }
    }
}

impl StaticFiles {
    /// Reads `dir` once, with the same rules as the running registry: what
    /// `fedctl run` would serve from it, problems included. For checking a
    /// folder of manifests without a control plane (the examples' tests).
    pub fn load(dir: &Path) -> LocalSnapshot {
        let mut folder = Folder::default();
        folder.scan(dir);
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
            let mut folder = Folder::default();
            let mut first = true;
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let dir = self.dir.clone();
                // File reads block; keep them off the async workers.
                let scanned = tokio::task::spawn_blocking(move || {
                    let changed = folder.scan(&dir);
                    (folder, changed)
                })
                .await;
                let Ok((scanned, changed)) = scanned else {
                    warn!("manifest scan task failed; retrying");
                    folder = Folder::default();
                    continue;
                };
                folder = scanned;
                if changed || first {
                    let snap = folder.snapshot();
                    for p in &snap.problems {
                        warn!(source = %p.source, problem = %p.message, "manifest problem");
                    }
                    info!(
                        services = snap.services.len(),
                        problems = snap.problems.len(),
                        "manifests loaded"
                    );
                    if first {
                        // The first publish always notifies: it tells readers
                        // the registry was read, even when it holds nothing.
                        out.send_replace(Arc::new(snap));
                        first = false;
                    } else {
                        out.send_if_modified(|cur| {
                            if **cur == snap {
                                false
                            } else {
                                *cur = Arc::new(snap);
                                true
                            }
                        });
                    }
                }
            }
        })
    }
}

/// What identifies a file version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    len: u64,
    mtime_ns: i128,
    inode: u64,
}

/// The objects of one file, or why it was skipped.
#[derive(Debug, Clone)]
enum Parsed {
    Objects {
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
    },
    Bad(String),
}

/// The last scan of the folder.
#[derive(Debug, Default)]
struct Folder {
    files: BTreeMap<PathBuf, (Signature, Parsed)>,
    missing: Option<String>,
}

impl Folder {
    /// Re-reads changed files; returns whether anything changed.
    fn scan(&mut self, dir: &Path) -> bool {
        let mut found = BTreeMap::new();
        let missing = match list(dir, 0, &mut found) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "cannot read registry.path {}: {e}; create it and put Service manifests in it",
                dir.display()
            )),
        };
        let mut changed = missing != self.missing;
        self.missing = missing;
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !found.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.files.remove(&path);
            changed = true;
        }
        for (path, sig) in found {
            if self.files.get(&path).is_some_and(|(s, _)| *s == sig) {
                continue;
            }
            let parsed = match std::fs::read_to_string(&path) {
                Ok(text) => parse(&text),
                Err(e) => Parsed::Bad(format!("cannot read: {e}")),
            };
            self.files.insert(path, (sig, parsed));
            changed = true;
        }
        changed
    }

    /// Builds the local view from every good file.
    fn snapshot(&self) -> LocalSnapshot {
        let mut services: Vec<Sourced<Service>> = Vec::new();
        let mut slices: Vec<Sourced<EndpointSlice>> = Vec::new();
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        if let Some(m) = &self.missing {
            problems.push(Problem {
                source: "registry".into(),
                message: m.clone(),
            });
        }
        for (path, (_, parsed)) in &self.files {
            let source = path.display().to_string();
            match parsed {
                Parsed::Bad(message) => problems.push(Problem {
                    source: source.clone(),
                    message: format!("{message}; the file is skipped"),
                }),
                Parsed::Objects {
                    services: s,
                    slices: e,
                } => {
                    for svc in s {
                        let id = object_id("Service", &svc.metadata);
                        if let Some(first) = seen.insert(id.clone(), source.clone()) {
                            problems.push(duplicate(&source, &id, &first));
                            seen.insert(id, first);
                            continue;
                        }
                        services.push(Sourced {
                            source: source.clone(),
                            object: svc.clone(),
                        });
                    }
                    for slice in e {
                        let id = object_id("EndpointSlice", &slice.metadata);
                        if let Some(first) = seen.insert(id.clone(), source.clone()) {
                            problems.push(duplicate(&source, &id, &first));
                            seen.insert(id, first);
                            continue;
                        }
                        slices.push(Sourced {
                            source: source.clone(),
                            object: slice.clone(),
                        });
                    }
                }
            }
        }
        let mut snap = build(&services, &slices);
        snap.problems.extend(problems);
        snap.problems.sort();
        snap
    }
}

fn object_id(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    )
}

fn duplicate(source: &str, id: &str, first: &str) -> Problem {
    Problem {
        source: source.to_string(),
        message: format!("{id} is already defined in {first}; this copy is ignored"),
    }
}

/// Lists `*.yaml`/`*.yml` files under `dir`, skipping dotfiles.
fn list(dir: &Path, depth: usize, found: &mut BTreeMap<PathBuf, Signature>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                // An unreadable sub-folder must not hide the rest.
                let _ = list(&path, depth + 1, found);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            found.insert(
                path,
                Signature {
                    len: meta.len(),
                    mtime_ns,
                    inode: meta.ino(),
                },
            );
        }
    }
    Ok(())
}

/// Parses one file's documents, keeping Services and EndpointSlices.
///
/// The YAML parser's default budget (1024 documents, 250 000 nodes) guards
/// against untrusted input; manifests are the operator's own files, and a
/// generated one may hold tens of thousands of services, so the budget is
/// raised to match. Past it the file is reported and skipped.
fn parse(text: &str) -> Parsed {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 200_000,
            max_nodes: 20_000_000,
            max_events: 80_000_000,
        },
    };
    let docs: Vec<serde_json::Value> = match serde_saphyr::from_multiple_with_options(text, options)
    {
        Ok(d) => d,
        Err(e) => return Parsed::Bad(format!("not valid YAML: {e}")),
    };
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let field = |k: &str| {
            doc.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (api, kind) = (field("apiVersion"), field("kind"));
        let result = match (api.as_str(), kind.as_str()) {
            ("v1", "Service") => serde_json::from_value(doc).map(|s| services.push(s)),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                serde_json::from_value(doc).map(|s| slices.push(s))
            }
            // Other kinds (Deployments next to their Service) are ignored.
            _ => Ok(()),
        };
        if let Err(e) = result {
            return Parsed::Bad(format!(
                "document {} ({kind}) is not a valid {kind}: {e}",
                i + 1
            ));
        }
    }
    Parsed::Objects { services, slices }
}

#[cfg(test)]
mod tests;
