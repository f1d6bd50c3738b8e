//! hickory's stub resolver, over UDP only and TCP only, against the server:
//! what a real client library makes of the answers.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::Resolver;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::support::{SERIAL, TestServer, WEB_VIP, sample};

fn resolver(server: SocketAddr, mut connection: ConnectionConfig) -> TokioResolver {
    connection.port = server.port();
    let name_server = NameServerConfig::new(server.ip(), true, vec![connection]);
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .expect("a resolver for the test server")
}

fn resolvers(server: SocketAddr) -> [(&'static str, TokioResolver); 2] {
    [
        ("udp", resolver(server, ConnectionConfig::udp())),
        ("tcp", resolver(server, ConnectionConfig::tcp())),
    ]
}

#[tokio::test]
async fn the_resolver_finds_the_service_vip() {
    let dns = TestServer::start(sample()).await;
    for (proto, resolver) in resolvers(dns.addr()) {
        let ips = resolver
            .lookup("web.prod.svc.clusterset.local.", RecordType::A)
            .await
            .unwrap_or_else(|e| panic!("{proto}: {e}"));
        let found: Vec<_> = ips
            .answers()
            .iter()
            .filter_map(|r| r.data.ip_addr())
            .collect();
        assert_eq!(found, vec![IpAddr::V4(WEB_VIP)], "{proto}");
    }
}

#[tokio::test]
async fn the_resolver_follows_srv_to_the_port_and_target() {
    let dns = TestServer::start(sample()).await;
    for (proto, resolver) in resolvers(dns.addr()) {
        let lookup = resolver
            .lookup("_http._tcp.web.prod.svc.clusterset.local.", RecordType::SRV)
            .await
            .unwrap_or_else(|e| panic!("{proto}: {e}"));
        let srv: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((srv.port, srv.target.to_ascii())),
                _ => None,
            })
            .collect();
        assert_eq!(
            srv,
            vec![(8080, "web.prod.svc.clusterset.local.".to_owned())],
            "{proto}"
        );
    }
}

#[tokio::test]
async fn the_resolver_sees_nxdomain_for_an_unknown_service() {
    let dns = TestServer::start(sample()).await;
    for (proto, resolver) in resolvers(dns.addr()) {
        let error = resolver
            .lookup("api.prod.svc.clusterset.local.", RecordType::A)
            .await
            .expect_err("unknown service");
        assert!(error.is_nx_domain(), "{proto}: {error}");
    }
}

#[tokio::test]
async fn the_resolver_sees_no_records_with_the_soa_for_aaaa() {
    let dns = TestServer::start(sample()).await;
    for (proto, resolver) in resolvers(dns.addr()) {
        let error = resolver
            .lookup("web.prod.svc.clusterset.local.", RecordType::AAAA)
            .await
            .expect_err("no AAAA");
        assert!(
            error.is_no_records_found() && !error.is_nx_domain(),
            "{proto}: {error}"
        );
        let soa = error
            .into_soa()
            .unwrap_or_else(|| panic!("{proto}: no SOA"));
        assert_eq!(soa.data.serial, SERIAL, "{proto}");
    }
}
