//! The fast path against hickory, message for message: for every kind of
//! name, type, EDNS variant and letter case, the pre-encoded response
//! decodes to exactly what hickory's path answers (header bits, question,
//! every record with owner case, TTL and data, and the OPT record).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::sync::watch;

use super::*;
use crate::router::ZoneRouter;
use crate::snapshot::{
    ClusterRecord, EndpointRecord, PortRecord, ServiceRecord, service_records, zone_name,
};
use crate::udp::hickory_answer;

pub(super) fn snapshot() -> ZoneSnapshot {
    let web = ServiceRecord {
        namespace: "prod".into(),
        name: "web".into(),
        vip: Ipv4Addr::new(127, 240, 0, 10),
        ports: vec![
            PortRecord {
                name: "http".into(),
                port: 8080,
                weight: 10,
            },
            PortRecord {
                name: "http".into(),
                port: 8081,
                weight: 5,
            },
        ],
        clusters: vec![ClusterRecord {
            cluster: "east".into(),
            pinned_vip: Ipv4Addr::new(127, 240, 0, 11),
            endpoints: vec![],
        }],
    };
    let db = ServiceRecord {
        namespace: "prod".into(),
        name: "db".into(),
        vip: Ipv4Addr::new(127, 240, 0, 20),
        ports: vec![],
        clusters: vec![],
    };
    // Headless: two named endpoints in east, SRV listing them.
    let pg = ServiceRecord {
        namespace: "prod".into(),
        name: "pg".into(),
        vip: Ipv4Addr::new(127, 240, 0, 30),
        ports: vec![PortRecord {
            name: "pg".into(),
            port: 5432,
            weight: 100,
        }],
        clusters: vec![ClusterRecord {
            cluster: "east".into(),
            pinned_vip: Ipv4Addr::new(127, 240, 0, 31),
            endpoints: vec![
                EndpointRecord {
                    hostname: "pg-0".into(),
                    vip: Ipv4Addr::new(127, 240, 0, 32),
                },
                EndpointRecord {
                    hostname: "pg-1".into(),
                    vip: Ipv4Addr::new(127, 240, 0, 33),
                },
            ],
        }],
    };
    ZoneSnapshot {
        zone: "clusterset.local".into(),
        ttl: 5,
        services: service_records([web, db, pg]),
        serial: 7,
    }
}

fn fast_zone(snapshot: &Arc<ZoneSnapshot>) -> FastZone {
    let zone = zone_name(&snapshot.zone).expect("valid zone");
    let index = ZoneIndex::build(Arc::clone(snapshot), &zone);
    FastZone::build(Arc::clone(snapshot), Some(&index))
}

/// Every kind of name: apex, empty non-terminals, VIP, pinned, SRV, and
/// NXDOMAIN ones.
pub(super) const NAMES: [&str; 17] = [
    "clusterset.local.",
    "svc.clusterset.local.",
    "prod.svc.clusterset.local.",
    "web.prod.svc.clusterset.local.",
    "db.prod.svc.clusterset.local.",
    "east.web.prod.svc.clusterset.local.",
    "_tcp.web.prod.svc.clusterset.local.",
    "_http._tcp.web.prod.svc.clusterset.local.",
    "_tcp.db.prod.svc.clusterset.local.",
    "west.web.prod.svc.clusterset.local.",
    "dev.svc.clusterset.local.",
    "ns.clusterset.local.",
    "pg-0.east.pg.prod.svc.clusterset.local.",
    "pg-1.east.pg.prod.svc.clusterset.local.",
    "pg-9.east.pg.prod.svc.clusterset.local.",
    "pg-0.west.pg.prod.svc.clusterset.local.",
    "_pg._tcp.pg.prod.svc.clusterset.local.",
];

pub(super) const TYPES: [RecordType; 7] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::SOA,
    RecordType::NS,
    RecordType::TXT,
    RecordType::HTTPS,
];

/// 0x20 case randomisation (a fixed pattern, so a failure replays).
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 3 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// No OPT; OPT; OPT with DO; OPT with a buffer below 512.
fn edns_variants() -> [Option<Edns>; 4] {
    let with = |payload: u16, dnssec_ok: bool| {
        let mut edns = Edns::new();
        edns.set_max_payload(payload).set_dnssec_ok(dnssec_ok);
        Some(edns)
    };
    [None, with(1232, false), with(1232, true), with(100, true)]
}

pub(super) fn query(
    id: u16,
    name: &str,
    qtype: RecordType,
    edns: Option<Edns>,
    rd: bool,
) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = rd;
    message.metadata.checking_disabled = id.is_multiple_of(2);
    let name = Name::from_ascii(name).expect("valid test name");
    message.add_query(Query::query(name, qtype));
    message.edns = edns;
    message.to_vec().expect("a test query encodes")
}

fn decode(bytes: &[u8]) -> String {
    // Debug output keeps the case of names, unlike `Name`'s `==`.
    format!(
        "{:#?}",
        Message::from_vec(bytes).expect("a response decodes")
    )
}

#[tokio::test]
async fn fast_answers_decode_to_hickorys_for_every_kind_of_name() {
    let snapshot = Arc::new(snapshot());
    let fast = fast_zone(&snapshot);
    let (_tx, rx) = watch::channel(Arc::clone(&snapshot));
    let router = ZoneRouter::new(rx, &[]).expect("a router without upstreams");
    let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 5300));
    let mut id = 0u16;
    let mut out = Vec::new();
    for name in NAMES {
        for spelled in [name.to_string(), mixed_case(name)] {
            for qtype in TYPES {
                for edns in edns_variants() {
                    id += 1;
                    let packet = query(id, &spelled, qtype, edns, !id.is_multiple_of(3));
                    let what = format!("{spelled} {qtype} {:?}", Message::from_vec(&packet));
                    assert!(fast.respond(&packet, &mut out), "fast path skipped {what}");
                    let slow = hickory_answer(&router, &packet, src)
                        .await
                        .expect("hickory answers");
                    assert_eq!(decode(&out), decode(&slow), "{what}");
                }
            }
        }
    }
}

#[test]
fn answer_owners_point_at_the_question_so_the_case_is_the_clients() {
    let snapshot = Arc::new(snapshot());
    let fast = fast_zone(&snapshot);
    let packet = query(
        9,
        "wEb.PrOd.SvC.clusterSET.local.",
        RecordType::A,
        None,
        true,
    );
    let mut out = Vec::new();
    assert!(fast.respond(&packet, &mut out));
    let question_end = packet.len();
    assert_eq!(out[12..question_end], packet[12..]);
    assert_eq!(out[question_end..question_end + 2], [0xc0, 12]);
}

#[test]
fn uncommon_queries_are_left_to_hickory() {
    let snapshot = Arc::new(snapshot());
    let fast = fast_zone(&snapshot);
    let web = "web.prod.svc.clusterset.local.";
    let mut out = Vec::new();
    for qtype in [RecordType::ANY, RecordType::AXFR, RecordType::IXFR] {
        let packet = query(1, web, qtype, None, true);
        assert!(!fast.respond(&packet, &mut out), "{qtype}");
    }
    let outside = query(2, "example.com.", RecordType::A, None, true);
    assert!(!fast.respond(&outside, &mut out));
    let mut chaos = Message::new(3, MessageType::Query, OpCode::Query);
    let mut question = Query::query(Name::from_ascii(web).expect("valid"), RecordType::A);
    question.set_query_class(DNSClass::CH);
    chaos.add_query(question);
    assert!(!fast.respond(&chaos.to_vec().expect("encodes"), &mut out));
}

#[test]
fn a_snapshot_without_a_valid_zone_answers_nothing_fast() {
    let snapshot = Arc::new(ZoneSnapshot::default());
    let fast = FastZone::build(Arc::clone(&snapshot), None);
    let packet = query(
        1,
        "web.prod.svc.clusterset.local.",
        RecordType::A,
        None,
        true,
    );
    assert!(!fast.respond(&packet, &mut Vec::new()));
}

#[test]
fn a_response_larger_than_the_clients_buffer_is_left_to_hickory() {
    let mut big = snapshot();
    // 40 SRV targets of about 60 octets each exceed 512 octets.
    let web = ("prod".to_string(), "web".to_string());
    big.services.get_mut(&web).expect("web").ports = (0..40)
        .map(|i| PortRecord {
            name: "http".into(),
            port: 8000 + i,
            weight: 1,
        })
        .collect();
    let snapshot = Arc::new(big);
    let fast = fast_zone(&snapshot);
    let srv = "_http._tcp.web.prod.svc.clusterset.local.";
    let mut out = Vec::new();
    assert!(!fast.respond(&query(1, srv, RecordType::SRV, None, true), &mut out));
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let packet = query(2, srv, RecordType::SRV, Some(edns), true);
    assert!(fast.respond(&packet, &mut out));
}

#[test]
fn the_zone_must_start_at_a_label_boundary() {
    let zone = b"\x0aclusterset\x05local\x00";
    let mut below = b"\x03web".to_vec();
    below.extend_from_slice(zone);
    assert!(in_zone(&below, zone));
    assert!(in_zone(zone, zone));
    // One label whose bytes spell the zone: not under it.
    let mut inside = vec![17];
    inside.extend_from_slice(&zone[..17]);
    inside.push(0);
    assert_eq!(inside[1..], zone[..]);
    assert!(!in_zone(&inside, zone));
    assert!(!in_zone(b"\x05local\x00", zone));
}
