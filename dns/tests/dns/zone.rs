//! Every answer rule of DESIGN.md "DNS", each asked over UDP and TCP.

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::{A, NS, SRV};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};

use crate::support::{
    EAST_VIP, SERIAL, TTL, TestServer, WEB_VIP, addresses, ask, assert_nodata, assert_nxdomain,
    query, sample, tcp, udp,
};

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid test name")
}

#[tokio::test]
async fn a_for_a_service_is_its_vip_authoritatively_with_the_snapshot_ttl() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(dns.addr(), "web.prod.svc.clusterset.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative, "{reply}");
    assert!(!reply.metadata.truncation);
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
    assert_eq!(reply.answers[0].ttl, TTL);
}

#[tokio::test]
async fn aaaa_for_a_service_is_nodata_with_soa() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(
        dns.addr(),
        "web.prod.svc.clusterset.local.",
        RecordType::AAAA,
    )
    .await;
    assert_nodata(&reply);
}

#[tokio::test]
async fn other_types_for_a_service_are_nodata_with_soa() {
    let dns = TestServer::start(sample()).await;
    for rtype in [
        RecordType::TXT,
        RecordType::MX,
        RecordType::SRV,
        RecordType::CNAME,
    ] {
        let reply = ask(dns.addr(), "web.prod.svc.clusterset.local.", rtype).await;
        assert_nodata(&reply);
    }
}

#[tokio::test]
async fn unknown_service_is_nxdomain_with_soa() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(dns.addr(), "api.prod.svc.clusterset.local.", RecordType::A).await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn a_for_a_cluster_label_is_the_pinned_vip() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(
        dns.addr(),
        "east.web.prod.svc.clusterset.local.",
        RecordType::A,
    )
    .await;
    assert!(reply.metadata.authoritative);
    assert_eq!(addresses(&reply), vec![EAST_VIP]);
}

#[tokio::test]
async fn unknown_cluster_label_is_nxdomain_with_soa() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(
        dns.addr(),
        "west.web.prod.svc.clusterset.local.",
        RecordType::A,
    )
    .await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn srv_for_a_named_port_targets_the_service_with_its_a_record_as_additional() {
    let dns = TestServer::start(sample()).await;
    let owner = "_http._tcp.web.prod.svc.clusterset.local.";
    let reply = ask(dns.addr(), owner, RecordType::SRV).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.answers.len(), 1, "{reply}");
    let target = name("web.prod.svc.clusterset.local.");
    assert_eq!(reply.answers[0].name, name(owner));
    assert_eq!(reply.answers[0].ttl, TTL);
    assert_eq!(
        reply.answers[0].data,
        RData::SRV(SRV::new(0, 10, 8080, target.clone()))
    );
    let glue: Vec<_> = reply
        .additionals
        .iter()
        .filter(|r| r.name == target)
        .collect();
    assert_eq!(glue.len(), 1, "{reply}");
    assert_eq!(glue[0].data, RData::A(A(WEB_VIP)));
}

#[tokio::test]
async fn unknown_port_name_is_nxdomain() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(
        dns.addr(),
        "_grpc._tcp.web.prod.svc.clusterset.local.",
        RecordType::SRV,
    )
    .await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn unnamed_ports_get_no_srv_so_tcp_under_their_service_is_nxdomain() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(
        dns.addr(),
        "_tcp.db.prod.svc.clusterset.local.",
        RecordType::SRV,
    )
    .await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn empty_non_terminals_are_nodata_with_soa() {
    let dns = TestServer::start(sample()).await;
    for ent in [
        "svc.clusterset.local.",
        "prod.svc.clusterset.local.",
        "_tcp.web.prod.svc.clusterset.local.",
    ] {
        for rtype in [RecordType::A, RecordType::SRV] {
            let reply = ask(dns.addr(), ent, rtype).await;
            assert_nodata(&reply);
        }
    }
}

#[tokio::test]
async fn a_namespace_without_services_is_nxdomain() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(dns.addr(), "dev.svc.clusterset.local.", RecordType::A).await;
    assert_nxdomain(&reply);
}

#[tokio::test]
async fn soa_at_the_apex_has_the_serial_and_ttl_as_minimum_and_ns_as_authority() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(dns.addr(), "clusterset.local.", RecordType::SOA).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.answers.len(), 1, "{reply}");
    let RData::SOA(soa) = &reply.answers[0].data else {
        panic!("expected an SOA: {reply}");
    };
    assert_eq!(soa.mname, name("ns.clusterset.local."));
    assert_eq!(soa.rname, name("hostmaster.clusterset.local."));
    assert_eq!(soa.serial, SERIAL);
    assert_eq!(soa.minimum, TTL);
    assert_eq!(reply.answers[0].ttl, TTL);
    let ns: Vec<_> = reply.authorities.iter().map(|r| &r.data).collect();
    assert_eq!(ns, vec![&RData::NS(NS(name("ns.clusterset.local.")))]);
}

#[tokio::test]
async fn ns_at_the_apex_names_ns_under_the_zone() {
    let dns = TestServer::start(sample()).await;
    let reply = ask(dns.addr(), "clusterset.local.", RecordType::NS).await;
    assert!(reply.metadata.authoritative);
    let ns: Vec<_> = reply.answers.iter().map(|r| &r.data).collect();
    assert_eq!(ns, vec![&RData::NS(NS(name("ns.clusterset.local.")))]);
}

#[tokio::test]
async fn other_types_at_the_apex_are_nodata_with_soa() {
    let dns = TestServer::start(sample()).await;
    for rtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
        let reply = ask(dns.addr(), "clusterset.local.", rtype).await;
        assert_nodata(&reply);
    }
}

#[tokio::test]
async fn unknown_name_in_zone_is_nxdomain_with_soa() {
    let dns = TestServer::start(sample()).await;
    for unknown in [
        "www.clusterset.local.",
        "web.prod.pod.clusterset.local.",
        "a.b.c.d.e.f.clusterset.local.",
    ] {
        let reply = ask(dns.addr(), unknown, RecordType::A).await;
        assert_nxdomain(&reply);
    }
}

#[tokio::test]
async fn names_are_case_insensitive_and_the_question_keeps_its_case() {
    let dns = TestServer::start(sample()).await;
    let asked = "WeB.PROD.Svc.ClusterSet.LOCAL.";
    let reply = ask(dns.addr(), asked, RecordType::A).await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
    assert!(
        reply.queries[0].name().eq_case(&name(asked)),
        "question echoed as {}",
        reply.queries[0].name()
    );
    assert!(reply.answers[0].name.eq_case(&name(asked)));

    let reply = ask(
        dns.addr(),
        "_HTTP._TCP.WEB.PROD.SVC.CLUSTERSET.LOCAL.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(reply.answers.len(), 1, "{reply}");
}

#[tokio::test]
async fn axfr_is_refused() {
    let dns = TestServer::start(sample()).await;
    let message = query("clusterset.local.", RecordType::AXFR);
    let reply = tcp(dns.addr(), &message).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
    assert!(reply.answers.is_empty());
}

#[tokio::test]
async fn other_classes_than_in_are_refused() {
    let dns = TestServer::start(sample()).await;
    let mut message = query("web.prod.svc.clusterset.local.", RecordType::A);
    message.queries[0].set_query_class(DNSClass::CH);
    let reply = udp(dns.addr(), &message).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
    assert!(reply.answers.is_empty());
}
