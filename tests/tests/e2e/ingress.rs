//! Ingress accepts only a trusted peer's gateway identity, and only for
//! services exported to that peer.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{
    self, LiveCert, PathRule, PeerServerVerifier, PeerTrust, SharedTrust, TrustBundle,
};
use fedmesh_tests::{Backend, EXPORT, Federation, service_yaml, wait_until};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;

use crate::trust::{byo_ca, forge};

type Identity = Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>;

/// Dials west's ingress as `who` asking for `sni`; returns the status code
/// byte, or why there was none.
async fn ask(
    ingress: &str,
    west_root: &CertificateDer<'static>,
    who: Identity,
    sni: &str,
) -> Result<u8, String> {
    let mut bundle = TrustBundle::default();
    bundle
        .insert(PeerTrust {
            cluster: "west".into(),
            trust_domain: "west.fedmesh".into(),
            roots: vec![west_root.clone()],
        })
        .unwrap();
    let verifier = PeerServerVerifier::new(
        SharedTrust::new(bundle),
        "west",
        PathRule::Prefix("/gateway/".into()),
    );
    let cert = who.map(|(chain, key)| LiveCert::new(chain, key).unwrap());
    let tls = identity::client_config(cert.as_ref(), verifier, &[b"fedmesh-gw/1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(ingress)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut stream = connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut status = [0u8; 2];
    match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut status)).await {
        Ok(Ok(_)) if status[0] == 0xFE => Ok(status[1]),
        Ok(Ok(_)) => Err(format!("not a status: {status:?}")),
        Ok(Err(e)) => Err(format!("no status: {e}")),
        Err(_) => Err("no answer".into()),
    }
}

#[test]
fn ingress_refuses_untrusted_identities_and_services_not_exported_to_the_caller() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    fed.add("eu", "eu-central", "eu-central-1a", "");
    let east_ca = byo_ca(&fed, "east");
    let west_ca = byo_ca(&fed, "west");
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.join("eu", "west");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    fed.get_mut("west").start_gateway();
    let west = fed.get("west");
    let backend = Backend::start((west.ip, 18080).into(), "west");
    let ip = backend.addr().ip().to_string();
    west.write_manifest(
        "hello.yaml",
        &service_yaml("demo", "hello", "http", 8080, 18080, &[EXPORT], &[&ip]),
    );
    west.write_manifest(
        "secret.yaml",
        &service_yaml(
            "demo",
            "secret",
            "http",
            8080,
            18080,
            &[EXPORT, ("fedmesh.io/export-to", "eu")],
            &[&ip],
        ),
    );
    wait_until("east imports hello", Duration::from_secs(15), || {
        fed.get("east").service("demo/hello").is_some()
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    let ingress = west.ingress();
    let root = west_ca.cert_der().clone();
    let ask = |who: Identity, sni: &str| rt.block_on(ask(&ingress, &root, who, sni));
    let east_gw = || Some(forge(&east_ca, "spiffe://east.fedmesh/gateway/gw-test"));
    const HELLO: &str = "8080.hello.demo.fedmesh";

    // East's gateway identity reaches an exported service (so the
    // refusals below are not an artefact of the test client).
    wait_until(
        "west's gateway knows east's roots",
        Duration::from_secs(15),
        || ask(east_gw(), HELLO) == Ok(0),
    );

    let stranger =
        fedmesh_control::ca::ClusterCa::generate("stranger", "stranger.fedmesh").unwrap();
    let refused: [(&str, Identity); 4] = [
        ("no client certificate", None),
        (
            "an unknown CA claiming east",
            Some(forge(&stranger, "spiffe://east.fedmesh/gateway/gw-1")),
        ),
        (
            "east's CA claiming west's trust domain",
            Some(forge(&east_ca, "spiffe://west.fedmesh/gateway/gw-1")),
        ),
        (
            "east's control identity",
            Some(forge(&east_ca, "spiffe://east.fedmesh/control")),
        ),
    ];
    for (what, who) in refused {
        let result = ask(who, HELLO);
        assert!(result.is_err(), "{what} got status {result:?}");
    }
    assert_eq!(
        ask(east_gw(), "8080.nothere.demo.fedmesh"),
        Ok(1),
        "unknown service"
    );
    assert_eq!(
        ask(east_gw(), "9999.hello.demo.fedmesh"),
        Ok(1),
        "unknown port"
    );
    assert_eq!(
        ask(east_gw(), "8080.secret.demo.fedmesh"),
        Ok(2),
        "export-to: eu excludes east"
    );

    let (_, metrics) = west.gateway_admin("/metrics");
    for reason in ["not_exported_to_peer", "unknown_service", "not_a_gateway"] {
        // The series exists at 0 from the start: look at its value.
        let sample = format!("fedmesh_gateway_ingress_refused_total{{reason=\"{reason}\"}} ");
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(sample.as_str()))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(count >= Some(1.0), "{reason} not counted:\n{metrics}");
    }
}
