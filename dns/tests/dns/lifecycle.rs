//! Binding, errors, shutdown and drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use fedmesh_dns::{DnsConfig, DnsError, DnsServer, ZoneSnapshot};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use crate::support::{DEADLINE, TestServer, WEB_VIP, addresses, ask, sample};

const WEB: &str = "web.prod.svc.clusterset.local.";

async fn start_on(listen: SocketAddr, snapshot: ZoneSnapshot) -> Result<DnsServer, DnsError> {
    let (_tx, rx) = watch::channel(Arc::new(snapshot));
    DnsServer::start(
        DnsConfig {
            listen,
            upstreams: vec![],
        },
        rx,
    )
    .await
}

/// Polls until nothing accepts TCP connections on `addr` (bounded).
async fn wait_until_closed(addr: SocketAddr) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn port_zero_binds_udp_and_tcp_on_one_port() {
    let dns = TestServer::start(sample()).await;
    assert_ne!(dns.addr().port(), 0);
    assert_eq!(dns.addr().ip(), Ipv4Addr::LOCALHOST);
    // `ask` queries over both transports at local_addr().
    let reply = ask(dns.addr(), WEB, RecordType::A).await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
}

#[tokio::test]
async fn a_taken_udp_port_is_a_bind_error_naming_the_address_and_dns_listen() {
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("local addr");
    let error = start_on(addr, sample())
        .await
        .expect_err("the port is taken");
    assert!(
        matches!(error, DnsError::Bind { proto: "udp", .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("dns.listen"), "{message}");
    assert!(
        std::error::Error::source(&error).is_some(),
        "keeps the io error"
    );
}

#[tokio::test]
async fn a_taken_tcp_port_is_a_bind_error_too() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("local addr");
    // UDP on that port is free (almost always); TCP is not.
    match start_on(addr, sample()).await {
        Err(DnsError::Bind {
            proto,
            addr: failed,
            ..
        }) => {
            assert_eq!(failed, addr);
            assert!(proto == "tcp" || proto == "udp");
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_started_before_the_first_snapshot_answers_once_it_arrives() {
    let dns = TestServer::start(ZoneSnapshot::default()).await;
    // No zone yet and no upstreams: every name is outside, so REFUSED.
    let reply = ask(dns.addr(), WEB, RecordType::A).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
    dns.publish(sample());
    assert_eq!(
        addresses(&ask(dns.addr(), WEB, RecordType::A).await),
        vec![WEB_VIP]
    );
}

#[tokio::test]
async fn a_snapshot_naming_another_zone_moves_the_server_to_it() {
    let dns = TestServer::start(sample()).await;
    let mut moved = sample();
    moved.zone = "mesh.example".into();
    dns.publish(moved);
    let reply = ask(dns.addr(), "web.prod.svc.mesh.example.", RecordType::A).await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
    // The old zone is now outside: refused without upstreams.
    let reply = ask(dns.addr(), WEB, RecordType::A).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
}

#[tokio::test]
async fn an_invalid_zone_serves_nothing_until_a_valid_one_arrives() {
    let mut bad = sample();
    bad.zone = "bad..zone".into();
    let dns = TestServer::start(bad).await;
    let reply = ask(dns.addr(), WEB, RecordType::A).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
    dns.publish(sample());
    assert_eq!(
        addresses(&ask(dns.addr(), WEB, RecordType::A).await),
        vec![WEB_VIP]
    );
}

#[tokio::test]
async fn a_zone_is_accepted_in_any_case_and_with_a_trailing_dot() {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut snapshot = sample();
    snapshot.zone = "ClusterSet.Local.".into();
    let dns = start_on(listen, snapshot).await.expect("valid zone");
    let reply = ask(
        dns.local_addr(),
        "web.prod.svc.clusterset.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let dns = TestServer::start(sample()).await;
    let addr = dns.addr();
    dns.server.shutdown().await;
    wait_until_closed(addr).await;
    // The same port can be bound again.
    let again = start_on(addr, sample())
        .await
        .expect("rebind after shutdown");
    let reply = ask(
        again.local_addr(),
        "web.prod.svc.clusterset.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let dns = TestServer::start(sample()).await;
    let addr = dns.addr();
    drop(dns);
    wait_until_closed(addr).await;
}
