//! The `imports` policy: which peers may serve which namespaces here
//! (DESIGN.md, "Who may serve a name").
//!
//! The one rule: without `imports`, every peer may serve every namespace
//! (namespace sameness, as in the Kubernetes MCS API); with it, a peer's
//! export of `ns/name` is used only if the entry for `ns` lists the peer,
//! or, when no entry names `ns`, the `"*"` entry does. A namespace that no
//! entry names (and no `"*"` entry) is imported from no peer. An exact
//! namespace entry overrides `"*"`, so `{namespace: payments, peers:
//! [east]}` narrows payments even beside `{namespace: "*", peers: ["*"]}`.
//!
//! Data flow: `build.rs` hands the `imports` field to [`parse`], which
//! checks every entry and returns an [`ImportsPolicy`]; the control plane's
//! service table asks [`ImportsPolicy::check`] about every peer export
//! before the export can reach DNS, VIPs or gateways, and keeps the
//! [`Refused`] reasons for `fedctl services` and metrics.

use std::collections::BTreeSet;

use super::names::label_problem;
use super::yaml::{Field, Issue};

/// The fields of one `imports` entry.
const ENTRY: &[&str] = &["namespace", "peers"];

/// Which peers' exports this cluster uses, per namespace (config
/// `imports`). The default, [`ImportsPolicy::open`], lets every peer serve
/// every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportsPolicy {
    /// `None`: no `imports` in the config. `Some`: the entries, in file
    /// order, no namespace twice.
    entries: Option<Vec<ImportEntry>>,
}

/// One `imports` entry: a namespace (or every one) and the peers it is
/// imported from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// The namespace, or `None` for `"*"`.
    pub namespace: Option<String>,
    /// The peers, or `None` for `["*"]`; an empty set imports from no peer.
    pub peers: Option<BTreeSet<String>>,
}

/// Why a peer's export was not used here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum Refused {
    /// `imports` is set and neither an entry for the namespace nor a `"*"`
    /// entry exists.
    #[error(
        "no imports entry names namespace {namespace} (and there is no \"*\" entry), so it is imported from no peer"
    )]
    NamespaceNotImported {
        /// The export's namespace.
        namespace: String,
    },
    /// The entry that applies to the namespace does not list the peer.
    #[error("imports allow namespace {namespace} only from [{allowed}]")]
    PeerNotAllowed {
        /// The export's namespace.
        namespace: String,
        /// The peers the applying entry lists, comma-separated.
        allowed: String,
    },
}

impl Refused {
    /// Every [`Refused::code`], so a metric's series can exist at 0 from
    /// the start.
    pub const CODES: [&'static str; 2] = ["namespace_not_imported", "peer_not_allowed"];

    /// A short, stable name of the reason, for metric labels and scripts:
    /// `namespace_not_imported` or `peer_not_allowed`.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::NamespaceNotImported { .. } => "namespace_not_imported",
            Refused::PeerNotAllowed { .. } => "peer_not_allowed",
        }
    }
}

impl ImportsPolicy {
    /// No `imports`: every peer may serve every namespace.
    pub fn open() -> Self {
        Self::default()
    }

    /// A policy of these entries, as `imports` in the config would give.
    /// Meant for tests and tools; [`crate::config::Config::load`] checks
    /// the entries (no namespace twice) before building one.
    pub fn with_entries(entries: Vec<ImportEntry>) -> Self {
        Self {
            entries: Some(entries),
        }
    }

    /// Whether `imports` was given at all.
    pub fn is_restricted(&self) -> bool {
        self.entries.is_some()
    }

    /// The entries, in file order; empty when unrestricted.
    pub fn entries(&self) -> &[ImportEntry] {
        self.entries.as_deref().unwrap_or_default()
    }

    /// Whether `peer`'s export of a service in `namespace` may be used.
    ///
    /// # Errors
    ///
    /// The [`Refused`] reason when the policy leaves the export out.
    pub fn check(&self, peer: &str, namespace: &str) -> Result<(), Refused> {
        let Some(entries) = &self.entries else {
            return Ok(());
        };
        // An exact entry overrides "*" (see the module docs).
        let entry = entries
            .iter()
            .find(|e| e.namespace.as_deref() == Some(namespace))
            .or_else(|| entries.iter().find(|e| e.namespace.is_none()));
        let Some(entry) = entry else {
            return Err(Refused::NamespaceNotImported {
                namespace: namespace.to_owned(),
            });
        };
        match &entry.peers {
            None => Ok(()),
            Some(peers) if peers.contains(peer) => Ok(()),
            Some(peers) => Err(Refused::PeerNotAllowed {
                namespace: namespace.to_owned(),
                allowed: peers.iter().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// The `imports` field: a list of `{namespace, peers}` entries.
pub(super) fn parse(f: &Field<'_>) -> Result<ImportsPolicy, Issue> {
    let mut entries: Vec<ImportEntry> = Vec::new();
    for item in f.items("a list of { namespace: NS, peers: [PEER, …] } entries")? {
        let entry = parse_entry(&item)?;
        if entries.iter().any(|e| e.namespace == entry.namespace) {
            let shown = entry.namespace.as_deref().unwrap_or("*");
            return Err(item.issue(format!(
                "namespace {shown:?} has two entries; merge their peers into one entry"
            )));
        }
        entries.push(entry);
    }
    Ok(ImportsPolicy::with_entries(entries))
}

fn parse_entry(item: &Field<'_>) -> Result<ImportEntry, Issue> {
    let s = item.section(ENTRY)?;
    let namespace = s.require("namespace", "namespace: payments", |f| {
        name_or_any(f, "namespace name")
    })?;
    let peers = s.require("peers", "peers: [east]", peers)?;
    Ok(ImportEntry { namespace, peers })
}

/// `peers`: `["*"]`, or a list of peer cluster names (possibly empty).
fn peers(f: &Field<'_>) -> Result<Option<BTreeSet<String>>, Issue> {
    let items = f.items("a list of peer cluster names, or [\"*\"] for every peer")?;
    let mut names = BTreeSet::new();
    let mut any = false;
    for item in &items {
        match name_or_any(item, "peer cluster name")? {
            None => any = true,
            Some(name) => {
                if !names.insert(name.clone()) {
                    return Err(item.issue(format!("peer {name} is listed twice; list it once")));
                }
            }
        }
    }
    match (any, names.is_empty()) {
        (false, _) => Ok(Some(names)),
        (true, true) => Ok(None),
        (true, false) => Err(f.issue(
            "\"*\" already means every peer; remove the other names, or remove \"*\" to allow only them",
        )),
    }
}

/// A DNS label, or `"*"` (as `None`).
fn name_or_any(f: &Field<'_>, what: &str) -> Result<Option<String>, Issue> {
    let text = f.text(&format!("a {what} or \"*\""))?;
    if text == "*" {
        return Ok(None);
    }
    match label_problem(&text) {
        None => Ok(Some(text)),
        Some(problem) => Err(f.issue(format!(
            "invalid {what} {text:?}: {problem}; use a DNS label such as east, or \"*\" for every one"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Option<BTreeSet<String>> {
        Some(list.iter().map(|s| (*s).to_owned()).collect())
    }

    fn entry(namespace: Option<&str>, peers: Option<BTreeSet<String>>) -> ImportEntry {
        ImportEntry {
            namespace: namespace.map(str::to_owned),
            peers,
        }
    }

    fn config(imports: &str) -> Result<ImportsPolicy, crate::config::ConfigError> {
        let text = format!(
            "cluster: west\nlocality: {{ region: eu, zone: eu-1a }}\ndataDir: data\n{imports}"
        );
        crate::config::Config::from_yaml(&text, std::path::Path::new("west.yaml"))
            .map(|c| c.imports)
    }

    fn problem(imports: &str) -> crate::config::ConfigError {
        config(imports).expect_err("the config is refused")
    }

    #[test]
    fn imports_parse_into_entries() {
        let p = config("imports:\n  - { namespace: demo, peers: [east, eu] }\n  - namespace: \"*\"\n    peers: [\"*\"]\n")
            .expect("valid");
        assert_eq!(
            p.entries(),
            [
                entry(Some("demo"), names(&["east", "eu"])),
                entry(None, None)
            ]
        );
        assert_eq!(config("").expect("valid"), ImportsPolicy::open());
    }

    #[test]
    fn bad_imports_name_the_field_and_the_fix() {
        let e = problem("imports:\n  - { namespace: demo, peer: [east] }\n");
        assert_eq!(
            (e.field.as_str(), e.line),
            ("imports[0].peer", Some(5)),
            "{e}"
        );
        assert!(e.message.contains("did you mean peers?"), "{e}");
        let e = problem("imports:\n  - { namespace: demo }\n");
        assert_eq!(e.field, "imports[0].peers", "{e}");
        assert!(e.message.contains("missing required field"), "{e}");
        let e = problem("imports:\n  - { namespace: Demo_1, peers: [east] }\n");
        assert_eq!(e.field, "imports[0].namespace", "{e}");
        assert!(e.message.contains("\"Demo_1\""), "{e}");
        let e = problem("imports:\n  - { namespace: demo, peers: [\"*\", east] }\n");
        assert!(e.message.contains("already means every peer"), "{e}");
        let e = problem("imports:\n  - { namespace: demo, peers: [east, east] }\n");
        assert!(e.message.contains("listed twice"), "{e}");
        let e = problem(
            "imports:\n  - { namespace: demo, peers: [east] }\n  - { namespace: demo, peers: [eu] }\n",
        );
        assert_eq!(e.field, "imports[1]", "{e}");
        assert!(e.message.contains("two entries"), "{e}");
        let e = problem("imports: { namespace: demo }\n");
        assert_eq!(e.field, "imports", "{e}");
        let e = problem("imports:\n  - demo\n");
        assert_eq!(e.field, "imports[0]", "{e}");
        assert!(e.message.contains("expected a mapping"), "{e}");
    }

    #[test]
    fn without_imports_every_peer_serves_every_namespace() {
        let open = ImportsPolicy::open();
        assert!(!open.is_restricted());
        assert_eq!(open.check("eu", "demo"), Ok(()));
    }

    #[test]
    fn a_namespace_entry_admits_only_its_peers() {
        let p = ImportsPolicy::with_entries(vec![entry(Some("demo"), names(&["east"]))]);
        assert_eq!(p.check("east", "demo"), Ok(()));
        let refused = p.check("eu", "demo").expect_err("eu is not listed");
        assert_eq!(refused.code(), "peer_not_allowed");
        assert!(Refused::CODES.contains(&refused.code()));
        assert!(refused.to_string().contains("[east]"), "{refused}");
    }

    #[test]
    fn a_namespace_no_entry_names_is_imported_from_no_peer() {
        let p = ImportsPolicy::with_entries(vec![entry(Some("demo"), names(&["east"]))]);
        let refused = p.check("east", "payments").expect_err("not named");
        assert_eq!(refused.code(), "namespace_not_imported");
        assert!(refused.to_string().contains("payments"), "{refused}");
        assert!(Refused::CODES.contains(&refused.code()));
    }

    #[test]
    fn an_exact_entry_overrides_the_star_entry() {
        let p = ImportsPolicy::with_entries(vec![
            entry(None, None),
            entry(Some("demo"), names(&["east"])),
        ]);
        assert_eq!(
            p.check("eu", "shop"),
            Ok(()),
            "\"*\" covers other namespaces"
        );
        assert!(p.check("eu", "demo").is_err(), "demo is narrowed to east");
        assert_eq!(p.check("east", "demo"), Ok(()));
    }

    #[test]
    fn an_empty_peer_list_imports_from_no_peer() {
        let p =
            ImportsPolicy::with_entries(vec![entry(None, None), entry(Some("demo"), names(&[]))]);
        assert!(p.check("east", "demo").is_err());
        assert_eq!(p.check("east", "shop"), Ok(()));
    }
}
