//! Tests of the verifiers driven directly (no sockets), the pinned verifier
//! and `LiveCert`. SPIFFE IDs, certificates and the bundle are tested beside
//! their code; real handshakes are in `handshake_tests.rs`.

use std::sync::Arc;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::test_pki::{Ca, LeafSpec, init};
use super::*;

// ---------------------------------------------------------------- helpers

/// A shared bundle trusting `cas`.
fn trust(cas: &[&Ca]) -> SharedTrust {
    let mut bundle = TrustBundle::default();
    for ca in cas {
        bundle.insert(ca.peer()).expect("test peer inserts");
    }
    SharedTrust::new(bundle)
}

fn ident(err: &rustls::Error) -> &IdentityError {
    IdentityError::from_rustls(err)
        .unwrap_or_else(|| panic!("not an identity error inside rustls: {err:?}"))
}

/// Runs a client verifier on `chain` (leaf first) at the current time.
fn client_check(
    v: &PeerClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<(), rustls::Error> {
    v.verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .map(|_| ())
}

/// Runs a server verifier on `chain` (leaf first) at the current time.
fn server_check(
    v: &dyn ServerCertVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<(), rustls::Error> {
    let name = ServerName::try_from("ignored.example").expect("static name");
    v.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .map(|_| ())
}

// ---------------------------------------------------------------- verifiers

#[test]
fn good_leaf_is_accepted_by_client_and_server_verifiers() {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let trust = trust(&[&east, &west]);
    let client_v = PeerClientVerifier::new(trust.clone(), true);
    let server_v = PeerServerVerifier::new(trust.clone(), "west", PathRule::control());

    let leaf = west.control();
    client_check(&client_v, &leaf.chain()).expect("[leaf, ca] accepted from client");
    client_check(&client_v, std::slice::from_ref(&leaf.cert)).expect("[leaf] accepted from client");
    server_check(server_v.as_ref(), &leaf.chain()).expect("accepted from server");
    server_check(server_v.as_ref(), std::slice::from_ref(&leaf.cert))
        .expect("[leaf] accepted from server");

    let (peer, id) = identify_peer(&trust.snapshot(), &leaf.cert).expect("identified");
    assert_eq!(peer.cluster, "west");
    assert_eq!(id, SpiffeId::control("west.fedmesh"));
}

#[test]
fn cert_from_another_peers_root_is_rejected() {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let trust = trust(&[&east, &west]);
    // East's CA signs a certificate claiming to be west's control plane.
    let forged = east.leaf_with_uris(&["spiffe://west.fedmesh/control"]);

    let client_v = PeerClientVerifier::new(trust.clone(), true);
    let err = client_check(&client_v, &forged.chain()).expect_err("spoofed");
    assert!(
        matches!(ident(&err), IdentityError::ChainInvalid { peer, .. } if peer == "west"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not signed by any of these roots"),
        "{err}"
    );

    let server_v = PeerServerVerifier::new(trust.clone(), "west", PathRule::Any);
    let err = server_check(server_v.as_ref(), &forged.chain()).expect_err("spoofed");
    assert!(
        matches!(ident(&err), IdentityError::ChainInvalid { .. }),
        "{err:?}"
    );

    assert!(matches!(
        identify_peer(&trust.snapshot(), &forged.cert),
        Err(IdentityError::ChainInvalid { .. })
    ));
}

#[test]
fn spiffe_id_outside_the_peers_trust_domain_is_rejected() {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let trust = trust(&[&east, &west]);
    let dial_east = PeerServerVerifier::new(trust.clone(), "east", PathRule::Any);

    // A genuine west certificate where east was dialed.
    let err = server_check(dial_east.as_ref(), &west.control().chain()).expect_err("not east");
    assert!(
        matches!(ident(&err), IdentityError::WrongTrustDomain { expected, got }
            if expected == "east.fedmesh" && got == "west.fedmesh"),
        "{err:?}"
    );

    // East's own CA issuing outside east's trust domain does not help either.
    let stray = east.leaf_with_uris(&["spiffe://elsewhere.fedmesh/control"]);
    let err = server_check(dial_east.as_ref(), &stray.chain()).expect_err("wrong td");
    assert!(
        matches!(ident(&err), IdentityError::WrongTrustDomain { .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_trust_domain_is_rejected() {
    init();
    let (east, evil) = (Ca::new("east"), Ca::new("evil"));
    let v = PeerClientVerifier::new(trust(&[&east]), true);
    let err = client_check(&v, &evil.control().chain()).expect_err("unknown");
    assert!(
        matches!(ident(&err), IdentityError::UnknownTrustDomain { td } if td == "evil.fedmesh"),
        "{err:?}"
    );
}

#[test]
fn dialing_a_cluster_not_in_the_bundle_is_rejected() {
    init();
    let west = Ca::new("west");
    let v = PeerServerVerifier::new(trust(&[]), "west", PathRule::Any);
    let err = server_check(v.as_ref(), &west.control().chain()).expect_err("unknown peer");
    assert!(matches!(ident(&err), IdentityError::UnknownPeer { cluster } if cluster == "west"));
}

#[test]
fn expired_leaf_is_rejected_with_its_expiry_date() {
    init();
    let west = Ca::new("west");
    let trust = trust(&[&west]);
    let leaf = west.expired_control();
    let date = inspect_cert(&leaf.cert)
        .expect("parses")
        .not_after
        .format(&Rfc3339)
        .expect("formats");

    let client_v = PeerClientVerifier::new(trust.clone(), true);
    let err = client_check(&client_v, &leaf.chain()).expect_err("expired");
    assert!(
        matches!(ident(&err), IdentityError::Expired { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&date), "{err} should name {date}");

    let server_v = PeerServerVerifier::new(trust, "west", PathRule::Any);
    let err = server_check(server_v.as_ref(), &leaf.chain()).expect_err("expired");
    assert!(err.to_string().contains("expired at"), "{err}");
}

#[test]
fn not_yet_valid_leaf_is_rejected() {
    init();
    let west = Ca::new("west");
    let now = OffsetDateTime::now_utc();
    let mut spec = LeafSpec::new("future", &["spiffe://west.fedmesh/control"]);
    spec.not_before = now + Duration::days(1);
    spec.not_after = now + Duration::days(2);
    let v = PeerClientVerifier::new(trust(&[&west]), true);
    let err = client_check(&v, &west.leaf(spec).chain()).expect_err("future");
    assert!(
        matches!(ident(&err), IdentityError::NotYetValid { .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_der_and_missing_spiffe_id_are_rejected_by_verifiers() {
    init();
    let west = Ca::new("west");
    let trust = trust(&[&west]);
    let client_v = PeerClientVerifier::new(trust.clone(), true);
    let server_v = PeerServerVerifier::new(trust, "west", PathRule::Any);

    let garbage = [CertificateDer::from(vec![0x30, 0x82, 0xff, 0xff, 0x00])];
    let err = client_check(&client_v, &garbage).expect_err("garbage");
    assert!(
        matches!(ident(&err), IdentityError::Malformed { .. }),
        "{err:?}"
    );
    let err = server_check(server_v.as_ref(), &garbage).expect_err("garbage");
    assert!(
        matches!(ident(&err), IdentityError::Malformed { .. }),
        "{err:?}"
    );

    let anonymous = west.leaf_with_uris(&[]);
    let err = client_check(&client_v, &anonymous.chain()).expect_err("no id");
    assert!(matches!(ident(&err), IdentityError::NoSpiffeId), "{err:?}");
    let err = server_check(server_v.as_ref(), &anonymous.chain()).expect_err("no id");
    assert!(matches!(ident(&err), IdentityError::NoSpiffeId), "{err:?}");
}

#[test]
fn exact_control_rule_rejects_a_gateway_cert() {
    init();
    let east = Ca::new("east");
    let v = PeerServerVerifier::new(trust(&[&east]), "east", PathRule::Exact("/control".into()));
    let err = server_check(v.as_ref(), &east.gateway("gw-1").chain()).expect_err("gateway");
    assert!(
        matches!(ident(&err), IdentityError::WrongPath { got, .. } if got == "/gateway/gw-1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("exactly \"/control\""), "{err}");
    server_check(v.as_ref(), &east.control().chain()).expect("control accepted");
}

#[test]
fn gateway_prefix_rule_accepts_any_gateway_and_rejects_control() {
    init();
    let east = Ca::new("east");
    let v = PeerServerVerifier::new(trust(&[&east]), "east", PathRule::any_gateway());
    server_check(v.as_ref(), &east.gateway("gw-1").chain()).expect("gw-1");
    server_check(v.as_ref(), &east.gateway("gw-2").chain()).expect("gw-2");
    let err = server_check(v.as_ref(), &east.control().chain()).expect_err("control");
    assert!(
        matches!(ident(&err), IdentityError::WrongPath { .. }),
        "{err:?}"
    );
}

#[test]
fn extended_key_usage_must_fit_the_side() {
    init();
    let east = Ca::new("east");
    let trust = trust(&[&east]);
    let mut spec = LeafSpec::new("client only", &["spiffe://east.fedmesh/control"]);
    spec.eku = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_only = east.leaf(spec);
    let server_v = PeerServerVerifier::new(trust.clone(), "east", PathRule::Any);
    let err = server_check(server_v.as_ref(), &client_only.chain()).expect_err("no serverAuth");
    assert!(err.to_string().contains("extended key usage"), "{err}");
    let client_v = PeerClientVerifier::new(trust, true);
    client_check(&client_v, &client_only.chain()).expect("clientAuth is enough for clients");
}

#[test]
fn trust_bundle_update_is_seen_by_an_existing_verifier() {
    init();
    let west = Ca::new("west");
    let shared = SharedTrust::default();
    let client_v = PeerClientVerifier::new(shared.clone(), true);
    let server_v = PeerServerVerifier::new(shared.clone(), "west", PathRule::Any);
    let leaf = west.control();
    assert!(client_check(&client_v, &leaf.chain()).is_err());
    assert!(server_check(server_v.as_ref(), &leaf.chain()).is_err());

    shared
        .update(|b| b.insert(west.peer()))
        .expect("west joins");
    client_check(&client_v, &leaf.chain()).expect("trusted after update");
    server_check(server_v.as_ref(), &leaf.chain()).expect("trusted after update");

    shared.update(|b| b.remove("west"));
    assert!(
        client_check(&client_v, &leaf.chain()).is_err(),
        "refused after leave"
    );
    assert!(
        server_check(server_v.as_ref(), &leaf.chain()).is_err(),
        "refused after leave"
    );
}

#[test]
fn overlapping_roots_old_and_new_are_both_accepted() {
    init();
    // Rotation: same CA name, new key; the bundle carries both roots.
    let old = Ca::with_cn("west", "west CA");
    let new = Ca::with_cn("west", "west CA");
    let shared = SharedTrust::new(TrustBundle::default());
    shared
        .update(|b| {
            b.insert(PeerTrust {
                roots: vec![old.cert.clone(), new.cert.clone()],
                ..old.peer()
            })
        })
        .expect("two roots");
    let client_v = PeerClientVerifier::new(shared.clone(), true);
    let server_v = PeerServerVerifier::new(shared.clone(), "west", PathRule::Any);
    for leaf in [old.control(), new.control()] {
        client_check(&client_v, std::slice::from_ref(&leaf.cert)).expect("either root");
        server_check(server_v.as_ref(), &leaf.chain()).expect("either root");
    }

    // Rotation done: the old root is dropped and its leaves are refused.
    shared
        .update(|b| b.insert(new.peer()))
        .expect("new root only");
    let err = client_check(&client_v, &[old.control().cert]).expect_err("old root gone");
    assert!(
        matches!(ident(&err), IdentityError::ChainInvalid { .. }),
        "{err:?}"
    );
    client_check(&client_v, &[new.control().cert]).expect("new root");
}

#[test]
fn identify_peer_rechecks_the_current_bundle_but_not_the_clock() {
    init();
    let west = Ca::new("west");
    let mut bundle = TrustBundle::default();
    bundle.insert(west.peer()).expect("west");

    // A connection established before the leaf expired keeps its identity.
    let (peer, id) = identify_peer(&bundle, &west.expired_control().cert).expect("identified");
    assert_eq!((peer.cluster.as_str(), id.is_control()), ("west", true));

    assert!(matches!(
        identify_peer(&bundle, &west.leaf_with_uris(&[]).cert),
        Err(IdentityError::NoSpiffeId)
    ));
    bundle.remove("west");
    assert!(matches!(
        identify_peer(&bundle, &west.control().cert),
        Err(IdentityError::UnknownTrustDomain { .. })
    ));
}

#[test]
fn identity_errors_survive_the_trip_through_rustls() {
    let err: rustls::Error = IdentityError::UnknownPeer {
        cluster: "x".into(),
    }
    .into();
    assert!(matches!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_))
    ));
    assert!(err.to_string().contains("\"x\" is not a peer"), "{err}");
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
    assert!(matches!(
        IdentityError::from_io(&io),
        Some(IdentityError::UnknownPeer { .. })
    ));
    // A wrapped rustls error goes back out unchanged.
    let back: rustls::Error = IdentityError::Tls(rustls::Error::HandshakeNotComplete).into();
    assert_eq!(back, rustls::Error::HandshakeNotComplete);
}

// ---------------------------------------------------------------- pinned verifier

#[test]
fn pin_verifier_accepts_the_pinned_ca_and_records_it() {
    init();
    let east = Ca::new("east");
    let v = PinnedServerVerifier::new(spki_sha256(&east.cert).expect("pin"));
    assert_eq!(v.accepted_ca(), None);
    server_check(v.as_ref(), &east.control().chain()).expect("pinned CA");
    assert_eq!(v.accepted_ca(), Some(east.cert.clone()));
}

#[test]
fn pin_verifier_rejects_another_ca_naming_both_pins() {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let pin = spki_sha256(&east.cert).expect("pin");
    let v = PinnedServerVerifier::new(pin);
    let err = server_check(v.as_ref(), &west.control().chain()).expect_err("wrong CA");
    let west_pin = pin_hex(&spki_sha256(&west.cert).expect("pin"));
    assert!(
        matches!(ident(&err), IdentityError::PinMismatch { expected_hex, got_hex }
            if *expected_hex == pin_hex(&pin) && *got_hex == west_pin),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&pin_hex(&pin)) && msg.contains(&west_pin),
        "{msg}"
    );
    assert_eq!(v.accepted_ca(), None);
}

#[test]
fn pin_verifier_needs_the_ca_and_a_leaf_it_signed() {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let v = PinnedServerVerifier::new(spki_sha256(&east.cert).expect("pin"));

    let err = server_check(v.as_ref(), &[east.control().cert]).expect_err("leaf only");
    assert!(matches!(ident(&err), IdentityError::NotCa), "{err:?}");

    let err = server_check(v.as_ref(), std::slice::from_ref(&east.cert)).expect_err("CA only");
    assert!(
        matches!(ident(&err), IdentityError::ChainInvalid { .. }),
        "{err:?}"
    );

    let leaf_pretending_ca = [east.control().cert, west.control().cert];
    let err = server_check(v.as_ref(), &leaf_pretending_ca).expect_err("last is no CA");
    assert!(matches!(ident(&err), IdentityError::NotCa), "{err:?}");

    // West's leaf followed by east's (pinned) CA: the leaf does not chain.
    let mixed = [west.control().cert, east.cert.clone()];
    let err = server_check(v.as_ref(), &mixed).expect_err("leaf not from the pinned CA");
    assert!(
        matches!(ident(&err), IdentityError::ChainInvalid { .. }),
        "{err:?}"
    );

    let err = server_check(v.as_ref(), &east.expired_control().chain()).expect_err("expired");
    assert!(
        matches!(ident(&err), IdentityError::Expired { .. }),
        "{err:?}"
    );
    assert_eq!(v.accepted_ca(), None);
}

// ---------------------------------------------------------------- LiveCert

#[test]
fn live_cert_refuses_a_key_that_is_not_the_leafs() {
    init();
    let east = Ca::new("east");
    let (a, b) = (east.control(), east.gateway("gw-1"));
    let err = LiveCert::new(a.chain(), b.key()).expect_err("mismatch");
    assert!(
        matches!(&err, IdentityError::KeyMismatch { subject } if subject == "CN=east control"),
        "{err:?}"
    );
    assert!(matches!(
        LiveCert::new(vec![], a.key()),
        Err(IdentityError::EmptyChain)
    ));

    let live = a.live();
    assert!(live.replace(a.chain(), b.key()).is_err());
    assert_eq!(
        live.current().cert[0],
        a.cert,
        "a failed replace keeps the old cert"
    );
}

#[test]
fn live_cert_replace_is_seen_through_every_clone() {
    init();
    let east = Ca::new("east");
    let (a, b) = (east.control(), east.expired_control());
    let live = a.live();
    let clone = live.clone();
    let resolver: Arc<dyn rustls::server::ResolvesServerCert> = Arc::new(live.clone());
    live.replace(b.chain(), b.key()).expect("replace");
    assert_eq!(clone.current().cert, b.chain());
    assert_eq!(
        clone.not_after(),
        inspect_cert(&b.cert).expect("parses").not_after
    );
    assert!(format!("{resolver:?}").contains("CN=old"));
}
