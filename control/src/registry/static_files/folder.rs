//! What the registry knows of its folder: per manifest file, the version
//! read last (its [`Signature`]), the objects of its last good version and
//! the error of its current version, if any; plus the paths that could not
//! be listed. [`Folder::refresh`] re-reads one path (a file, a sub-folder
//! or the whole folder) and [`Folder::snapshot`] builds the local view.
//!
//! The one rule: only a file whose directory entry is gone is forgotten.
//! A file that cannot be read or parsed, and every file under a folder
//! that cannot be listed, keeps serving its last good objects, and the
//! error is a problem in the snapshot (`fedctl check`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::manifest::{self, ManifestError, Objects, Signature};
use crate::model::{LocalSnapshot, Problem};
use crate::registry::build::{Sourced, build};
use crate::routes::RouteView;

/// One manifest file.
#[derive(Debug)]
struct Entry {
    /// The version last read (or tried).
    sig: Signature,
    /// The objects of the last version that parsed; `None` if none did.
    objects: Option<Objects>,
    /// Why the current version is not used, if it is not.
    error: Option<ManifestError>,
}

/// The registry's knowledge of its folder.
#[derive(Debug)]
pub(super) struct Folder {
    root: PathBuf,
    files: BTreeMap<PathBuf, Entry>,
    /// Why the folder itself could not be listed in the last full read.
    root_failure: Option<String>,
    /// Sub-folders and entries that could not be listed or looked at.
    failures: BTreeMap<PathBuf, String>,
    /// True once the folder itself was listed: before that no service is
    /// known and the snapshot is `pending`.
    listed: bool,
    /// Why the folder is not watched for changes, if it is not.
    watch_problem: Option<String>,
}

impl Folder {
    /// Nothing read yet from `root`.
    pub(super) fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
            root_failure: None,
            failures: BTreeMap::new(),
            listed: false,
            watch_problem: None,
        }
    }

    /// Re-reads the whole folder (files whose signature did not change are
    /// not read again); true when anything changed.
    pub(super) fn rescan(&mut self) -> bool {
        let root = self.root.clone();
        self.refresh(&root)
    }

    /// Re-reads what is at or under `at` (a listable path under the root,
    /// or the root): new and changed files are read, files whose entry is
    /// gone are dropped, the rest keep their objects. True when anything
    /// changed.
    pub(super) fn refresh(&mut self, at: &Path) -> bool {
        if at != self.root && !std::fs::metadata(&self.root).is_ok_and(|m| m.is_dir()) {
            // The folder itself is gone (`rm -rf` sends a delete event per
            // file first): a folder gone withdraws nothing, so read it as
            // a whole, which reports it.
            let root = self.root.clone();
            return self.refresh(&root);
        }
        let listing = manifest::list(&self.root, at);
        let before = (self.root_failure.clone(), self.failures.clone());
        if at == self.root {
            self.root_failure = None;
        }
        self.failures.retain(|p, _| !p.starts_with(at));
        let mut failed = Vec::new();
        for (path, error, is_dir) in listing.failed {
            if path == self.root {
                self.root_failure = Some(error.to_string());
            } else if is_dir
                || manifest::is_manifest_name(&path)
                || self.files.keys().any(|f| f.starts_with(&path))
            {
                self.failures.insert(path.clone(), error.to_string());
            }
            failed.push(path);
        }
        if at == self.root && self.root_failure.is_none() {
            self.listed = true;
        }
        let mut changed = before != (self.root_failure.clone(), self.failures.clone());
        // What could not be listed is unknown, not gone: keep it.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with(at) && !listing.files.contains_key(*p))
            .filter(|p| !failed.iter().any(|f| p.starts_with(f)))
            .cloned()
            .collect();
        for path in gone {
            self.files.remove(&path);
            changed = true;
        }
        for (path, sig) in listing.files {
            changed |= self.load(path, sig);
        }
        changed
    }

    /// Reads one listed file unless its version is the one read last.
    fn load(&mut self, path: PathBuf, sig: Signature) -> bool {
        if let Some(entry) = self.files.get(&path) {
            // A read error is retried on every look (the open-files limit
            // passes); a parse error stays until the file changes.
            if entry.sig == sig && !matches!(entry.error, Some(ManifestError::Read(_))) {
                return false;
            }
        }
        match manifest::read(&path) {
            Ok(Some(objects)) => {
                let entry = Entry {
                    sig,
                    objects: Some(objects),
                    error: None,
                };
                self.files.insert(path, entry);
                true
            }
            // Deleted since it was listed: its delete event follows.
            Ok(None) => self.files.remove(&path).is_some(),
            Err(error) => {
                let entry = self.files.entry(path).or_insert(Entry {
                    sig,
                    objects: None,
                    error: None,
                });
                entry.sig = sig;
                entry.error = Some(error);
                true
            }
        }
    }

    /// Records why the folder is not watched (`None`: it is); true when
    /// that changed.
    pub(super) fn set_watch_problem(&mut self, problem: Option<String>) -> bool {
        let changed = self.watch_problem != problem;
        self.watch_problem = problem;
        changed
    }

    /// Builds the local view from every file's last good objects.
    pub(super) fn snapshot(&self) -> LocalSnapshot {
        let mut services: Vec<Sourced<Service>> = Vec::new();
        let mut slices: Vec<Sourced<EndpointSlice>> = Vec::new();
        let mut problems = self.read_problems();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let (mut routes, mut faults) = (Vec::new(), Vec::new());
        for (path, entry) in &self.files {
            let source = path.display().to_string();
            if let Some(error) = &entry.error {
                problems.push(file_problem(&source, error, entry.objects.is_some()));
            }
            let Some(objects) = &entry.objects else {
                continue;
            };
            for svc in &objects.services {
                let id = object_id("Service", &svc.metadata);
                match claim(&mut seen, id, &source) {
                    Ok(()) => services.push(Sourced {
                        source: source.clone(),
                        object: svc.clone(),
                    }),
                    Err(p) => problems.push(p),
                }
            }
            let sourced = |doc: &serde_json::Value| Sourced {
                source: source.clone(),
                object: doc.clone(),
            };
            routes.extend(objects.routes.iter().map(sourced));
            faults.extend(objects.faults.iter().map(sourced));
            for slice in &objects.slices {
                let id = object_id("EndpointSlice", &slice.metadata);
                match claim(&mut seen, id, &source) {
                    Ok(()) => slices.push(Sourced {
                        source: source.clone(),
                        object: slice.clone(),
                    }),
                    Err(p) => problems.push(p),
                }
            }
        }
        let mut snap = build(&services, &slices);
        snap.problems.extend(problems);
        snap.problems.sort();
        snap.pending = !self.listed;
        snap.routes = RouteView::build(&routes, &faults);
        snap
    }

    /// Problems of the folder and its sub-folders, and of the watch.
    fn read_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let root = self.root.display();
        if let Some(error) = &self.root_failure {
            let what = if self.listed {
                format!(
                    "the last good view keeps serving ({} files; nothing is withdrawn) until it can be read again",
                    self.files.len()
                )
            } else {
                "no service is known until it can be read".to_string()
            };
            problems.push(Problem {
                source: root.to_string(),
                message: format!(
                    "cannot read registry.path {root}: {error}; {what}; check that the folder exists, is a folder and is readable by the control plane, and the open-files limit (ulimit -n)"
                ),
            });
        }
        for (path, error) in &self.failures {
            let kept = self.files.keys().filter(|f| f.starts_with(path)).count();
            let what = if self.files.contains_key(path) {
                "its last good version keeps serving".to_string()
            } else if kept == 0 {
                "it is skipped".to_string()
            } else {
                format!(
                    "the last good version of the {kept} manifest file(s) under it keeps serving"
                )
            };
            problems.push(Problem {
                source: path.display().to_string(),
                message: format!(
                    "cannot read: {error}; {what}; fix it (permissions, a dangling link) or remove it"
                ),
            });
        }
        if let (Some(problem), None) = (&self.watch_problem, &self.root_failure) {
            problems.push(Problem {
                source: root.to_string(),
                message: problem.clone(),
            });
        }
        problems
    }
}

/// The problem of a file whose current version is not used.
fn file_problem(source: &str, error: &ManifestError, kept: bool) -> Problem {
    let what = match (kept, error) {
        (true, ManifestError::Read(_)) => {
            "its last good version keeps serving; fix the file (permissions, a dangling link) or remove it"
        }
        (true, _) => "its last good version keeps serving; fix the file",
        (false, _) => "the file is skipped",
    };
    Problem {
        source: source.to_string(),
        message: format!("{error}; {what}"),
    }
}

/// Records that `source` defines `id`, or reports it as a duplicate of
/// the file that defined it first.
fn claim(seen: &mut BTreeMap<String, String>, id: String, source: &str) -> Result<(), Problem> {
    match seen.get(&id) {
        Some(first) => Err(Problem {
            source: source.to_string(),
            message: format!("{id} is already defined in {first}; this copy is ignored"),
        }),
        None => {
            seen.insert(id, source.to_string());
            Ok(())
        }
    }
}

fn object_id(kind: &str, meta: &ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    )
}
