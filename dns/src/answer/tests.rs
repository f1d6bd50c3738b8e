use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Answer, answer};
use crate::snapshot::{
    ClusterRecord, EndpointRecord, PortRecord, ServiceRecord, ZoneIndex, ZoneSnapshot,
    service_records, zone_name,
};

const WEB_VIP: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 10);
const EAST_VIP: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 11);
const PG_VIP: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 30);
const PG_0_VIP: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 40);
const PG_2_VIP: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 42);

fn snapshot() -> ZoneSnapshot {
    ZoneSnapshot {
        zone: "clusterset.local".into(),
        ttl: 7,
        serial: 42,
        services: service_records([
            ServiceRecord {
                namespace: "prod".into(),
                name: "web".into(),
                vip: WEB_VIP,
                ports: vec![
                    PortRecord {
                        name: "http".into(),
                        port: 8080,
                        weight: 3,
                    },
                    PortRecord {
                        name: String::new(),
                        port: 9000,
                        weight: 1,
                    },
                ],
                clusters: vec![ClusterRecord {
                    cluster: "east".into(),
                    pinned_vip: EAST_VIP,
                    endpoints: vec![],
                }],
            },
            ServiceRecord {
                namespace: "prod".into(),
                name: "db".into(),
                vip: Ipv4Addr::new(240, 0, 0, 20),
                ports: vec![PortRecord {
                    name: String::new(),
                    port: 5432,
                    weight: 1,
                }],
                clusters: vec![],
            },
            ServiceRecord {
                namespace: "prod".into(),
                name: "pg".into(),
                vip: PG_VIP,
                ports: vec![PortRecord {
                    name: "pg".into(),
                    port: 5432,
                    weight: 100,
                }],
                clusters: vec![
                    ClusterRecord {
                        cluster: "east".into(),
                        pinned_vip: Ipv4Addr::new(240, 0, 0, 31),
                        endpoints: vec![EndpointRecord {
                            hostname: "pg-0".into(),
                            vip: PG_0_VIP,
                        }],
                    },
                    ClusterRecord {
                        cluster: "west".into(),
                        pinned_vip: Ipv4Addr::new(240, 0, 0, 32),
                        endpoints: vec![EndpointRecord {
                            hostname: "pg-2".into(),
                            vip: PG_2_VIP,
                        }],
                    },
                ],
            },
        ]),
    }
}

fn index() -> ZoneIndex {
    let zone = zone_name("clusterset.local").expect("valid zone");
    ZoneIndex::build(Arc::new(snapshot()), &zone)
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid test name")
}

fn ask(qname: &str, qtype: RecordType) -> Answer {
    answer(&index(), &name(qname), qtype)
}

fn record(owner: &str, data: RData) -> Record {
    Record::from_rdata(name(owner), 7, data)
}

fn only(answers: Vec<Record>) -> Answer {
    Answer::Records {
        answers,
        additionals: vec![],
    }
}

fn soa() -> RData {
    RData::SOA(SOA::new(
        name("ns.clusterset.local."),
        name("hostmaster.clusterset.local."),
        42,
        3600,
        900,
        604_800,
        7,
    ))
}

#[test]
fn a_for_a_service_is_its_vip() {
    let web = "web.prod.svc.clusterset.local.";
    assert_eq!(
        ask(web, RecordType::A),
        only(vec![record(web, RData::A(A(WEB_VIP)))])
    );
}

#[test]
fn aaaa_for_a_service_is_nodata_with_soa() {
    // The SOA itself is added by the Catalog (see the integration tests).
    assert_eq!(
        ask("web.prod.svc.clusterset.local.", RecordType::AAAA),
        Answer::NoData
    );
}

#[test]
fn other_types_for_a_service_are_nodata() {
    for qtype in [
        RecordType::TXT,
        RecordType::MX,
        RecordType::SRV,
        RecordType::CNAME,
    ] {
        assert_eq!(
            ask("web.prod.svc.clusterset.local.", qtype),
            Answer::NoData,
            "{qtype}"
        );
    }
}

#[test]
fn any_for_a_service_is_its_a_record() {
    let web = "web.prod.svc.clusterset.local.";
    assert_eq!(
        ask(web, RecordType::ANY),
        only(vec![record(web, RData::A(A(WEB_VIP)))])
    );
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_question_case() {
    let web = "Web.PROD.svc.ClusterSet.Local.";
    let Answer::Records { answers, .. } = ask(web, RecordType::A) else {
        panic!("expected records");
    };
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0].name.eq_case(&name(web)),
        "owner {}",
        answers[0].name
    );
    assert_eq!(answers[0].data, RData::A(A(WEB_VIP)));
}

#[test]
fn a_for_a_cluster_label_is_the_pinned_vip() {
    let east = "east.web.prod.svc.clusterset.local.";
    assert_eq!(
        ask(east, RecordType::A),
        only(vec![record(east, RData::A(A(EAST_VIP)))])
    );
}

#[test]
fn aaaa_for_a_pinned_name_is_nodata() {
    assert_eq!(
        ask("east.web.prod.svc.clusterset.local.", RecordType::AAAA),
        Answer::NoData
    );
}

#[test]
fn unknown_cluster_label_is_nxdomain() {
    assert_eq!(
        ask("west.web.prod.svc.clusterset.local.", RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn srv_for_a_named_port_points_at_the_service_with_its_a_record_as_additional() {
    let owner = "_http._tcp.web.prod.svc.clusterset.local.";
    let target = name("web.prod.svc.clusterset.local.");
    assert_eq!(
        ask(owner, RecordType::SRV),
        Answer::Records {
            answers: vec![record(
                owner,
                RData::SRV(SRV::new(0, 3, 8080, target.clone()))
            )],
            additionals: vec![Record::from_rdata(target, 7, RData::A(A(WEB_VIP)))],
        }
    );
}

#[test]
fn srv_target_is_lowercase_whatever_the_question_case() {
    let Answer::Records { answers, .. } =
        ask("_HTTP._TCP.WEB.PROD.SVC.CLUSTERSET.LOCAL.", RecordType::SRV)
    else {
        panic!("expected records");
    };
    let RData::SRV(srv) = &answers[0].data else {
        panic!("expected SRV");
    };
    assert!(srv.target.eq_case(&name("web.prod.svc.clusterset.local.")));
}

#[test]
fn ports_sharing_a_name_form_one_srv_rrset() {
    let mut snapshot = snapshot();
    snapshot
        .services
        .get_mut(&("prod".to_string(), "web".to_string()))
        .expect("web")
        .ports = (0..3)
        .map(|i| PortRecord {
            name: "grpc".into(),
            port: 9000 + i,
            weight: 1,
        })
        .collect();
    let zone = zone_name("clusterset.local").expect("valid zone");
    let index = ZoneIndex::build(Arc::new(snapshot), &zone);
    let qname = name("_grpc._tcp.web.prod.svc.clusterset.local.");
    let Answer::Records {
        answers,
        additionals,
    } = answer(&index, &qname, RecordType::SRV)
    else {
        panic!("expected records");
    };
    assert_eq!(answers.len(), 3);
    assert_eq!(additionals.len(), 1);
}

#[test]
fn a_for_an_srv_name_is_nodata() {
    assert_eq!(
        ask("_http._tcp.web.prod.svc.clusterset.local.", RecordType::A),
        Answer::NoData
    );
}

#[test]
fn unknown_port_name_is_nxdomain() {
    assert_eq!(
        ask("_grpc._tcp.web.prod.svc.clusterset.local.", RecordType::SRV),
        Answer::NxDomain
    );
}

#[test]
fn tcp_under_a_service_with_named_ports_is_nodata() {
    assert_eq!(
        ask("_tcp.web.prod.svc.clusterset.local.", RecordType::SRV),
        Answer::NoData
    );
}

#[test]
fn tcp_under_a_service_without_named_ports_is_nxdomain() {
    assert_eq!(
        ask("_tcp.db.prod.svc.clusterset.local.", RecordType::SRV),
        Answer::NxDomain
    );
}

#[test]
fn svc_under_the_zone_is_nodata() {
    assert_eq!(ask("svc.clusterset.local.", RecordType::A), Answer::NoData);
}

#[test]
fn svc_under_an_empty_zone_is_still_nodata() {
    let zone = zone_name("clusterset.local").expect("valid zone");
    let empty = ZoneSnapshot {
        zone: "clusterset.local".into(),
        ..ZoneSnapshot::default()
    };
    let index = ZoneIndex::build(Arc::new(empty), &zone);
    let qname = name("svc.clusterset.local.");
    assert_eq!(answer(&index, &qname, RecordType::A), Answer::NoData);
}

#[test]
fn a_namespace_with_services_is_nodata() {
    assert_eq!(
        ask("prod.svc.clusterset.local.", RecordType::A),
        Answer::NoData
    );
}

#[test]
fn a_namespace_without_services_is_nxdomain() {
    assert_eq!(
        ask("dev.svc.clusterset.local.", RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn unknown_name_in_zone_is_nxdomain() {
    assert_eq!(
        ask("www.clusterset.local.", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        ask("api.prod.svc.clusterset.local.", RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn soa_at_the_apex_carries_the_snapshot_serial_and_ttl_as_minimum() {
    let apex = "clusterset.local.";
    assert_eq!(ask(apex, RecordType::SOA), only(vec![record(apex, soa())]));
}

#[test]
fn ns_at_the_apex_names_ns_under_the_zone() {
    let apex = "clusterset.local.";
    let ns = RData::NS(NS(name("ns.clusterset.local.")));
    assert_eq!(ask(apex, RecordType::NS), only(vec![record(apex, ns)]));
}

#[test]
fn other_types_at_the_apex_are_nodata() {
    assert_eq!(ask("clusterset.local.", RecordType::A), Answer::NoData);
    assert_eq!(ask("clusterset.local.", RecordType::AAAA), Answer::NoData);
}

#[test]
fn names_outside_the_zone_are_left_to_others() {
    assert_eq!(ask("example.com.", RecordType::A), Answer::OutOfZone);
}

#[test]
fn every_record_has_the_snapshot_ttl() {
    for (qname, qtype) in [
        ("clusterset.local.", RecordType::ANY),
        ("web.prod.svc.clusterset.local.", RecordType::A),
        ("_http._tcp.web.prod.svc.clusterset.local.", RecordType::SRV),
    ] {
        let Answer::Records {
            answers,
            additionals,
        } = ask(qname, qtype)
        else {
            panic!("expected records for {qname}");
        };
        for record in answers.iter().chain(&additionals) {
            assert_eq!(record.ttl, 7, "{record}");
        }
    }
}

#[test]
fn a_named_endpoint_answers_its_own_vip_and_an_unknown_hostname_is_nxdomain() {
    let q = "pg-0.east.pg.prod.svc.clusterset.local.";
    assert_eq!(
        ask(q, RecordType::A),
        only(vec![record(q, RData::A(A(PG_0_VIP)))])
    );
    assert_eq!(ask(q, RecordType::AAAA), Answer::NoData);
    let other = "PG-2.West.pg.prod.svc.clusterset.local.";
    assert_eq!(
        ask(other, RecordType::A),
        only(vec![record(other, RData::A(A(PG_2_VIP)))])
    );
    for unknown in [
        "pg-9.east.pg.prod.svc.clusterset.local.",
        "pg-2.east.pg.prod.svc.clusterset.local.",
        "pg-0.north.pg.prod.svc.clusterset.local.",
        "pg-0.east.web.prod.svc.clusterset.local.",
    ] {
        assert_eq!(ask(unknown, RecordType::A), Answer::NxDomain, "{unknown}");
    }
    assert_eq!(
        ask("pg.prod.svc.clusterset.local.", RecordType::A),
        only(vec![record(
            "pg.prod.svc.clusterset.local.",
            RData::A(A(PG_VIP))
        )]),
        "the service name keeps its VIP"
    );
}

#[test]
fn srv_of_a_headless_service_lists_every_named_endpoint_with_its_address() {
    let q = "_pg._tcp.pg.prod.svc.clusterset.local.";
    let pg0 = "pg-0.east.pg.prod.svc.clusterset.local.";
    let pg2 = "pg-2.west.pg.prod.svc.clusterset.local.";
    let srv = |target: &str| record(q, RData::SRV(SRV::new(0, 100, 5432, name(target))));
    assert_eq!(
        ask(q, RecordType::SRV),
        Answer::Records {
            answers: vec![srv(pg0), srv(pg2)],
            additionals: vec![
                record(pg0, RData::A(A(PG_0_VIP))),
                record(pg2, RData::A(A(PG_2_VIP))),
            ],
        }
    );
}
