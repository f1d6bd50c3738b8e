//! One manifest file and one folder listing, without state: which files
//! count ([`listable`], [`list`]), what identifies a file version without
//! reading it ([`Signature`]) and what a file holds ([`parse`]).
//!
//! A listing never turns an error into "no files": what could not be
//! listed or looked at is returned in [`Listing::failed`], so that the
//! caller keeps what it knew under those paths.
//!
//! Reading ([`read`]) never blocks and is bounded: the file is opened
//! non-blocking (a FIFO named `*.yaml` would otherwise block the open until
//! a writer appears, freezing the registry for good), only a regular file
//! (a symlink counts as its target) is read, and at most
//! [`MAX_FILE_BYTES`]; anything else is a problem of that file.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use fedmesh_proto::routes::{FAULT_API_VERSION, FAULT_KIND, ROUTE_API_VERSION, ROUTE_KIND};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Largest manifest file read; a bigger one is reported, not read.
pub(super) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `O_NONBLOCK` of Linux's generic fcntl.h (x86, Arm, RISC-V, PowerPC):
/// with it, opening a FIFO for reading returns at once (open(2)); on a
/// regular file it changes nothing. Elsewhere 0, and the file type check
/// after the open still refuses what is not a regular file.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "powerpc64"
    )
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "powerpc64"
    )
)))]
const O_NONBLOCK: i32 = 0;

/// How deep sub-folders are read (the folder itself is depth 0).
pub(super) const MAX_DEPTH: usize = 8;

/// What identifies a file version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Signature {
    len: u64,
    mtime_ns: i128,
    inode: u64,
}

impl Signature {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// The Services, EndpointSlices and route documents of one file.
#[derive(Debug, Clone, Default)]
pub(super) struct Objects {
    /// `v1` Services, in file order.
    pub(super) services: Vec<Service>,
    /// `discovery.k8s.io/v1` EndpointSlices, in file order.
    pub(super) slices: Vec<EndpointSlice>,
    /// `gateway.networking.k8s.io/v1` HTTPRoutes, unchecked (a bad one is
    /// a problem of that route, not of the file: the rest of the file
    /// serves).
    pub(super) routes: Vec<serde_json::Value>,
    /// `fedmesh.io/v1alpha1` FaultInjections, unchecked.
    pub(super) faults: Vec<serde_json::Value>,
}

/// Why a file's objects could not be taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum ManifestError {
    /// The file is listed but cannot be opened or read (EMFILE, EACCES, a
    /// dangling symlink).
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    /// A FIFO, socket or device named like a manifest.
    #[error("not a regular file ({0}); only regular files (or symlinks to them) are read")]
    NotRegular(&'static str),
    /// Past [`MAX_FILE_BYTES`].
    #[error("{bytes} bytes is more than the {max} bytes a manifest file may have; split it")]
    TooLarge {
        /// The file's size (at least; it may still grow).
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// The text is not YAML (or is past the parser's budget).
    #[error("not valid YAML: {0}")]
    Yaml(#[source] serde_saphyr::Error),
    /// A document of a kind we read does not fit that kind.
    #[error("document {index} ({kind}) is not a valid {kind}: {source}")]
    Object {
        /// 1-based document number in the file.
        index: usize,
        /// Its `kind`.
        kind: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// What one listing of a folder (or a part of it) found.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Manifest files and their signatures.
    pub(super) files: BTreeMap<PathBuf, Signature>,
    /// Paths that could not be listed or looked at, with why; whether each
    /// was a folder (`read_dir` failed) rather than an entry.
    pub(super) failed: Vec<(PathBuf, io::Error, bool)>,
}

/// True for a path under `root` that the registry reads or may read
/// below: no component (relative to `root`) starts with a dot, and it is
/// not past [`MAX_DEPTH`]. `root` itself is listable.
pub(super) fn listable(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut depth = 0;
    for c in rel.components() {
        match c {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => depth += 1,
            _ => return false,
        }
    }
    // A file at depth n sits in a folder at depth n - 1.
    depth <= MAX_DEPTH + 1
}

/// True for a `*.yaml` / `*.yml` name.
pub(super) fn is_manifest_name(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
}

/// Lists the manifest files at or under `at`, a listable path under
/// `root` (or `root` itself). A path that is not there (no directory
/// entry at all) lists as empty: it was deleted.
pub(super) fn list(root: &Path, at: &Path) -> Listing {
    let mut listing = Listing::default();
    let depth = at.strip_prefix(root).map_or(0, |r| r.components().count());
    if at != root {
        match std::fs::symlink_metadata(at) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return listing,
            Err(e) => {
                listing.failed.push((at.to_path_buf(), e, false));
                return listing;
            }
            Ok(_) => {}
        }
        match std::fs::metadata(at) {
            Err(e) => {
                listing.failed.push((at.to_path_buf(), e, false));
                return listing;
            }
            Ok(meta) if !meta.is_dir() => {
                if is_manifest_name(at) {
                    listing.files.insert(at.to_path_buf(), Signature::of(&meta));
                }
                return listing;
            }
            Ok(_) if depth > MAX_DEPTH => return listing,
            Ok(_) => {}
        }
    }
    walk(at, depth, &mut listing);
    listing
}

/// Lists `dir` (at `depth`) and its sub-folders into `listing`.
fn walk(dir: &Path, depth: usize, listing: &mut Listing) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            listing.failed.push((dir.to_path_buf(), e, true));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                // The rest of this folder is unknown: keep what was there.
                listing.failed.push((dir.to_path_buf(), e, true));
                return;
            }
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a linked file or folder counts as its target.
        match std::fs::metadata(&path) {
            Err(e) => listing.failed.push((path, e, false)),
            Ok(meta) if meta.is_dir() => {
                if depth < MAX_DEPTH {
                    walk(&path, depth + 1, listing);
                }
            }
            Ok(meta) => {
                if is_manifest_name(&path) {
                    listing.files.insert(path, Signature::of(&meta));
                }
            }
        }
    }
}

/// Parses one file's documents, keeping Services, EndpointSlices,
/// HTTPRoutes and FaultInjections.
///
/// The YAML parser's default budget (1024 documents, 250 000 nodes) guards
/// against untrusted input; manifests are the operator's own files, and a
/// generated one may hold tens of thousands of services, so the budget is
/// raised to match. Past it the file is reported, like any bad file.
pub(super) fn parse(text: &str) -> Result<Objects, ManifestError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 200_000,
            max_nodes: 20_000_000,
            max_events: 80_000_000,
        },
    };
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(ManifestError::Yaml)?;
    let mut objects = Objects::default();
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
            ("v1", "Service") => serde_json::from_value(doc).map(|s| objects.services.push(s)),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                serde_json::from_value(doc).map(|s| objects.slices.push(s))
            }
            (ROUTE_API_VERSION, ROUTE_KIND) => {
                objects.routes.push(doc);
                Ok(())
            }
            (FAULT_API_VERSION, FAULT_KIND) => {
                objects.faults.push(doc);
                Ok(())
            }
            // Other kinds (Deployments next to their Service) are ignored.
            _ => Ok(()),
        };
        result.map_err(|source| ManifestError::Object {
            index: i + 1,
            kind: kind.clone(),
            source,
        })?;
    }
    Ok(objects)
}

/// Reads and parses one file. `Ok(None)`: the file is gone (deleted since
/// it was listed: no directory entry any more), which is not an error.
pub(super) fn read(path: &Path) -> Result<Option<Objects>, ManifestError> {
    match read_text(path) {
        Ok(text) => parse(&text).map(Some),
        Err(ManifestError::Read(e))
            if e.kind() == io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path)
                    .is_err_and(|m| m.kind() == io::ErrorKind::NotFound) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The text of a regular file, opened without blocking, at most
/// [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> Result<String, ManifestError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(ManifestError::Read)?;
    let meta = file.metadata().map_err(ManifestError::Read)?;
    if !meta.is_file() {
        return Err(ManifestError::NotRegular(file_type_name(&meta)));
    }
    let max = MAX_FILE_BYTES;
    if meta.len() > max {
        return Err(ManifestError::TooLarge {
            bytes: meta.len(),
            max,
        });
    }
    // The file may grow between the stat and the read: take one byte past
    // the bound to tell.
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ManifestError::Read)?;
    if bytes.len() as u64 > max {
        return Err(ManifestError::TooLarge {
            bytes: bytes.len() as u64,
            max,
        });
    }
    String::from_utf8(bytes)
        .map_err(|e| ManifestError::Read(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// What kind of non-regular file `meta` is, for the problem text.
fn file_type_name(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}
