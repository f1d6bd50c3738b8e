//! UDP answers that do not fit 512 bytes (or the EDNS size) are truncated
//! with TC set (RFC 1035 §4.2.1, RFC 6891 §6.2.5); TCP carries them whole.
//!
//! One SRV question has one RRset, so the big answer comes from many ports
//! sharing one name.

use fedmesh_dns::PortRecord;
use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RecordType;

use crate::support::{TestServer, encode, query, query_with_edns, sample, tcp, udp_raw};

// About 50 bytes per SRV record (RFC 2782: the target is never compressed):
// 60 records are well over 1232 bytes and well under 4096.
const PORTS: u16 = 60;
const SRV_NAME: &str = "_grpc._tcp.web.prod.svc.clusterset.local.";

async fn many_ports() -> TestServer {
    let mut snapshot = sample();
    snapshot
        .services
        .get_mut(&("prod".to_string(), "web".to_string()))
        .expect("web")
        .ports = (0..PORTS)
        .map(|i| PortRecord {
            name: "grpc".into(),
            port: 20_000 + i,
            weight: 1,
        })
        .collect();
    TestServer::start(snapshot).await
}

#[tokio::test]
async fn a_big_udp_answer_without_edns_is_truncated_to_512_bytes_with_tc() {
    let dns = many_ports().await;
    let message = query(SRV_NAME, RecordType::SRV);
    let raw = udp_raw(dns.addr(), &encode(&message), message.metadata.id).await;
    assert!(raw.len() <= 512, "UDP reply of {} bytes", raw.len());
    let reply = Message::from_vec(&raw).expect("the reply decodes");
    assert!(reply.metadata.truncation, "TC must be set: {reply}");
    assert!(reply.answers.len() < usize::from(PORTS));
}

#[tokio::test]
async fn the_same_answer_over_tcp_is_whole() {
    let dns = many_ports().await;
    let reply = tcp(dns.addr(), &query(SRV_NAME, RecordType::SRV)).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), usize::from(PORTS));
}

#[tokio::test]
async fn a_big_udp_answer_fits_a_large_edns_size() {
    let dns = many_ports().await;
    let message = query_with_edns(SRV_NAME, RecordType::SRV, 4096);
    let raw = udp_raw(dns.addr(), &encode(&message), message.metadata.id).await;
    let reply = Message::from_vec(&raw).expect("the reply decodes");
    assert!(raw.len() > 512);
    assert!(!reply.metadata.truncation, "{reply}");
    assert_eq!(reply.answers.len(), usize::from(PORTS));
}

#[tokio::test]
async fn a_big_udp_answer_over_a_small_edns_size_is_truncated() {
    let dns = many_ports().await;
    let message = query_with_edns(SRV_NAME, RecordType::SRV, 1232);
    let raw = udp_raw(dns.addr(), &encode(&message), message.metadata.id).await;
    let reply = Message::from_vec(&raw).expect("the reply decodes");
    assert!(raw.len() <= 1232, "UDP reply of {} bytes", raw.len());
    assert!(reply.metadata.truncation, "{reply}");
}
