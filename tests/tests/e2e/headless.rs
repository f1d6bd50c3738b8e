//! Headless services across clusters, standalone mode, real processes:
//! `demo/db` (`clusterIP: None`) exported by east (pods `db-0`, `db-1`)
//! and west (`db-2`), each pod a real TCP backend that names itself. From
//! every cluster each pod's MCS name resolves (a real DNS query) to a VIP
//! whose connections reach that pod only, also when it is down; the SRV
//! records list the names; the VIPs survive a control plane restart.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use fedmesh_tests::{Backend, Federation, ask_backend, dns_query, wait_until};

pub(crate) const SYNC: Duration = Duration::from_secs(30);

/// The pods: (hostname, cluster, last octet of its address).
pub(crate) const PODS: [(&str, &str, u8); 3] = [
    ("db-0", "east", 101),
    ("db-1", "east", 102),
    ("db-2", "west", 103),
];

/// The port every pod listens on (the EndpointSlice's target port).
pub(crate) const POD_PORT: u16 = 15432;

/// The service port clients dial.
pub(crate) const PG: u16 = 5432;

/// The address of a pod: in the federation's block, away from the
/// clusters' own addresses (.1 to .3) and from the VIP ranges.
pub(crate) fn pod_ip(fed: &Federation, octet: u8) -> Ipv4Addr {
    let [a, b, c, _] = fed.ip(0).octets();
    Ipv4Addr::new(a, b, c, octet)
}

/// The headless Service and its EndpointSlice, with `pods` as
/// (hostname, address).
pub(crate) fn db_manifest(pods: &[(&str, Ipv4Addr)]) -> String {
    let endpoints: String = pods
        .iter()
        .map(|(host, ip)| {
            format!(
                "  - {{ addresses: [\"{ip}\"], hostname: {host}, conditions: {{ ready: true }} }}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: demo
  annotations: {{ fedmesh.io/export: \"true\" }}
spec:
  clusterIP: None
  ports:
    - {{ name: pg, port: {PG}, protocol: TCP }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: demo
  labels: {{ kubernetes.io/service-name: db }}
addressType: IPv4
ports: [ {{ name: pg, port: {POD_PORT}, protocol: TCP }} ]
endpoints:
{endpoints}"
    )
}

/// The MCS name of a pod.
pub(crate) fn pod_name(host: &str, cluster: &str) -> String {
    format!("{host}.{cluster}.db.demo.svc.clusterset.local")
}

/// The VIP `cluster`'s DNS answers for `name`, once it answers one.
fn resolve(fed: &Federation, cluster: &str, name: &str) -> Ipv4Addr {
    let dns = fed.get(cluster).dns();
    let mut vip = None;
    wait_until(&format!("{cluster} resolves {name}"), SYNC, || {
        vip = dns_query(dns, name, "A").a.first().copied();
        vip.is_some()
    });
    vip.expect("resolved above")
}

/// Three clusters with gateways; the pods' backends; the manifests.
fn setup() -> (Federation, Vec<Backend>) {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let backends = PODS
        .iter()
        .map(|(host, _, octet)| Backend::start((pod_ip(&fed, *octet), POD_PORT).into(), host))
        .collect();
    for exporter in ["east", "west"] {
        let pods: Vec<(&str, Ipv4Addr)> = PODS
            .iter()
            .filter(|(_, c, _)| *c == exporter)
            .map(|(h, _, o)| (*h, pod_ip(&fed, *o)))
            .collect();
        fed.get(exporter)
            .write_manifest("db.yaml", &db_manifest(&pods));
    }
    (fed, backends)
}

/// 10 of 10 connections to `addr` reach `host`, once its listener is up.
pub(crate) fn ten_reach(addr: SocketAddr, host: &str, from: &str) {
    wait_until(&format!("{from} reaches {host} at {addr}"), SYNC, || {
        ask_backend(addr).as_deref() == Ok(host)
    });
    ten_reach_now(addr, host, from);
}

/// 10 of 10 connections to `addr` reach `host`, from the first.
fn ten_reach_now(addr: SocketAddr, host: &str, from: &str) {
    for i in 0..10 {
        assert_eq!(
            ask_backend(addr).as_deref(),
            Ok(host),
            "{from}: connection {i} to {addr} did not reach {host}"
        );
    }
}

#[test]
fn each_pod_has_its_own_name_and_vip_in_every_cluster_and_only_it_answers() {
    let (mut fed, mut backends) = setup();
    let clusters = ["east", "west", "eu"];
    let mut vips = std::collections::BTreeMap::new();
    for from in clusters {
        for (host, cluster, _) in PODS {
            let vip = resolve(&fed, from, &pod_name(host, cluster));
            ten_reach((vip, PG).into(), host, from);
            vips.insert((from, host), vip);
        }
        let dns = fed.get(from).dns();
        // The service name keeps its VIP over every pod.
        let service = resolve(&fed, from, "db.demo.svc.clusterset.local");
        let reached = ask_backend((service, PG).into());
        assert!(
            matches!(reached.as_deref(), Ok("db-0" | "db-1" | "db-2")),
            "{from}: the service VIP reaches a pod: {reached:?}"
        );
        for unknown in [pod_name("db-9", "east"), pod_name("db-2", "east")] {
            let answer = dns_query(dns, &unknown, "A");
            assert_eq!(answer.code, "NXDomain", "{from} {unknown}: {answer:?}");
        }
        // RFC 2782 SRV, the MCS DNS spec's headless form: the pod names.
        let srv = dns_query(dns, "_pg._tcp.db.demo.svc.clusterset.local", "SRV");
        let mut targets: Vec<&str> = srv.srv.iter().map(|s| s.3.as_str()).collect();
        targets.sort_unstable();
        assert_eq!(
            targets,
            [
                "db-0.east.db.demo.svc.clusterset.local.",
                "db-1.east.db.demo.svc.clusterset.local.",
                "db-2.west.db.demo.svc.clusterset.local.",
            ],
            "{from}: {srv:?}"
        );
        assert!(srv.srv.iter().all(|s| s.2 == PG), "{from}: {srv:?}");
    }

    // db-0's backend goes down: its name reaches nothing else, from any
    // cluster, and east's other pod is still served (no cluster ejected).
    drop(backends.remove(0));
    for from in clusters {
        let db0: SocketAddr = (vips[&(from, "db-0")], PG).into();
        for i in 0..10 {
            let got = ask_backend(db0);
            assert!(
                got.is_err(),
                "{from}: connection {i} to db-0's VIP landed on {got:?}"
            );
        }
        // At once: a refusal for db-0 must not have ejected east.
        ten_reach_now((vips[&(from, "db-1")], PG).into(), "db-1", from);
    }

    // Endpoint churn: db-0 goes away while another pod comes, then db-0
    // comes back with the VIP it had.
    let east_pods = |hosts: &[(&str, u8)]| {
        let pods: Vec<(&str, Ipv4Addr)> =
            hosts.iter().map(|(h, o)| (*h, pod_ip(&fed, *o))).collect();
        db_manifest(&pods)
    };
    let east = fed.get("east");
    east.write_manifest("db.yaml", &east_pods(&[("db-1", 102), ("db-4", 104)]));
    resolve(&fed, "east", &pod_name("db-4", "east"));
    wait_until("db-0 is gone from east's DNS", SYNC, || {
        dns_query(east.dns(), &pod_name("db-0", "east"), "A").code == "NXDomain"
    });
    east.write_manifest("db.yaml", &east_pods(&[("db-0", 101), ("db-1", 102)]));
    assert_eq!(
        resolve(&fed, "east", &pod_name("db-0", "east")),
        vips[&("east", "db-0")],
        "db-0 came back with another VIP"
    );

    // A restart of the exporter and of an importer keeps every pod's VIP.
    for restarted in ["east", "west"] {
        assert!(fed.get_mut(restarted).terminate(), "{restarted} stops");
        fed.get_mut(restarted).start();
        for (host, cluster, _) in PODS {
            let vip = resolve(&fed, restarted, &pod_name(host, cluster));
            assert_eq!(
                vip,
                vips[&(restarted, host)],
                "{restarted}'s VIP of {host} changed across a restart"
            );
        }
    }
}
