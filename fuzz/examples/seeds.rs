//! Writes the generated part of the seed corpus: tokens, DNS queries, a
//! ClientHello and an HTTP/2 CONNECT as a peer gateway sends them, and one
//! of each proto message the peering and gateway streams carry. The config
//! and manifest seeds are the files of `examples/`, copied as they are.
//!
//! Run from `fuzz/`: `cargo run --example seeds`. The output is stable but
//! for the random parts (token secrets, CA keys), so a rerun changes only
//! those files.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use fedmesh_control::ca::ClusterCa;
use fedmesh_proto::token::{BootstrapToken, JoinToken};
use fedmesh_proto::v1::{self, sync_message::Msg};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prost::Message as _;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| -> Result<(), Error> {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
        Ok(())
    };
    let ca = ClusterCa::generate("east", "east.fedmesh")?;
    tokens(&write, &ca)?;
    dns(&write)?;
    gateway_wire(&write)?;
    peering(&write, &ca)?;
    gateway(&write, &ca)?;
    Ok(())
}

type Write<'a> = &'a dyn Fn(&str, &str, &[u8]) -> Result<(), Error>;

fn tokens(write: Write<'_>, ca: &ClusterCa) -> Result<(), Error> {
    let join = JoinToken::generate("east.example:15017", ca.pin())?.encode();
    write("token", "join", join.as_bytes())?;
    let bootstrap = BootstrapToken::generate(ca.pin())?.encode();
    write("token", "bootstrap", bootstrap.as_bytes())?;
    let ipv6 = JoinToken::generate("[::1]:15017", ca.pin())?.encode();
    write("token", "join-ipv6", format!("  {ipv6}\n").as_bytes())?;
    Ok(())
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Result<Vec<u8>, Error> {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, qtype));
    message.edns = edns.map(|payload| {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e
    });
    Ok(message.to_vec()?)
}

fn dns(write: Write<'_>) -> Result<(), Error> {
    let queries = [
        (
            "a",
            "web.prod.svc.clusterset.local.",
            RecordType::A,
            Some(1232),
        ),
        (
            "a-classic",
            "WeB.prod.svc.clusterset.local.",
            RecordType::A,
            None,
        ),
        (
            "pinned",
            "east.web.prod.svc.clusterset.local.",
            RecordType::A,
            Some(1232),
        ),
        (
            "srv",
            "_http._tcp.web.prod.svc.clusterset.local.",
            RecordType::SRV,
            Some(512),
        ),
        (
            "aaaa",
            "db.prod.svc.clusterset.local.",
            RecordType::AAAA,
            None,
        ),
        (
            "nx",
            "west.web.prod.svc.clusterset.local.",
            RecordType::A,
            Some(1232),
        ),
        ("soa", "clusterset.local.", RecordType::SOA, None),
        ("outside", "example.com.", RecordType::A, Some(1232)),
    ];
    for (name, qname, qtype, edns) in queries {
        let packet = query(qname, qtype, edns)?;
        write("dns_query", name, &packet)?;
        write("dns_answer", name, &packet)?;
    }
    Ok(())
}

fn selected(selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(bytes);
    out
}

fn gateway_wire(write: Write<'_>) -> Result<(), Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"fedmesh-gw/1".to_vec()];
    let sni = rustls::pki_types::ServerName::try_from("8080.web.prod.fedmesh")?;
    let mut client = rustls::ClientConnection::new(Arc::new(config), sni)?;
    let mut hello = Vec::new();
    client.write_tls(&mut hello)?;
    write("gateway_wire", "client-hello", &selected(0, &hello))?;
    write(
        "gateway_wire",
        "authority",
        &selected(1, b"8080.web.prod.fedmesh"),
    )?;
    write("gateway_wire", "budget", &selected(2, b"750"))?;
    write(
        "gateway_wire",
        "reason",
        &selected(3, b"no_healthy_endpoint"),
    )?;
    write("gateway_wire", "preface", &selected(4, &[0xfe, 3]))?;
    write("gateway_wire", "connect", &selected(5, &h2_connect()?))?;
    Ok(())
}

/// The bytes an HTTP/2 client writes to open one CONNECT stream.
fn h2_connect() -> Result<Vec<u8>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client_io, mut server_io) = tokio::io::duplex(1 << 16);
        let (mut send, connection) = h2::client::handshake(client_io).await?;
        tokio::spawn(connection);
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("8080.web.prod.fedmesh")
            .header("fedmesh-connect-budget-ms", "750")
            .body(())?;
        let (_response, _stream) = send.send_request(request, false)?;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        // What the client wrote so far: the preface, SETTINGS, HEADERS.
        while let Ok(Ok(n)) = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::io::AsyncReadExt::read(&mut server_io, &mut buf),
        )
        .await
        {
            if n == 0 || bytes.len() > 1 << 15 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        Ok(bytes)
    })
}

fn info(name: &str, ca: &ClusterCa) -> v1::ClusterInfo {
    v1::ClusterInfo {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: Some(v1::Locality {
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
        }),
        gateway_address: "127.0.0.1:15443".into(),
        dns_zone: "clusterset.local".into(),
        ca_roots_pem: vec![ca.cert_pem().to_string()],
        peering_endpoint: "127.0.0.1:15017".into(),
    }
}

fn port(name: &str, port: u32) -> v1::ServicePort {
    v1::ServicePort {
        name: name.into(),
        port,
        protocol: "TCP".into(),
        ..Default::default()
    }
}

fn peering(write: Write<'_>, ca: &ClusterCa) -> Result<(), Error> {
    let export = v1::ServiceExport {
        namespace: "demo".into(),
        name: "hello".into(),
        ports: vec![port("http", 8080), port("", 9090)],
        exported_at_unix_ms: 1_780_000_000_000,
        affinity: v1::Affinity::Local as i32,
        weights: vec![v1::ClusterWeight {
            cluster: "east".into(),
            weight: 3,
        }],
        healthy_endpoints: 2,
        total_endpoints: 3,
        ..Default::default()
    };
    let messages = [
        (
            "hello",
            Msg::Hello(v1::Hello {
                info: Some(info("east", ca)),
                acked_version: 4,
                epoch: 99,
            }),
        ),
        (
            "exports",
            Msg::Exports(v1::ExportUpdate {
                epoch: 99,
                version: 5,
                base_version: 4,
                full: false,
                upserts: vec![export],
                removals: vec![v1::ServiceKey {
                    namespace: "demo".into(),
                    name: "old".into(),
                }],
            }),
        ),
        (
            "ack",
            Msg::Ack(v1::Ack {
                epoch: 99,
                version: 5,
            }),
        ),
        (
            "trust",
            Msg::Trust(v1::TrustBundleUpdate {
                ca_roots_pem: vec![ca.cert_pem().to_string()],
            }),
        ),
        (
            "heartbeat",
            Msg::Heartbeat(v1::Heartbeat {
                sent_unix_ms: 1_780_000_000_000,
            }),
        ),
        (
            "goodbye",
            Msg::Goodbye(v1::Goodbye {
                reason: "fedctl leave".into(),
            }),
        ),
    ];
    for (name, msg) in messages {
        let bytes = v1::SyncMessage { msg: Some(msg) }.encode_to_vec();
        write(
            "peering_messages",
            &format!("sync-{name}"),
            &selected(0, &bytes),
        )?;
    }
    let join = v1::JoinRequest {
        secret: vec![7; 32],
        joiner: Some(info("west", ca)),
        ..Default::default()
    };
    write(
        "peering_messages",
        "join-request",
        &selected(1, &join.encode_to_vec()),
    )?;
    let answer = v1::JoinResponse {
        acceptor: Some(info("east", ca)),
    };
    write(
        "peering_messages",
        "join-response",
        &selected(2, &answer.encode_to_vec()),
    )?;
    Ok(())
}

fn gateway(write: Write<'_>, ca: &ClusterCa) -> Result<(), Error> {
    let snapshot = v1::GatewaySnapshot {
        version: 3,
        cluster: "west".into(),
        trust_domain: "west.fedmesh".into(),
        locality: Some(v1::Locality {
            region: "eu-west-1".into(),
            zone: "eu-west-1a".into(),
        }),
        trust_bundle: vec![v1::TrustAnchor {
            cluster: "east".into(),
            trust_domain: "east.fedmesh".into(),
            roots_pem: vec![ca.cert_pem().to_string()],
        }],
        imports: vec![v1::ImportedService {
            namespace: "demo".into(),
            name: "hello".into(),
            vip: "127.240.0.10".into(),
            ports: vec![port("http", 8080)],
            affinity: v1::Affinity::Local as i32,
            weights: vec![],
            targets: vec![v1::Target {
                cluster: "east".into(),
                locality: None,
                healthy_endpoints: 2,
                gateway_address: "127.0.0.2:15443".into(),
                pinned_vip: "127.240.0.11".into(),
                local: false,
                stale: false,
                total_endpoints: 2,
                ..Default::default()
            }],
            listen_ports: vec![v1::ListenPort {
                cluster: String::new(),
                port: 8080,
                listen_port: 20080,
                hostname: String::new(),
            }],
        }],
        exports: vec![v1::LocalService {
            namespace: "demo".into(),
            name: "web".into(),
            ports: vec![port("http", 80)],
            endpoints: vec![v1::Endpoint {
                address: "127.0.0.5".into(),
                ready: true,
                ports: [("http".to_string(), 8081)].into(),
                ..Default::default()
            }],
            export_to: vec!["east".into()],
        }],
        ..Default::default()
    };
    write(
        "gateway_messages",
        "snapshot",
        &selected(0, &snapshot.encode_to_vec()),
    )?;
    let token = BootstrapToken::generate(ca.pin())?.encode();
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(vec!["gw".to_string()])?.serialize_request(&key)?;
    let sign = v1::SignCertificateRequest {
        bootstrap_token: token.clone(),
        gateway_name: "gw-1".into(),
        csr_der: csr.der().to_vec(),
    };
    write(
        "gateway_messages",
        "sign",
        &selected(1, &sign.encode_to_vec()),
    )?;
    let watch = v1::WatchRequest {
        bootstrap_token: token.clone(),
        gateway_name: "gw-1".into(),
    };
    write(
        "gateway_messages",
        "watch",
        &selected(2, &watch.encode_to_vec()),
    )?;
    let status = v1::GatewayStatus {
        bootstrap_token: token,
        gateway_name: "gw-1".into(),
        ready: true,
        snapshot_version: 3,
        cert_not_after_unix_ms: 1_780_000_000_000,
        probes: vec![v1::PeerGatewayProbe {
            cluster: "east".into(),
            address: "127.0.0.2:15443".into(),
            up: true,
        }],
        ..Default::default()
    };
    write(
        "gateway_messages",
        "status",
        &selected(3, &status.encode_to_vec()),
    )?;
    Ok(())
}
