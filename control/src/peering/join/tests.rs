//! The join handshake: the acceptor's refusals driven directly, and a whole
//! join over TLS against a real tonic server on 127.0.0.1:0.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::token::{JoinToken, secret_hash_hex};
use fedmesh_proto::transport::tls_incoming;
use fedmesh_proto::v1::{self, peering_server::PeeringServer};
use tokio::net::TcpListener;
use tonic::Code;

use super::{JoinError, accept, join};
use crate::model::LinkState;
use crate::peering::handles::server_tls;
use crate::peering::server::PeeringService;
use crate::peering::testkit::{Side, eventually, side};
use crate::store::{Role, TokenRecord};

const SLOW: Duration = Duration::from_secs(30);
const FAR_FUTURE: i64 = i64::MAX / 2;

/// Stores a join token of `east` with `secret`, expiring at `expires`.
fn issue(east: &Side, secret: [u8; 32], expires: i64) {
    let record = TokenRecord {
        created_unix_ms: 0,
        expires_unix_ms: expires,
        used_unix_ms: None,
        used_by: None,
    };
    east.h
        .store
        .put_token(&secret_hash_hex(&secret), &record)
        .unwrap();
}

fn request(joiner: &Side, secret: [u8; 32]) -> v1::JoinRequest {
    v1::JoinRequest {
        secret: secret.to_vec(),
        joiner: Some((*joiner.h.me).clone()),
        taken_names: Vec::new(),
    }
}

async fn refusal(east: &Side, request: v1::JoinRequest) -> tonic::Status {
    let before = east.h.store.peers().unwrap().len();
    let status = accept(&east.h, request).await.unwrap_err();
    assert_eq!(
        east.h.store.peers().unwrap().len(),
        before,
        "a refused join stores nothing"
    );
    status
}

#[tokio::test]
async fn a_valid_token_stores_the_joiner_and_answers_with_this_cluster() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    issue(&east, [1; 32], FAR_FUTURE);
    let answer = accept(&east.h, request(&west, [1; 32])).await.unwrap();
    assert_eq!(answer.acceptor.unwrap().name, "east");
    let stored = east.h.store.peers().unwrap();
    assert_eq!(
        (stored[0].name.as_str(), stored[0].role),
        ("west", Role::Acceptor)
    );
    assert_eq!(east.state("west"), Some(LinkState::Disconnected));
}

/// What is changed in the joiner's info, how, and the refusal expected.
type Clash = (&'static str, fn(&mut v1::ClusterInfo), Code, &'static str);

#[tokio::test]
async fn a_joiner_clashing_with_this_cluster_is_refused_by_field() {
    let east = side("east", SLOW);
    issue(&east, [1; 32], FAR_FUTURE);
    let cases: [Clash; 3] = [
        (
            "name",
            |i| i.name = "east".into(),
            Code::FailedPrecondition,
            "like this one",
        ),
        (
            "trust domain",
            |i| i.trust_domain = "east.fedmesh".into(),
            Code::FailedPrecondition,
            "this cluster's own",
        ),
        (
            "zone",
            |i| i.dns_zone = "other.local".into(),
            Code::FailedPrecondition,
            "DNS zone mismatch",
        ),
    ];
    for (what, mutate, code, text) in cases {
        let mut req = request(&side("west", SLOW), [1; 32]);
        mutate(req.joiner.as_mut().unwrap());
        let status = refusal(&east, req).await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(
            status.message().contains(text),
            "{what}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn unknown_used_and_expired_tokens_are_refused() {
    let (east, west, eu) = (side("east", SLOW), side("west", SLOW), side("eu", SLOW));
    let unknown = refusal(&east, request(&west, [9; 32])).await;
    assert_eq!(unknown.code(), Code::PermissionDenied);
    assert!(
        unknown.message().contains("not known here"),
        "{}",
        unknown.message()
    );

    issue(&east, [1; 32], FAR_FUTURE);
    accept(&east.h, request(&west, [1; 32])).await.unwrap();
    let used = refusal(&east, request(&eu, [1; 32])).await;
    assert_eq!(used.code(), Code::PermissionDenied);
    assert!(
        used.message().contains("already used (by west"),
        "{}",
        used.message()
    );

    issue(&east, [2; 32], 1);
    let expired = refusal(&east, request(&eu, [2; 32])).await;
    assert_eq!(expired.code(), Code::PermissionDenied);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );
}

#[tokio::test]
async fn a_joiner_clashing_with_a_peer_is_refused() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    issue(&east, [1; 32], FAR_FUTURE);
    // Another cluster named west, with its own CA.
    let impostor = side("west", SLOW);
    let status = refusal(&east, request(&impostor, [1; 32])).await;
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("with another CA"),
        "{}",
        status.message()
    );
    // A new cluster that claims west's trust domain.
    let mut req = request(&side("eu", SLOW), [1; 32]);
    req.joiner.as_mut().unwrap().trust_domain = "west.fedmesh".into();
    let status = refusal(&east, req).await;
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("already belongs to peer west"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_malformed_request_names_the_field() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    let mut req = request(&west, [1; 32]);
    req.secret.truncate(5);
    let status = refusal(&east, req).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("secret"), "{}", status.message());
    let mut req = request(&west, [1; 32]);
    req.joiner = None;
    assert!(refusal(&east, req).await.message().contains("joiner"));
}

/// Serves east's peering API over TLS on 127.0.0.1:0; returns the address.
async fn serve(east: &Side) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dialer = east.dialer();
    let tls = server_tls(&dialer.cert, east.h.peers.trust()).unwrap();
    let service = PeeringServer::new(PeeringService::new(east.h.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tls_incoming(listener, tls, "peering")),
    );
    addr.to_string()
}

#[tokio::test]
async fn a_join_over_tls_peers_both_sides_and_the_dialer_connects() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    let addr = serve(&east).await;
    let token = JoinToken::generate(&addr, east.ca.pin()).unwrap();
    issue(&east, token.secret, FAR_FUTURE);

    let record = join(&west.dialer(), &token).await.unwrap();
    assert_eq!((record.name.as_str(), record.role), ("east", Role::Dialer));
    assert_eq!(
        record.endpoint, addr,
        "the dialer dials the token's address"
    );
    eventually("both sides connected", || {
        west.state("east") == Some(LinkState::Connected)
            && east.state("west") == Some(LinkState::Connected)
    })
    .await;
    assert_eq!(east.h.store.peers().unwrap()[0].name, "west");
}

#[tokio::test]
async fn a_join_whose_pin_is_another_ca_fails_before_the_secret_is_sent() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    let addr = serve(&east).await;
    let token = JoinToken::generate(&addr, west.ca.pin()).unwrap();
    issue(&east, token.secret, FAR_FUTURE);
    let err = join(&west.dialer(), &token).await.unwrap_err();
    assert!(matches!(err, JoinError::Unreachable { .. }), "{err}");
    assert!(west.h.store.peers().unwrap().is_empty());
    // The token was never presented, so it is still unused.
    let eu = side("eu", SLOW);
    accept(&east.h, request(&eu, token.secret)).await.unwrap();
}

#[tokio::test]
async fn the_same_join_again_gets_the_same_answer_not_token_used() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    issue(&east, [1; 32], FAR_FUTURE);
    let first = accept(&east.h, request(&west, [1; 32])).await.unwrap();
    // The joiner lost the answer (crash, timeout) and runs the join again.
    let retry = accept(&east.h, request(&west, [1; 32])).await.unwrap();
    assert_eq!(first, retry);
    assert_eq!(east.h.store.peers().unwrap().len(), 1);
    assert_eq!(east.state("west"), Some(LinkState::Disconnected));
}

#[tokio::test]
async fn a_join_over_tls_retried_after_it_succeeded_is_done_not_refused() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    let addr = serve(&east).await;
    let token = JoinToken::generate(&addr, east.ca.pin()).unwrap();
    issue(&east, token.secret, FAR_FUTURE);
    let first = join(&west.dialer(), &token).await.unwrap();
    let again = join(&west.dialer(), &token).await.unwrap();
    assert_eq!(first, again, "the retry returns the stored peering");
    assert_eq!(west.h.store.peers().unwrap(), vec![first]);
}

#[tokio::test]
async fn a_joiner_does_not_replace_a_live_peer_of_the_same_name() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    // West already peers with another cluster named east (own CA and
    // trust domain), so only the name clashes.
    let mut old_east = side("east", SLOW);
    Arc::make_mut(&mut old_east.h.me).trust_domain = "old-east.fedmesh".into();
    west.add_peer(&old_east, Role::Dialer);
    let before = west.h.store.peers().unwrap();
    let addr = serve(&east).await;
    let token = JoinToken::generate(&addr, east.ca.pin()).unwrap();
    issue(&east, token.secret, FAR_FUTURE);
    let err = join(&west.dialer(), &token).await.unwrap_err();
    match &err {
        JoinError::Refused { status, .. } => {
            assert_eq!(status.code(), Code::AlreadyExists, "{err}");
            assert!(
                status
                    .message()
                    .contains("west already has another peer named east"),
                "{err}"
            );
        }
        other => panic!("the issuer must refuse the clash: {other}"),
    }
    assert_eq!(west.h.store.peers().unwrap(), before, "the live peer stays");
    assert_eq!(
        west.h.peers.record("east").map(|r| r.roots_pem),
        Some(before[0].roots_pem.clone())
    );
    // Nothing on the issuer either, and the token is still unused.
    assert!(
        east.h.store.peers().unwrap().is_empty(),
        "no ghost on the issuer"
    );
    accept(&east.h, request(&side("eu", SLOW), token.secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_joiner_refuses_a_clashing_trust_domain_before_the_issuer_stores() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    // West already peers with "old", which has east's trust domain.
    let mut old = side("old", SLOW);
    Arc::make_mut(&mut old.h.me).trust_domain = "east.fedmesh".into();
    west.add_peer(&old, Role::Dialer);
    let addr = serve(&east).await;
    let token = JoinToken::generate(&addr, east.ca.pin()).unwrap();
    issue(&east, token.secret, FAR_FUTURE);
    let err = join(&west.dialer(), &token).await.unwrap_err();
    assert!(
        matches!(
            err,
            JoinError::Clash(crate::store::JoinRefusal::TrustDomainTaken { .. })
        ),
        "{err}"
    );
    assert!(
        east.h.store.peers().unwrap().is_empty(),
        "no ghost on the issuer"
    );
    assert_eq!(
        west.h.store.peers().unwrap().len(),
        1,
        "the live peer stays"
    );
    // The token was never presented, so it still works for another cluster.
    accept(&east.h, request(&side("eu", SLOW), token.secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_joiner_with_a_huge_or_unsafe_region_is_refused_by_field() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    issue(&east, [1; 32], FAR_FUTURE);
    for region in ["r".repeat(65_536), "eu\u{1b}[31m".into()] {
        let mut req = request(&west, [1; 32]);
        req.joiner.as_mut().unwrap().locality = Some(v1::Locality {
            region,
            zone: "z".into(),
        });
        let status = refusal(&east, req).await;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("field joiner.locality is refused: field locality.region"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 400, "the value is cut");
    }
}
