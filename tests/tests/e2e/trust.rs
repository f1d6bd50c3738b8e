//! Identity is the SPIFFE ID checked against *that* peer's root: a
//! certificate from another peer's CA, from an unknown CA, outside the
//! peer's trust domain, or of a gateway is refused on the peering port.
//!
//! The clusters here bring their own CA files (`ca.certFile`/`ca.keyFile`),
//! so the test holds every CA key and can forge certificates.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_control::ca::ClusterCa;
use fedmesh_proto::identity::{
    self, LiveCert, PathRule, PeerServerVerifier, PeerTrust, SharedTrust, TrustBundle,
};
use fedmesh_proto::transport::{connect, error_chain};
use fedmesh_proto::v1::{self, peering_client::PeeringClient};
use fedmesh_tests::{Federation, wait_until};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) fn byo_ca(fed: &Federation, name: &str) -> ClusterCa {
    let ca = ClusterCa::generate(name, &format!("{name}.fedmesh")).unwrap();
    let c = fed.get(name);
    std::fs::write(c.dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(c.dir.join("ca.key"), ca.key_pem()).unwrap();
    let mut cfg = std::fs::read_to_string(&c.config).unwrap();
    cfg.push_str("ca: { certFile: ca.pem, keyFile: ca.key }\n");
    c.write_config(&cfg);
    ca
}

/// A leaf for `spiffe` signed by `ca`.
pub(crate) fn forge(
    ca: &ClusterCa,
    spiffe: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let issuer_key = rcgen::KeyPair::from_pem(ca.key_pem()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca.cert_pem(), issuer_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from(spiffe).unwrap(),
    )];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    (vec![cert.der().clone(), ca.cert_der().clone()], key_der)
}

/// Opens a Sync stream to east as the holder of `client`, and waits for
/// east's Hello. `Ok` means east accepted the identity.
async fn open_sync(
    east: &str,
    east_ca: &ClusterCa,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<(), String> {
    let mut bundle = TrustBundle::default();
    bundle
        .insert(PeerTrust {
            cluster: "east".into(),
            trust_domain: "east.fedmesh".into(),
            roots: vec![east_ca.cert_der().clone()],
        })
        .unwrap();
    let verifier = PeerServerVerifier::new(
        SharedTrust::new(bundle),
        "east",
        PathRule::Exact("/control".into()),
    );
    let cert = client.map(|(chain, key)| LiveCert::new(chain, key).unwrap());
    let tls = identity::client_config(cert.as_ref(), verifier, &[b"h2"]).unwrap();
    let channel = connect(east, Arc::new(tls), Duration::from_secs(5))
        .await
        .map_err(|e| error_chain(&e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut inbound = PeeringClient::new(channel)
        .sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), inbound.message()).await;
    drop(tx);
    match first {
        Ok(Ok(Some(v1::SyncMessage {
            msg: Some(v1::sync_message::Msg::Hello(_)),
        }))) => Ok(()),
        Ok(Ok(other)) => Err(format!("unexpected first message {other:?}")),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err("no answer".into()),
    }
}

#[test]
fn peering_port_accepts_only_a_peers_own_identity_from_its_own_root() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    fed.add("eu", "eu-central", "eu-central-1a", "");
    let east_ca = byo_ca(&fed, "east");
    let west_ca = byo_ca(&fed, "west");
    let eu_ca = byo_ca(&fed, "eu");
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    fed.wait_connected("east", "eu", Duration::from_secs(15));
    let east = fed.get("east").peering();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let attempt = |client| rt.block_on(open_sync(&east, &east_ca, client));

    // West's own CA and identity: accepted (so the refusals below are not
    // an artefact of the test client).
    attempt(Some(forge(&west_ca, "spiffe://west.fedmesh/control")))
        .expect("west's real identity is accepted");

    let stranger = ClusterCa::generate("stranger", "stranger.fedmesh").unwrap();
    // Refused in the TLS handshake: east logs each one.
    let refused_by_tls = [
        (
            "eu's CA claiming west",
            forge(&eu_ca, "spiffe://west.fedmesh/control"),
        ),
        (
            "west's CA outside west's trust domain",
            forge(&west_ca, "spiffe://evil.fedmesh/control"),
        ),
        (
            "west's CA claiming eu's trust domain",
            forge(&west_ca, "spiffe://eu.fedmesh/control"),
        ),
        (
            "an unknown CA claiming west",
            forge(&stranger, "spiffe://west.fedmesh/control"),
        ),
    ];
    let handshake_refusals = || {
        fed.get("east")
            .log()
            .matches("TLS handshake refused")
            .count()
    };
    for (what, client) in refused_by_tls {
        let before = handshake_refusals();
        let result = attempt(Some(client));
        eprintln!("{what}: {result:?}");
        assert!(result.is_err(), "{what} was accepted");
        wait_until(
            &format!("east logs the refused handshake of {what}"),
            Duration::from_secs(5),
            || handshake_refusals() > before,
        );
    }
    // Refused by the Sync call itself, with a reason.
    let refused_by_rpc = [
        (
            "west's gateway identity",
            Some(forge(&west_ca, "spiffe://west.fedmesh/gateway/gw-1")),
            "not a control plane identity",
        ),
        (
            "no client certificate",
            None,
            "needs the client certificate",
        ),
    ];
    for (what, client, reason) in refused_by_rpc {
        let result = attempt(client);
        eprintln!("{what}: {result:?}");
        assert!(
            result.as_ref().is_err_and(|e| e.contains(reason)),
            "{what}: {result:?}"
        );
    }
    // The real peerings are untouched.
    fed.wait_connected("east", "eu", Duration::from_secs(15));
    fed.wait_connected("east", "west", Duration::from_secs(15));
}
