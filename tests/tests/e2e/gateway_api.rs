//! The gateway API signs a CSR only for a caller holding the bootstrap
//! token, and streams snapshots carrying the trust bundle.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{self, PinnedServerVerifier};
use fedmesh_proto::token::BootstrapToken;
use fedmesh_proto::transport::connect;
use fedmesh_proto::v1::{self, gateway_config_client::GatewayConfigClient};
use fedmesh_tests::{EXPORT, Federation, service_yaml};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

async fn client(addr: &str, pin: [u8; 32]) -> GatewayConfigClient<tonic::transport::Channel> {
    let tls = identity::client_config(None, PinnedServerVerifier::new(pin), &[b"h2"]).unwrap();
    GatewayConfigClient::new(
        connect(addr, Arc::new(tls), Duration::from_secs(5))
            .await
            .unwrap(),
    )
}

#[test]
fn csr_is_signed_only_with_the_bootstrap_token() {
    let fed = Federation::standard(2, "");
    let east = fed.get("east");
    let path = east.dir.join("data/gateway-bootstrap.token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file must be private");
    let token_text = std::fs::read_to_string(&path).unwrap();
    let token = BootstrapToken::decode(&token_text).unwrap();

    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = client(&east.gateway_api(), token.pin).await;
        let signed = c
            .sign_certificate(v1::SignCertificateRequest {
                bootstrap_token: token_text.trim().to_string(),
                gateway_name: "gw-1".into(),
                csr_der: csr.der().to_vec(),
            })
            .await
            .expect("signed with the right token")
            .into_inner();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(signed.cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let info = identity::inspect_cert(&chain[0]).unwrap();
        assert_eq!(
            info.spiffe_id.unwrap().to_string(),
            "spiffe://east.fedmesh/gateway/gw-1"
        );

        let forged = BootstrapToken::generate(token.pin).unwrap().encode();
        let refused = c
            .sign_certificate(v1::SignCertificateRequest {
                bootstrap_token: forged,
                gateway_name: "gw-1".into(),
                csr_der: csr.der().to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    });

    // The snapshot stream carries the trust bundle, and updates on join.
    rt.block_on(async {
        let mut c = client(&east.gateway_api(), token.pin).await;
        let mut stream = c
            .watch(v1::WatchRequest {
                bootstrap_token: token_text.trim().to_string(),
                gateway_name: "gw-1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.cluster, "east");
        assert!(first.trust_bundle.is_empty());
        fed.join("west", "east");
        fed.get("west").write_manifest(
            "hello.yaml",
            &service_yaml(
                "demo",
                "hello",
                "http",
                8080,
                18080,
                &[EXPORT],
                &["127.0.0.20"],
            ),
        );
        // Snapshots follow every change; read until west's roots and its
        // export have both arrived.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let snap = loop {
            let next = tokio::time::timeout_at(deadline, stream.message())
                .await
                .expect("snapshot with west's roots and export")
                .unwrap()
                .unwrap();
            if !next.trust_bundle.is_empty() && !next.imports.is_empty() {
                break next;
            }
        };
        assert_eq!(snap.trust_bundle[0].cluster, "west");
        assert_eq!(snap.trust_bundle[0].trust_domain, "west.fedmesh");
        let hello = &snap.imports[0];
        assert_eq!(
            (hello.namespace.as_str(), hello.name.as_str()),
            ("demo", "hello")
        );
        let prefix = fed.vip_range(0).rsplit_once('.').unwrap().0.to_string();
        assert!(
            hello.vip.starts_with(&prefix),
            "{} not in east's range",
            hello.vip
        );
        assert_eq!(hello.targets[0].cluster, "west");
        assert_eq!(hello.targets[0].healthy_endpoints, 1);
        assert_eq!(
            hello.targets[0].gateway_address,
            format!("{}:15443", fed.get("west").ip)
        );
    });
}

#[test]
fn gateway_api_refuses_a_client_pinning_another_ca() {
    let fed = Federation::standard(1, "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wrong_pin = [0u8; 32];
    let tls =
        identity::client_config(None, PinnedServerVerifier::new(wrong_pin), &[b"h2"]).unwrap();
    let result = rt.block_on(connect(
        &fed.get("east").gateway_api(),
        Arc::new(tls),
        Duration::from_secs(5),
    ));
    assert!(
        result.is_err(),
        "a gateway must not talk to a control plane with another CA"
    );
}

#[test]
fn a_separate_gateway_dials_the_control_plane_at_gateway_control() {
    let mut fed = Federation::standard(1, "");
    let east = fed.get_mut("east");
    // As in a gateway pod: control.gatewayListen is not where the control
    // plane can be dialed (here a port nothing listens on), so fedgw can
    // only get its certificate and snapshot through gateway.control.
    let config = std::fs::read_to_string(&east.config).expect("read config");
    let real = format!("{}:15012", east.ip);
    let moved = config.replace(
        &format!("gatewayListen: {real}"),
        &format!("gatewayListen: {}:15013", east.ip),
    );
    assert_ne!(moved, config, "the config names gatewayListen");
    east.write_config(&format!("{moved}  control: {real}\n"));
    east.start_gateway();
    assert!(
        east.gateway_log().contains(&format!("control={real}")),
        "{}",
        east.gateway_log()
    );
}
