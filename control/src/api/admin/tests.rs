//! The admin API driven directly through its trait, over a test cluster's
//! handles.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::token::JoinToken;
use fedmesh_proto::v1::{self, admin_server::Admin};
use tokio::sync::watch;
use tonic::{Code, Request};

use super::{AdminService, TokenIssuer};
use crate::peering::join::accept;
use crate::peering::testkit::{Side, side};
use crate::store::Role;
use crate::table::TableSnapshot;

const SLOW: Duration = Duration::from_secs(30);

fn admin(east: &Side) -> AdminService {
    let (_tx, table) = watch::channel(Arc::new(TableSnapshot::default()));
    let checks = Arc::new(|| {
        vec![v1::CheckResult {
            name: "ca".into(),
            ok: true,
            detail: "valid".into(),
            warn: false,
        }]
    });
    let tokens = TokenIssuer {
        address: "127.0.0.1:15017".into(),
        pin: east.ca.pin(),
    };
    AdminService::new(east.dialer(), table, tokens, checks)
}

#[tokio::test]
async fn a_created_token_pins_this_ca_and_is_accepted_once() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    let answer = admin(&east)
        .create_token(Request::new(v1::CreateTokenRequest { ttl_seconds: 60 }))
        .await
        .unwrap()
        .into_inner();
    let token = JoinToken::decode(&answer.token).unwrap();
    assert_eq!(
        (token.address.as_str(), token.pin),
        ("127.0.0.1:15017", east.ca.pin())
    );
    let join = v1::JoinRequest {
        secret: token.secret.to_vec(),
        joiner: Some((*west.h.me).clone()),
        taken_names: Vec::new(),
    };
    accept(&east.h, join).await.unwrap();
}

#[tokio::test]
async fn a_token_longer_than_thirty_days_is_refused() {
    let east = side("east", SLOW);
    let ttl_seconds = 31 * 24 * 3600;
    let status = admin(&east)
        .create_token(Request::new(v1::CreateTokenRequest { ttl_seconds }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("30-day maximum"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn leaving_an_unknown_peer_is_not_found() {
    let east = side("east", SLOW);
    let request = v1::LeavePeerRequest {
        peer: "nowhere".into(),
    };
    let status = admin(&east)
        .leave_peer(Request::new(request))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("`fedctl peers`"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn peers_and_checks_come_from_the_handles() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Dialer);
    let api = admin(&east);
    let peers = api
        .list_peers(Request::new(v1::ListPeersRequest {}))
        .await
        .unwrap()
        .into_inner()
        .peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (
            peers[0].name.as_str(),
            peers[0].role.as_str(),
            peers[0].state.as_str()
        ),
        ("west", "dialer", "disconnected")
    );
    assert!(
        peers[0].root_expires_unix_ms > 0,
        "the root's expiry is read"
    );
    let results = api
        .check(Request::new(v1::CheckRequest {}))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].name, "ca");
}

#[test]
fn refused_exports_join_their_service_or_stand_alone_in_key_order() {
    use fedmesh_proto::config::Refused;

    use crate::model::ServiceKey;
    use crate::table::Refusal;

    let listed = v1::GlobalServiceStatus {
        namespace: "demo".into(),
        name: "secret".into(),
        ..Default::default()
    };
    let refusal = |ns: &str, name: &str| Refusal {
        service: ServiceKey::new(ns, name),
        peer: "eu".into(),
        reason: Refused::NamespaceNotImported {
            namespace: ns.into(),
        },
    };
    let refused = [refusal("demo", "secret"), refusal("alpha", "only")];
    let out = super::with_refusals(vec![listed], &refused, "clusterset.local");
    let shown: Vec<(&str, usize)> = out
        .iter()
        .map(|s| (s.name.as_str(), s.refused.len()))
        .collect();
    assert_eq!(shown, [("only", 1), ("secret", 1)]);
    assert_eq!(out[0].dns_name, "only.alpha.svc.clusterset.local");
    assert!(out[0].clusters.is_empty() && out[0].vip.is_empty());
    assert_eq!(out[1].refused[0].code, "namespace_not_imported");
}
