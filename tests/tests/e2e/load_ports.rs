//! Every listening port of a cluster under unauthenticated load: 1 100
//! connections at once to each of west's ports in turn (idle TCP, idle
//! after a TLS handshake on the TLS ports, a few slow writers), while east
//! peers with west and sends traffic through west's ingress. While each
//! attack lasts, east keeps west's export and its connected peering,
//! `fedctl peers` on west answers, west's DNS answers over TCP and a new
//! connection through east's VIP reaches west's backend; then west closes
//! every attacking connection within its deadlines. The numbers (how many
//! connections were refused at once, how long until all were closed) are
//! printed per port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fedmesh_tests::hostile::anonymous_tls;
use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const SYNC: Duration = Duration::from_secs(30);
/// Connections per port.
const LOAD: usize = 1_100;
/// Of them, slow writers: one byte a second.
const SLOW: usize = 10;
/// The longest a server may keep an attacking connection: handshake or
/// idle deadline (10 s) past the moment the last one connected, with room
/// for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(40);

/// File descriptors a server may have open past its count before the
/// attack (the real work's own connections).
const SLACK: usize = 16;

/// How many file descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Connect, send nothing.
    IdleTcp,
    /// Finish a TLS handshake without a client certificate, send nothing.
    IdleTls,
    /// Send one byte a second of what looks like a request.
    Slow,
}

/// Open attacking connections; dropping it closes those still open.
struct Attack {
    tasks: JoinSet<()>,
    closed: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    landed: Arc<AtomicUsize>,
}

impl Attack {
    fn start(rt: &tokio::runtime::Runtime, addr: SocketAddr, tls: bool) -> Self {
        let mut attack = Self {
            tasks: JoinSet::new(),
            closed: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
            landed: Arc::new(AtomicUsize::new(0)),
        };
        let _guard = rt.enter();
        for i in 0..LOAD {
            let kind = match i {
                i if i < SLOW => Kind::Slow,
                i if tls && i % 2 == 0 => Kind::IdleTls,
                _ => Kind::IdleTcp,
            };
            let (closed, refused) = (attack.closed.clone(), attack.refused.clone());
            let landed = attack.landed.clone();
            attack.tasks.spawn(async move {
                hold(addr, kind, &refused, &landed).await;
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
        attack
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// One attacking connection, until the server closes it (bounded: 120 s).
async fn hold(addr: SocketAddr, kind: Kind, refused: &AtomicUsize, landed: &AtomicUsize) {
    let started = Instant::now();
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        landed.fetch_add(1, Ordering::SeqCst);
        refused.fetch_add(1, Ordering::SeqCst);
        return;
    };
    // Connected: TLS handshakes go on while the real work is checked.
    landed.fetch_add(1, Ordering::SeqCst);
    let bounded = tokio::time::timeout(Duration::from_secs(120), async {
        let mut buf = [0u8; 512];
        match kind {
            Kind::IdleTcp => while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {},
            Kind::IdleTls => {
                let connector = tokio_rustls::TlsConnector::from(anonymous_tls());
                let name =
                    rustls::pki_types::ServerName::try_from("peer.fedmesh").expect("a static name");
                if let Ok(mut tls) = connector.connect(name, tcp).await {
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            }
            Kind::Slow => {
                for &b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                    .iter()
                    .cycle()
                    .take(120)
                {
                    if tcp.write_all(&[b]).await.is_err() {
                        return;
                    }
                    let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf));
                    if matches!(read.await, Ok(Ok(0) | Err(_))) {
                        return;
                    }
                }
            }
        }
    });
    let _ = bounded.await;
    if started.elapsed() < Duration::from_millis(500) {
        // Closed at once: the cap refused it.
        refused.fetch_add(1, Ordering::SeqCst);
    }
}

/// One A question over TCP (RFC 7766; RFC 1035 §4.2.2: a two-byte length
/// before each message); its response code.
async fn dns_over_tcp(server: SocketAddr, name: &str) -> Result<String, String> {
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(name).map_err(|e| e.to_string())?,
        RecordType::A,
    ));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let ask = async {
        let mut tcp = TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        tcp.write_all(&len.to_be_bytes()).await?;
        tcp.write_all(&bytes).await?;
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tcp.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .map_err(|_| "no answer in 3 s".to_string())?
        .map_err(|e| e.to_string())?;
    let reply = Message::from_vec(&reply).map_err(|e| e.to_string())?;
    Ok(format!("{:?}", reply.metadata.response_code))
}

/// East and west with gateways; west serves demo/hello to east.
fn federation() -> (Federation, Backend, SocketAddr) {
    let mut fed = Federation::standard_with_web(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let west = fed.get("west");
    let backend: SocketAddr = (west.ip, 18080).into();
    west.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&backend.ip().to_string()],
        ),
    );
    let backend = Backend::start(backend, "west");
    let east = fed.get("east");
    wait_until("east imports hello from west", SYNC, || {
        east.service_clusters("demo/hello") == ["west"]
    });
    let vip: std::net::IpAddr = east.service("demo/hello").unwrap()["vip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let vip = SocketAddr::new(vip, 8080);
    wait_until("a connection through east's VIP reaches west", SYNC, || {
        ask_backend(vip).as_deref() == Ok("west")
    });
    (fed, backend, vip)
}

/// What must keep working while a port is under load.
fn real_work_continues(rt: &tokio::runtime::Runtime, fed: &Federation, vip: SocketAddr) {
    let (east, west) = (fed.get("east"), fed.get("west"));
    let peers = west.fedctl(&["peers"]);
    assert!(peers.ok, "fedctl peers on west answers: {}", peers.stderr);
    let code = rt.block_on(dns_over_tcp(west.dns(), "hello.demo.svc.clusterset.local"));
    assert_eq!(
        code.as_deref(),
        Ok("NoError"),
        "west's DNS answers over TCP"
    );
    assert_eq!(
        east.service_clusters("demo/hello"),
        ["west"],
        "east keeps west's export"
    );
    assert_eq!(east.peer_state("west").as_deref(), Some("connected"));
    assert_eq!(
        ask_backend(vip).as_deref(),
        Ok("west"),
        "a new connection through the gateway works"
    );
}

#[test]
fn a_thousand_idle_unauthenticated_connections_on_each_port_leave_the_real_work_running() {
    let _ = rlimit::increase_nofile_limit(16_384);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the attack");
    let (fed, _backend, vip) = federation();
    let west = fed.get("west");
    let parse = |a: String| -> SocketAddr { a.parse().expect("a harness address") };
    let control = west.pid().expect("west runs");
    let gateway = west.gateway_pid().expect("west's gateway runs");
    let ports = [
        ("peering", parse(west.peering()), true, control),
        ("gateway API", parse(west.gateway_api()), true, control),
        ("gateway ingress", parse(west.ingress()), true, gateway),
        ("DNS over TCP", west.dns(), false, control),
        ("admin", parse(west.admin()), false, control),
        (
            "gateway admin",
            SocketAddr::from((west.ip, 15090)),
            false,
            gateway,
        ),
        ("web", SocketAddr::from((west.ip, 15080)), false, control),
    ];
    for (name, addr, tls, pid) in ports {
        let before = open_fds(pid);
        let started = Instant::now();
        let attack = Attack::start(&rt, addr, tls);
        wait_until(
            &format!("every connection to the {name} port landed"),
            SYNC,
            || attack.landed.load(Ordering::SeqCst) == LOAD,
        );
        let peak = open_fds(pid);
        real_work_continues(&rt, &fed, vip);
        let answered = started.elapsed();
        // Counted on the server's side, not the attacker's: a connection
        // the kernel dropped from a full accept queue is gone for the
        // server although an idle client never learns it.
        let what = format!("west closes every connection to its {name} port");
        wait_until(&what, CLOSED_WITHIN, || open_fds(pid) <= before + SLACK);
        println!(
            "{name}: {LOAD} connections; {} closed within 0.5 s; server fds {before} before, {peak} at the peak, back under {} after {:?}; real work answered {answered:?} after the attack began; {} seen closed by the client",
            attack.refused.load(Ordering::SeqCst),
            before + SLACK,
            started.elapsed(),
            attack.closed()
        );
        drop(attack);
    }
    real_work_continues(&rt, &fed, vip);
}
