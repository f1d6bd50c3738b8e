//! Answers follow the published snapshot: the next query after a publish
//! sees it (the handler reads the watch channel on every query), so these
//! tests need no waiting.

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::Ipv4Addr;

use crate::support::{
    SERIAL, TestServer, WEB_VIP, addresses, ask, assert_negative, assert_nxdomain, db, sample,
};

const WEB: &str = "web.prod.svc.clusterset.local.";

#[tokio::test]
async fn a_removed_service_becomes_nxdomain() {
    let dns = TestServer::start(sample()).await;
    assert_eq!(
        addresses(&ask(dns.addr(), WEB, RecordType::A).await),
        vec![WEB_VIP]
    );

    let mut snapshot = sample();
    snapshot
        .services
        .remove(&("prod".to_string(), "web".to_string()));
    dns.publish(snapshot);

    assert_nxdomain(&ask(dns.addr(), WEB, RecordType::A).await);
    assert_nxdomain(
        &ask(
            dns.addr(),
            "east.web.prod.svc.clusterset.local.",
            RecordType::A,
        )
        .await,
    );
}

#[tokio::test]
async fn an_added_service_answers_its_vip() {
    let mut first = sample();
    first.services = fedmesh_dns::service_records([db()]);
    let dns = TestServer::start(first).await;
    assert_nxdomain(&ask(dns.addr(), WEB, RecordType::A).await);

    dns.publish(sample());

    assert_eq!(
        addresses(&ask(dns.addr(), WEB, RecordType::A).await),
        vec![WEB_VIP]
    );
}

#[tokio::test]
async fn a_changed_vip_is_answered_at_once() {
    let dns = TestServer::start(sample()).await;
    let moved = Ipv4Addr::new(127, 240, 1, 1);
    let mut snapshot = sample();
    snapshot
        .services
        .get_mut(&("prod".to_string(), "web".to_string()))
        .expect("web")
        .vip = moved;
    dns.publish(snapshot);
    assert_eq!(
        addresses(&ask(dns.addr(), WEB, RecordType::A).await),
        vec![moved]
    );
}

#[tokio::test]
async fn the_soa_serial_follows_the_snapshot() {
    let dns = TestServer::start(sample()).await;
    let mut snapshot = sample();
    snapshot.serial = SERIAL + 1;
    dns.publish(snapshot);

    let reply = ask(dns.addr(), "clusterset.local.", RecordType::SOA).await;
    let RData::SOA(soa) = &reply.answers[0].data else {
        panic!("expected an SOA: {reply}");
    };
    assert_eq!(soa.serial, SERIAL + 1);
    let reply = ask(dns.addr(), "nope.clusterset.local.", RecordType::A).await;
    assert_negative(&reply, ResponseCode::NXDomain, SERIAL + 1);
}

#[tokio::test]
async fn the_last_namespace_service_removed_makes_the_namespace_nxdomain() {
    let dns = TestServer::start(sample()).await;
    let mut snapshot = sample();
    snapshot.services.clear();
    dns.publish(snapshot);
    assert_nxdomain(&ask(dns.addr(), "prod.svc.clusterset.local.", RecordType::A).await);
}

#[tokio::test]
async fn the_last_snapshot_keeps_being_served_after_the_publisher_is_gone() {
    let TestServer { server, snapshots } = TestServer::start(sample()).await;
    drop(snapshots);
    assert_eq!(
        addresses(&ask(server.local_addr(), WEB, RecordType::A).await),
        vec![WEB_VIP]
    );
}
