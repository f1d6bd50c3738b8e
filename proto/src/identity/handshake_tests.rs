//! Real TLS handshakes over TCP on 127.0.0.1 with tokio-rustls, using the
//! configs, verifiers and `LiveCert` exactly as servers and dialers do.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::test_pki::{Ca, init};
use super::*;

/// Every handshake finishes (or fails) well within this.
const DEADLINE: Duration = Duration::from_secs(10);

/// What each side saw of the other.
struct Outcome {
    /// Server side: the client's certificates (empty if none).
    server: io::Result<Vec<CertificateDer<'static>>>,
    /// Client side: the server's certificates and the negotiated ALPN.
    client: io::Result<(Vec<CertificateDer<'static>>, Option<Vec<u8>>)>,
}

/// One connection: handshake, then a ping/pong so that a client refused in
/// TLS 1.3 (where the client finishes first) sees the server's alert.
async fn connect(server: ServerConfig, client: ClientConfig) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, io::Error>(peer)
    });

    let connector = TlsConnector::from(Arc::new(client));
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await?;
        // Only the SNI; the verifiers ignore it.
        let name = ServerName::try_from("east.fedmesh").expect("static name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await?;
        let conn = tls.get_ref().1;
        let certs = conn.peer_certificates().unwrap_or_default().to_vec();
        Ok((certs, conn.alpn_protocol().map(<[u8]>::to_vec)))
    };
    let client = tokio::time::timeout(DEADLINE, client_side)
        .await
        .expect("client finishes before the deadline");
    let server = tokio::time::timeout(DEADLINE, server_side)
        .await
        .expect("server finishes before the deadline")
        .expect("server task does not panic");
    Outcome { server, client }
}

/// East serves gateway ingress: mandatory client certs from peers in `trust`.
fn east_server(cert: &LiveCert, trust: &SharedTrust, mandatory: bool) -> ServerConfig {
    let verifier = PeerClientVerifier::new(trust.clone(), mandatory);
    server_config(cert, verifier, &[b"fedmesh/1", b"h2"]).expect("server config")
}

/// A west dialer expecting an east gateway.
fn west_dialer(cert: Option<&LiveCert>, trust: &SharedTrust) -> ClientConfig {
    let verifier = PeerServerVerifier::new(trust.clone(), "east", PathRule::any_gateway());
    client_config(cert, verifier, &[b"h2"]).expect("client config")
}

struct Federation {
    east: Ca,
    west: Ca,
    /// East's bundle (trusts west).
    east_trust: SharedTrust,
    /// West's bundle (trusts east).
    west_trust: SharedTrust,
}

fn federation() -> Federation {
    init();
    let (east, west) = (Ca::new("east"), Ca::new("west"));
    let east_trust = SharedTrust::default();
    east_trust
        .update(|b| b.insert(west.peer()))
        .expect("east trusts west");
    let west_trust = SharedTrust::default();
    west_trust
        .update(|b| b.insert(east.peer()))
        .expect("west trusts east");
    Federation {
        east,
        west,
        east_trust,
        west_trust,
    }
}

#[tokio::test]
async fn mtls_handshake_succeeds_between_trusted_peers() {
    let f = federation();
    let server_cert = f.east.gateway("gw-1").live();
    let client_leaf = f.west.gateway("gw-1");
    let out = connect(
        east_server(&server_cert, &f.east_trust, true),
        west_dialer(Some(&client_leaf.live()), &f.west_trust),
    )
    .await;

    let (server_certs, alpn) = out.client.expect("client side succeeds");
    assert_eq!(
        server_certs,
        server_cert.current().cert,
        "server sent [leaf, ca]"
    );
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let client_certs = out.server.expect("server side succeeds");
    let (peer, id) = identify_peer(&f.east_trust.snapshot(), &client_certs[0]).expect("known peer");
    assert_eq!(peer.cluster, "west");
    assert_eq!(id, SpiffeId::gateway("west.fedmesh", "gw-1"));
}

#[tokio::test]
async fn client_from_an_untrusted_ca_fails_the_handshake() {
    let f = federation();
    // Same trust domain as west, but its own CA.
    let impostor = Ca::new("west").gateway("gw-1");
    let out = connect(
        east_server(&f.east.gateway("gw-1").live(), &f.east_trust, true),
        west_dialer(Some(&impostor.live()), &f.west_trust),
    )
    .await;

    let server_err = out.server.expect_err("server refuses the impostor");
    assert!(
        matches!(IdentityError::from_io(&server_err), Some(IdentityError::ChainInvalid { peer, .. }) if peer == "west"),
        "{server_err:?}"
    );
    let client_err = out.client.expect_err("client sees the refusal");
    assert!(
        client_err
            .to_string()
            .to_lowercase()
            .contains("certificateunknown")
            || client_err.kind() == io::ErrorKind::UnexpectedEof,
        "{client_err:?}"
    );
}

#[tokio::test]
async fn mandatory_client_auth_refuses_a_client_without_a_certificate() {
    let f = federation();
    let server_cert = f.east.gateway("gw-1").live();
    let out = connect(
        east_server(&server_cert, &f.east_trust, true),
        west_dialer(None, &f.west_trust),
    )
    .await;
    let err = out.server.expect_err("no client certificate");
    assert!(
        err.to_string().contains("NoCertificatesPresented")
            || err.to_string().contains("no certificates"),
        "{err:?}"
    );
    assert!(out.client.is_err());
}

#[tokio::test]
async fn optional_client_auth_lets_a_client_without_a_certificate_in() {
    // The peering port: Join is served without a client certificate.
    let f = federation();
    let server_cert = f.east.control().live();
    let verifier = PeerServerVerifier::new(f.west_trust.clone(), "east", PathRule::control());
    let out = connect(
        east_server(&server_cert, &f.east_trust, false),
        client_config(None, verifier, &[]).expect("client config"),
    )
    .await;
    assert_eq!(
        out.server.expect("accepted").len(),
        0,
        "no client certificate"
    );
    out.client.expect("client side succeeds");
}

#[tokio::test]
async fn dialer_refuses_a_server_that_is_not_the_expected_peer() {
    let f = federation();
    // West dials "east" but a west gateway answers.
    let west_trust_both = SharedTrust::default();
    west_trust_both
        .update(|b| {
            b.insert(f.east.peer())
                .and_then(|()| b.insert(f.west.peer()))
        })
        .expect("both");
    let out = connect(
        east_server(&f.west.gateway("gw-1").live(), &f.east_trust, true),
        west_dialer(Some(&f.west.gateway("gw-2").live()), &west_trust_both),
    )
    .await;
    let err = out.client.expect_err("wrong peer");
    assert!(
        matches!(
            IdentityError::from_io(&err),
            Some(IdentityError::WrongTrustDomain { .. })
        ),
        "{err:?}"
    );
    assert!(out.server.is_err());
}

#[tokio::test]
async fn tls12_handshake_also_verifies_peers() {
    let f = federation();
    let verifier = PeerServerVerifier::new(f.west_trust.clone(), "east", PathRule::any_gateway());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(f.west.gateway("gw-1").live()));
    let out = connect(
        east_server(&f.east.gateway("gw-1").live(), &f.east_trust, true),
        client,
    )
    .await;
    out.client.expect("client side succeeds over TLS 1.2");
    assert_eq!(out.server.expect("server side succeeds").len(), 2);
}

#[tokio::test]
async fn replaced_live_cert_is_presented_on_the_next_handshake() {
    let f = federation();
    let (first, second) = (f.east.gateway("gw-1"), f.east.gateway("gw-1"));
    let (client_first, client_second) = (f.west.gateway("gw-1"), f.west.gateway("gw-1"));
    let server_cert = first.live();
    let client_cert = client_first.live();
    let server = east_server(&server_cert, &f.east_trust, true);
    // Fresh client configs: a resumed session would report the first
    // handshake's certificates.
    let out = connect(
        server.clone(),
        west_dialer(Some(&client_cert), &f.west_trust),
    )
    .await;
    assert_eq!(out.client.expect("first").0[0], first.cert);
    assert_eq!(out.server.expect("first")[0], client_first.cert);

    server_cert
        .replace(second.chain(), second.key())
        .expect("server renews");
    client_cert
        .replace(client_second.chain(), client_second.key())
        .expect("client renews");
    let out = connect(server, west_dialer(Some(&client_cert), &f.west_trust)).await;
    assert_eq!(out.client.expect("second").0[0], second.cert);
    assert_eq!(out.server.expect("second")[0], client_second.cert);
}

#[tokio::test]
async fn join_dial_with_the_pin_accepts_the_issuer_and_records_its_ca() {
    let f = federation();
    let pin = spki_sha256(&f.east.cert).expect("pin");
    let pinned = PinnedServerVerifier::new(pin);
    let out = connect(
        east_server(&f.east.control().live(), &f.east_trust, false),
        client_config(None, pinned.clone(), &[b"h2"]).expect("client config"),
    )
    .await;
    out.client.expect("joiner accepts the pinned cluster");
    assert_eq!(pinned.accepted_ca(), Some(f.east.cert.clone()));

    // Another cluster at that address is refused before any secret is sent.
    let pinned = PinnedServerVerifier::new(pin);
    let out = connect(
        east_server(&f.west.control().live(), &f.east_trust, false),
        client_config(None, pinned.clone(), &[b"h2"]).expect("client config"),
    )
    .await;
    let err = out.client.expect_err("wrong cluster");
    assert!(
        matches!(
            IdentityError::from_io(&err),
            Some(IdentityError::PinMismatch { .. })
        ),
        "{err:?}"
    );
    assert_eq!(pinned.accepted_ca(), None);
}

#[tokio::test]
async fn a_pin_set_accepts_a_server_of_any_of_its_roots_and_no_other() {
    let f = federation();
    let east = spki_sha256(&f.east.cert).expect("pin");
    let west = spki_sha256(&f.west.cert).expect("pin");
    // The second pin (a rotation's new root) is accepted like the first.
    let pinned = PinnedServerVerifier::any_of(east, &[west]);
    let out = connect(
        east_server(&f.west.control().live(), &f.east_trust, false),
        client_config(None, pinned.clone(), &[b"h2"]).expect("client config"),
    )
    .await;
    out.client.expect("the second pin is accepted");
    assert_eq!(pinned.accepted_ca(), Some(f.west.cert.clone()));

    let only_east = PinnedServerVerifier::any_of(east, &[east]);
    let out = connect(
        east_server(&f.west.control().live(), &f.east_trust, false),
        client_config(None, only_east, &[b"h2"]).expect("client config"),
    )
    .await;
    assert!(out.client.is_err(), "a root outside the set is refused");
}
