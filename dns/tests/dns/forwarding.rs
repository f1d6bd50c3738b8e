//! Names outside the zone: forwarded to `upstreams` (here a second
//! `DnsServer` serving another zone), or REFUSED without upstreams.

use std::net::Ipv4Addr;

use fedmesh_dns::{ServiceRecord, ZoneSnapshot};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;

use crate::support::{TestServer, addresses, ask, assert_nxdomain, query, sample, tcp, udp};

const UPSTREAM_VIP: Ipv4Addr = Ipv4Addr::new(127, 250, 0, 1);

/// An upstream authoritative for `upstream.test` with one service.
async fn upstream() -> TestServer {
    TestServer::start(ZoneSnapshot {
        zone: "upstream.test".into(),
        ttl: 30,
        services: fedmesh_dns::service_records([ServiceRecord {
            namespace: "team".into(),
            name: "api".into(),
            vip: UPSTREAM_VIP,
            ports: vec![],
            clusters: vec![],
        }]),
        serial: 1,
    })
    .await
}

#[tokio::test]
async fn names_outside_the_zone_are_answered_through_the_upstream() {
    let upstream = upstream().await;
    let dns = TestServer::with_upstreams(sample(), vec![upstream.addr()]).await;

    let reply = ask(dns.addr(), "api.team.svc.upstream.test.", RecordType::A).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply}"
    );
    assert_eq!(addresses(&reply), vec![UPSTREAM_VIP]);
    // A forwarded answer is not ours: no AA, and recursion is available.
    assert!(!reply.metadata.authoritative, "{reply}");
    assert!(reply.metadata.recursion_available, "{reply}");
}

#[tokio::test]
async fn an_upstream_nxdomain_is_passed_on() {
    let upstream = upstream().await;
    let dns = TestServer::with_upstreams(sample(), vec![upstream.addr()]).await;
    let reply = ask(dns.addr(), "nope.team.svc.upstream.test.", RecordType::A).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NXDomain,
        "{reply}"
    );
    assert!(!reply.metadata.authoritative);
}

#[tokio::test]
async fn names_in_the_zone_are_never_forwarded() {
    let upstream = upstream().await;
    let dns = TestServer::with_upstreams(sample(), vec![upstream.addr()]).await;
    let reply = ask(dns.addr(), "nope.prod.svc.clusterset.local.", RecordType::A).await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn names_outside_the_zone_are_refused_without_upstreams() {
    let dns = TestServer::start(sample()).await;
    for outside in ["example.com.", "local.", "api.team.svc.upstream.test."] {
        let message = query(outside, RecordType::A);
        for reply in [
            udp(dns.addr(), &message).await,
            tcp(dns.addr(), &message).await,
        ] {
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{reply}"
            );
            assert!(reply.answers.is_empty());
        }
    }
}
