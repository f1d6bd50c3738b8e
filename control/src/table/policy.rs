//! Where the `imports` policy meets the peers' exports: the one gate
//! between what peers say they serve and what this cluster uses.
//!
//! The owner task calls [`admit`] on the stored imports before every
//! rebuild: admitted exports go on to [`super::build`] (and so to DNS
//! answers, VIPs and gateway targets); refused ones become [`Refusal`]s in
//! the published snapshot, for `fedctl services` and metrics. The rule
//! itself is [`ImportsPolicy::check`] (DESIGN.md, "Who may serve a name").
//! The stored imports are left whole, so a config change that opens a
//! namespace serves it at once, without asking peers to resend.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fedmesh_proto::config::{ImportsPolicy, Refused};

use super::{Imports, PeerLink};
use crate::model::{LinkState, ServiceKey};

/// A peer's export this cluster's `imports` policy left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal {
    /// The refused service.
    pub service: ServiceKey,
    /// The peer that exports it.
    pub peer: String,
    /// Why it was refused.
    pub reason: Refused,
}

/// The imports the policy lets through (borrowed when it lets everything
/// through) and the refused ones, sorted by service then peer. Only
/// connected and stale peers' exports are judged: a disconnected peer's
/// count for nothing either way.
pub fn admit<'a>(
    policy: &ImportsPolicy,
    peers: &[PeerLink],
    imports: &'a Imports,
) -> (Cow<'a, Imports>, Vec<Refusal>) {
    if !policy.is_restricted() {
        return (Cow::Borrowed(imports), Vec::new());
    }
    let mut admitted = Imports::new();
    let mut refused = Vec::new();
    for (peer, services) in imports {
        let live = peers
            .iter()
            .any(|p| p.name == *peer && p.state != LinkState::Disconnected);
        let mut kept = BTreeMap::new();
        for (key, import) in services {
            match policy.check(peer, &key.namespace) {
                Ok(()) => {
                    kept.insert(key.clone(), import.clone());
                }
                Err(reason) if live => refused.push(Refusal {
                    service: key.clone(),
                    peer: peer.clone(),
                    reason,
                }),
                Err(_) => {}
            }
        }
        admitted.insert(peer.clone(), kept);
    }
    refused.sort();
    (Cow::Owned(admitted), refused)
}

/// How many exports are refused, by peer and reason code
/// ([`Refused::code`]): what a metric of refused exports reports.
pub fn count_by_peer_and_reason(refused: &[Refusal]) -> BTreeMap<(String, &'static str), u64> {
    let mut counts = BTreeMap::new();
    for r in refused {
        *counts.entry((r.peer.clone(), r.reason.code())).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fedmesh_proto::config::ImportEntry;

    use super::*;
    use crate::model::{Affinity, ImportedService, Locality};

    fn peer(name: &str, state: LinkState) -> PeerLink {
        PeerLink {
            name: name.into(),
            locality: Locality {
                region: "r".into(),
                zone: "z".into(),
            },
            gateway_address: format!("{name}:15443"),
            state,
        }
    }

    fn import() -> ImportedService {
        ImportedService {
            draining: false,
            ports: vec![],
            exported_at_ms: 1,
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            healthy: 1,
            total: 1,
            headless: None,
        }
    }

    fn imports(list: &[(&str, &str, &str)]) -> Imports {
        let mut out = Imports::new();
        for (peer, ns, name) in list {
            out.entry((*peer).to_owned())
                .or_default()
                .insert(ServiceKey::new(*ns, *name), import());
        }
        out
    }

    /// `imports: [{namespace: demo, peers: [east]}]`.
    fn demo_from_east() -> ImportsPolicy {
        ImportsPolicy::with_entries(vec![ImportEntry {
            namespace: Some("demo".into()),
            peers: Some(BTreeSet::from(["east".to_owned()])),
        }])
    }

    fn keys(imports: &Imports, peer: &str) -> Vec<String> {
        imports
            .get(peer)
            .map(|s| s.keys().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn an_open_policy_lets_everything_through_unchanged() {
        let all = imports(&[("eu", "demo", "secret")]);
        let (admitted, refused) = admit(
            &ImportsPolicy::open(),
            &[peer("eu", LinkState::Connected)],
            &all,
        );
        assert!(matches!(admitted, Cow::Borrowed(_)));
        assert!(refused.is_empty());
    }

    #[test]
    fn an_excluded_peers_export_is_refused_with_its_reason() {
        let all = imports(&[
            ("east", "demo", "secret"),
            ("eu", "demo", "secret"),
            ("eu", "shop", "cart"),
        ]);
        let peers = [
            peer("east", LinkState::Connected),
            peer("eu", LinkState::Stale),
        ];
        let (admitted, refused) = admit(&demo_from_east(), &peers, &all);
        assert_eq!(keys(&admitted, "east").len(), 1);
        assert!(keys(&admitted, "eu").is_empty(), "{admitted:?}");
        let shown: Vec<(&str, &str, &str)> = refused
            .iter()
            .map(|r| {
                (
                    r.peer.as_str(),
                    r.service.namespace.as_str(),
                    r.reason.code(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("eu", "demo", "peer_not_allowed"),
                ("eu", "shop", "namespace_not_imported"),
            ]
        );
        let counts = count_by_peer_and_reason(&refused);
        assert_eq!(counts[&("eu".to_owned(), "peer_not_allowed")], 1);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn a_disconnected_peers_exports_are_not_listed_as_refused() {
        let all = imports(&[("eu", "demo", "secret")]);
        let peers = [peer("eu", LinkState::Disconnected)];
        let (admitted, refused) = admit(&demo_from_east(), &peers, &all);
        assert!(refused.is_empty());
        assert!(keys(&admitted, "eu").is_empty());
    }
}
