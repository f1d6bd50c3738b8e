//! Unauthenticated load cannot take a cluster out: idle TLS connections
//! without a client certificate are capped and closed, an oversized Join
//! is refused before it is decoded, and a second control plane cannot take
//! a live unix admin socket over.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fedmesh_proto::v1;
use fedmesh_proto::v1::peering_client::PeeringClient;
use fedmesh_tests::hostile::anonymous_tls;
use fedmesh_tests::{Federation, bin, wait_until};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const LINK: Duration = Duration::from_secs(15);

/// Idle connections opened at once: more than the cap on unauthenticated
/// connections (256), fewer than the soft open-file limit of a test run.
const IDLE: usize = 300;

/// Opens `n` TLS connections that finish the handshake and then send
/// nothing; counts those the server has closed.
fn open_idle(rt: &tokio::runtime::Runtime, addr: SocketAddr, n: usize) -> Arc<AtomicUsize> {
    let closed = Arc::new(AtomicUsize::new(0));
    let connector = tokio_rustls::TlsConnector::from(anonymous_tls());
    for _ in 0..n {
        let (connector, closed) = (connector.clone(), closed.clone());
        rt.spawn(async move {
            let Ok(tcp) = TcpStream::connect(addr).await else {
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            };
            let name = ServerName::try_from("peer.fedmesh").expect("static name");
            if let Ok(mut tls) = connector.connect(name, tcp).await {
                // Reads end (EOF or error) only when the server closes;
                // the bound keeps a broken server from holding the test.
                let mut buf = [0u8; 256];
                let bounded = tokio::time::timeout(Duration::from_secs(120), async {
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                });
                let _ = bounded.await;
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    closed
}

#[test]
fn idle_connections_without_a_certificate_are_closed_and_peers_still_connect() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", LINK);
    let log = fed.get("east").log();
    assert!(log.contains("open-file limit"), "{log}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let peering: SocketAddr = fed.get("east").peering().parse().expect("address");
    let closed = open_idle(&rt, peering, IDLE);
    wait_until("the connections past the cap closed", LINK, || {
        closed.load(Ordering::SeqCst) >= IDLE - 256
    });

    // With every unauthenticated place taken, the admin API answers and a
    // peer with its certificate still connects.
    let west = fed.get_mut("west");
    assert!(west.terminate(), "west stopped");
    west.start();
    fed.wait_connected("east", "west", LINK);
    let peers = fed.get("east").fedctl(&["peers"]);
    assert!(peers.ok, "{}", peers.stderr);

    // Idle deadline 10 s: every idle connection is closed well within 30 s.
    wait_until(
        "every idle connection closed by the server",
        Duration::from_secs(30),
        || closed.load(Ordering::SeqCst) == IDLE,
    );
}

#[test]
fn a_one_megabyte_join_is_refused_and_a_real_join_works() {
    let fed = Federation::standard(2, "");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let status = rt.block_on(async {
        let channel =
            fedmesh_proto::transport::connect(&fed.get("east").peering(), anonymous_tls(), LINK)
                .await
                .expect("dial east's peering port");
        let mut client = PeeringClient::new(channel).max_encoding_message_size(4 << 20);
        let huge = v1::JoinRequest {
            secret: vec![7u8; 1 << 20],
            joiner: None,
            taken_names: Vec::new(),
        };
        client.join(huge).await.expect_err("a 1 MB join is refused")
    });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("join request larger than"),
        "{status:?}"
    );
    fed.join("west", "east");
    fed.wait_connected("east", "west", LINK);
}

/// Runs `fedctl run` with `config`, expecting it to exit by itself within
/// `deadline`; one that keeps serving is killed and fails the test.
fn run_bounded(config: &std::path::Path, deadline: Duration) -> (bool, String) {
    let err = config.with_file_name("second.stderr");
    let mut child = Command::new(bin("fedctl"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn fedctl run");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the second control plane kept running (it took the socket over):\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

fn peers_over(socket: &std::path::Path) -> fedmesh_tests::Out {
    let out = Command::new(bin("fedctl"))
        .args(["peers", "--admin"])
        .arg(format!("unix:{}", socket.display()))
        .env_remove("FEDCTL_ADMIN")
        .stdin(Stdio::null())
        .output()
        .expect("run fedctl");
    fedmesh_tests::Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_second_control_plane_on_a_live_unix_socket_exits_and_the_first_keeps_serving() {
    let mut fed = Federation::new();
    let socket = fed.root().join("admin.sock");
    for (name, region, zone) in [("east", "us-east", "us-east-1a"), ("west", "us-west", "a")] {
        let i = fed.add(name, region, zone, "");
        let c = &fed.clusters[i];
        let yaml = std::fs::read_to_string(&c.config).expect("config");
        let tcp_admin = format!("adminListen: {}\n", c.admin());
        let unix_admin = format!("adminListen: unix:{}\n", socket.display());
        c.write_config(&yaml.replacen(&tcp_admin, &unix_admin, 1));
    }
    fed.get_mut("east").start();

    let (ok, stderr) = run_bounded(&fed.get("west").config, Duration::from_secs(20));
    assert!(!ok, "the second control plane exited non-zero");
    assert!(
        stderr.contains("is in use") && stderr.contains("admin.sock"),
        "{stderr}"
    );
    let peers = peers_over(&socket);
    assert!(peers.ok, "the first still serves: {}", peers.stderr);
}
