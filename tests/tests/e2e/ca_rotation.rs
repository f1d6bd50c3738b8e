//! CA rotation by overlap (issue 11, item 5): `fedctl ca rotate --auto` on
//! east while eu and west send 200 paced connections to east's pinned VIP
//! (and one connection stays open across it): none fails; afterwards
//! east's ingress presents a chain ending in the new root, peers hold only
//! the new root, and `fedctl check` passes on all three clusters. And the
//! manual path: a down peer holds the rotation in overlap (`--finish` is
//! refused naming it), a restart resumes it, and `--finish` ends it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;

const SYNC: Duration = Duration::from_secs(30);
/// Connections per client cluster, and the pause between two.
const PER_CLUSTER: usize = 100;
const PACE: Duration = Duration::from_millis(80);

#[test]
fn rotating_easts_ca_fails_no_connection_and_ends_on_the_new_root() {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let east = fed.get("east");
    let _backend = Backend::start((east.ip, 18080).into(), "east");
    east.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&east.ip.to_string()],
        ),
    );
    let clients: Vec<(String, SocketAddr)> = ["eu", "west"]
        .iter()
        .map(|name| (name.to_string(), pinned_vip(&fed, name)))
        .collect();
    let before = ca_status(&fed);
    assert_eq!(before["phase"], "idle");
    let old_root = before["roots"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    check_all(&fed);

    // One connection open across the whole rotation.
    let (_, first) = &clients[0];
    let mut held = open_held(*first);

    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let traffic: Vec<_> = clients
        .iter()
        .map(|(name, vip)| {
            let (name, vip, failures) = (name.clone(), *vip, failures.clone());
            thread::spawn(move || send_paced(&name, vip, &failures))
        })
        .collect();
    let started = Instant::now();
    thread::sleep(PACE * 10);
    let out = fed
        .get("east")
        .fedctl(&["ca", "rotate", "--auto", "-o", "json"]);
    assert!(out.ok, "ca rotate --auto: {}", out.stderr);
    assert_eq!(out.json()["status"]["phase"], "overlap");
    let mut phases = vec!["overlap".to_string()];
    wait_until("east's rotation finished", SYNC, || {
        let phase = ca_status(&fed)["phase"].as_str().unwrap_or("").to_string();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        phase == "finished"
    });
    let rotated_in = started.elapsed();
    for t in traffic {
        t.join().expect("a traffic thread");
    }
    let traffic_took = started.elapsed();
    eprintln!(
        "rotation: phases {phases:?}, finished {rotated_in:?} after traffic began; \
         {} connections in {traffic_took:?}",
        2 * PER_CLUSTER
    );
    assert!(
        rotated_in < traffic_took,
        "the rotation ran inside the traffic"
    );
    let failed = failures.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    held_still_echoes(&mut held);

    let after = ca_status(&fed);
    let roots = after["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "only the new root is published: {after}");
    let new_root = roots[0]["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(new_root, old_root);
    assert!(
        after["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["current"] == true)
    );
    // What east's ingress presents now chains to the new root.
    let chain = ingress_chain(&fed.get("east").ingress());
    let last = chain.last().expect("a chain");
    let presented = fedmesh_proto::identity::spki_sha256(last).expect("a root");
    assert_eq!(fedmesh_proto::token::hex(&presented), new_root);
    // Peers hold the new root only.
    for name in ["eu", "west"] {
        let c = fed.get(name);
        wait_until(&format!("{name} holds only east's new root"), SYNC, || {
            c.peers()
                .iter()
                .find(|p| p["name"] == "east")
                .is_some_and(|p| p["rootFingerprints"] == serde_json::json!([new_root]))
        });
    }
    check_all(&fed);
}

#[test]
fn a_rotation_waits_for_a_down_peer_survives_a_restart_and_finishes_when_told() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    fed.get_mut("east").start_gateway();
    // West is down: it cannot acknowledge the new root.
    fed.get_mut("west").terminate();
    let east = fed.get("east");
    let out = east.fedctl(&["ca", "rotate", "-o", "json"]);
    assert!(out.ok, "ca rotate: {}", out.stderr);
    let status = ca_status(&fed);
    assert_eq!(status["phase"], "overlap");
    assert_eq!(status["roots"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        status["peers"][0],
        serde_json::json!({"peer": "west", "acked": false})
    );
    let refused = east.fedctl(&["ca", "rotate", "--finish"]);
    assert!(!refused.ok, "finish while west has not acked");
    assert!(
        refused.stderr.contains("west") && refused.stderr.contains("acknowledged"),
        "the refusal names who is missing: {}",
        refused.stderr
    );
    let check = east.fedctl(&["check"]);
    assert!(
        check.stdout.contains("WARN ca rotation: in phase overlap"),
        "fedctl check shows the rotation: {}",
        check.stdout
    );
    let again = east.fedctl(&["ca", "rotate"]);
    assert!(
        !again.ok && again.stderr.contains("already"),
        "{}",
        again.stderr
    );

    // A restart resumes the overlap with the same two roots.
    let roots = status["roots"].clone();
    fed.get_mut("east").terminate();
    fed.get_mut("east").start();
    let resumed = ca_status(&fed);
    assert_eq!(
        (&resumed["phase"], &resumed["roots"]),
        (&"overlap".into(), &roots)
    );

    // West comes back, gets both roots in Hello, acks; the new root signs.
    fed.get_mut("west").start();
    fed.get_mut("west").start_gateway();
    fed.wait_connected("east", "west", SYNC);
    wait_until("the new root signs", SYNC, || {
        ca_status(&fed)["phase"] == "issued"
    });
    // Not finished by itself without --auto; told, it finishes once the
    // gateway serves a leaf of the new root.
    let east = fed.get("east");
    wait_until("finish accepted", SYNC, || {
        east.fedctl(&["ca", "rotate", "--finish"]).ok
    });
    let done = ca_status(&fed);
    assert_eq!(done["phase"], "finished");
    assert_eq!(done["roots"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        done["roots"][0]["fingerprint"], roots[1]["fingerprint"],
        "the new root stays"
    );
    assert_eq!(done["roots"][0]["signer"], true);
    check_all(&fed);
}

fn ca_status(fed: &Federation) -> Value {
    let out = fed.get("east").fedctl(&["ca", "status", "-o", "json"]);
    assert!(out.ok, "ca status: {}", out.stderr);
    out.json()
}

fn check_all(fed: &Federation) {
    for c in &fed.clusters {
        let out = c.fedctl(&["check", "--wait", "30s"]);
        assert!(
            out.ok,
            "fedctl check on {}: {}{}",
            c.name, out.stdout, out.stderr
        );
    }
}

/// East's pinned VIP as `client` resolves it, once its gateway serves it.
fn pinned_vip(fed: &Federation, client: &str) -> SocketAddr {
    let c = fed.get(client);
    wait_until(&format!("{client} imports hello from east"), SYNC, || {
        c.service_clusters("demo/hello") == ["east"]
    });
    let answer = fedmesh_tests::dns_query(c.dns(), "east.hello.demo.svc.clusterset.local", "A");
    assert_eq!(answer.a.len(), 1, "{client}: {answer:?}");
    let vip = SocketAddr::new(answer.a[0].into(), 8080);
    wait_until(&format!("{client} reaches east's pinned VIP"), SYNC, || {
        ask_backend(vip).is_ok_and(|name| name == "east")
    });
    vip
}

fn send_paced(name: &str, vip: SocketAddr, failures: &Mutex<Vec<String>>) {
    for i in 0..PER_CLUSTER {
        match ask_backend(vip) {
            Ok(answer) if answer == "east" => {}
            Ok(other) => push(failures, format!("{name} #{i}: answered by {other}")),
            Err(e) => push(failures, format!("{name} #{i}: {e}")),
        }
        thread::sleep(PACE);
    }
}

fn push(failures: &Mutex<Vec<String>>, what: String) {
    failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(what);
}

/// A connection through the VIP that has read the backend's name line.
fn open_held(vip: SocketAddr) -> BufReader<TcpStream> {
    let conn = TcpStream::connect_timeout(&vip, Duration::from_secs(3)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn);
    let mut name = String::new();
    reader.read_line(&mut name).expect("the backend's name");
    assert_eq!(name.trim(), "east");
    reader
}

fn held_still_echoes(held: &mut BufReader<TcpStream>) {
    held.get_mut()
        .write_all(b"still here\n")
        .expect("write on the held connection");
    let mut echo = String::new();
    held.read_line(&mut echo)
        .expect("echo on the held connection");
    assert_eq!(
        echo, "still here\n",
        "the connection held across the rotation"
    );
}

/// The chain a TLS server at `addr` presents (the handshake itself may
/// then fail: this client has no certificate to give).
fn ingress_chain(addr: &str) -> Vec<CertificateDer<'static>> {
    let seen = Arc::new(Recorder::default());
    let mut tls = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(seen.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from("gateway").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), name).unwrap();
    let mut sock = TcpStream::connect(addr).expect("east's ingress");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..10 {
        if !conn.is_handshaking() || conn.complete_io(&mut sock).is_err() {
            break;
        }
    }
    seen.chain.lock().unwrap().clone()
}

/// Records the server's chain and accepts it.
#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().unwrap() = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
