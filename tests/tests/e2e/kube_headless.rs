//! Headless services across clusters in Kubernetes mode, real processes:
//! east and west each read their own fake Kubernetes API server (no real
//! one can run here; `fedmesh_tests::fake_kube` speaks the API's JSON over
//! HTTP), eu is a standalone cluster beside them. `demo/db`
//! (`clusterIP: None`) has pods `db-0`, `db-1` in east and `db-2` in west,
//! each a real TCP backend that names itself. In east and west each pod's
//! MCS name resolves to the ClusterIP of an import Service of its own
//! (`demo/db@<cluster>/<pod>`), and that Service's target port on the
//! cluster's gateway (where kube-proxy would send the ClusterIP's
//! connections) reaches that pod only, also when it is down; in eu the
//! name resolves to a VIP of its `vipRange` that does the same.

use std::net::{Ipv4Addr, SocketAddr};

use fedmesh_tests::fake_kube::{FakeKube, Kind};
use fedmesh_tests::{Backend, Federation, ask_backend, dns_query, wait_until};

use crate::headless::{PG, POD_PORT, PODS, SYNC, db_manifest, pod_ip, pod_name, ten_reach};

const CLUSTERS: [&str; 2] = ["east", "west"];

/// The headless Service and its EndpointSlice as API objects: the
/// standalone test's manifest, one object per document.
fn db_objects(pods: &[(&str, Ipv4Addr)]) -> Vec<String> {
    db_manifest(pods)
        .split("---\n")
        .map(str::to_owned)
        .collect()
}

/// The import Service of `vip_name` in `api`: (ClusterIP, target port of
/// the service port [`PG`]).
fn import_service(api: &FakeKube, vip_name: &str) -> Option<(Ipv4Addr, u16)> {
    let services = api.objects(Kind::Service, "app.kubernetes.io/managed-by=fedmesh");
    let s = services
        .iter()
        .find(|s| s["metadata"]["annotations"]["fedmesh.io/import"] == vip_name)?;
    let ip = s["spec"]["clusterIP"].as_str()?.parse().ok()?;
    let port = s["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == PG)?["targetPort"]
        .as_u64()?;
    Some((ip, u16::try_from(port).ok()?))
}

/// east and west, each in Kubernetes mode on its own API server, joined,
/// with gateways; the pods' backends, and their objects in the APIs.
fn setup(apis: &[FakeKube; 2]) -> (Federation, Vec<Backend>) {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    fed.add("eu", "eu-central", "eu-central-1a", "");
    for (name, api) in CLUSTERS.iter().zip(apis) {
        let c = fed.get_mut(name);
        api.serve(c, "");
        c.start();
    }
    fed.get_mut("eu").start();
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.join("eu", "west");
    for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
        fed.wait_connected(a, b, SYNC);
    }
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let backends = PODS
        .iter()
        .map(|(host, _, octet)| Backend::start((pod_ip(&fed, *octet), POD_PORT).into(), host))
        .collect();
    for (exporter, api) in CLUSTERS.iter().zip(apis) {
        let pods: Vec<(&str, Ipv4Addr)> = PODS
            .iter()
            .filter(|(_, c, _)| c == exporter)
            .map(|(h, _, o)| (*h, pod_ip(&fed, *o)))
            .collect();
        for doc in db_objects(&pods) {
            api.apply(&doc);
        }
    }
    (fed, backends)
}

/// Where `from`'s clients reach `host` of `cluster`: the gateway port of
/// the pod's import Service, once DNS answers its ClusterIP.
fn pod_address(
    fed: &Federation,
    api: &FakeKube,
    from: &str,
    host: &str,
    cluster: &str,
) -> SocketAddr {
    let c = fed.get(from);
    let name = pod_name(host, cluster);
    let vip_name = format!("demo/db@{cluster}/{host}");
    let mut found = None;
    wait_until(
        &format!("{from} resolves {name} to {vip_name}'s ClusterIP"),
        SYNC,
        || {
            let Some((ip, port)) = import_service(api, &vip_name) else {
                return false;
            };
            found = Some(port);
            dns_query(c.dns(), &name, "A").a == [ip]
        },
    );
    (c.ip, found.expect("found above")).into()
}

#[test]
fn in_kubernetes_mode_each_pod_has_its_own_import_service_and_only_it_answers() {
    let apis = [
        FakeKube::start(Ipv4Addr::LOCALHOST),
        FakeKube::start(Ipv4Addr::LOCALHOST),
    ];
    let (fed, mut backends) = setup(&apis);
    let mut addrs = std::collections::BTreeMap::new();
    for (from, api) in CLUSTERS.iter().zip(&apis) {
        for (host, cluster, _) in PODS {
            let addr = pod_address(&fed, api, from, host, cluster);
            ten_reach(addr, host, from);
            addrs.insert((*from, host), addr);
        }
        let dns = fed.get(from).dns();
        // The service name keeps the ClusterIP of the whole service.
        let (global_ip, global_port) =
            import_service(api, "demo/db").expect("the global import Service");
        assert_eq!(
            dns_query(dns, "db.demo.svc.clusterset.local", "A").a,
            [global_ip]
        );
        let reached = ask_backend((fed.get(from).ip, global_port).into());
        assert!(
            matches!(reached.as_deref(), Ok("db-0" | "db-1" | "db-2")),
            "{from}: the service's port reaches a pod: {reached:?}"
        );
        for unknown in [pod_name("db-9", "east"), pod_name("db-2", "east")] {
            let answer = dns_query(dns, &unknown, "A");
            assert_eq!(answer.code, "NXDomain", "{from} {unknown}: {answer:?}");
        }
    }

    // The standalone cluster: each pod name has a VIP reaching that pod.
    for (host, cluster, _) in PODS {
        let name = pod_name(host, cluster);
        let dns = fed.get("eu").dns();
        let mut vip = None;
        wait_until(&format!("eu resolves {name}"), SYNC, || {
            vip = dns_query(dns, &name, "A").a.first().copied();
            vip.is_some()
        });
        let addr = (vip.expect("resolved above"), PG).into();
        ten_reach(addr, host, "eu");
        addrs.insert(("eu", host), addr);
    }

    // db-0's backend goes down: its name reaches nothing else from any
    // cluster, and east's other pod is still served.
    drop(backends.remove(0));
    for from in ["east", "west", "eu"] {
        for i in 0..10 {
            let got = ask_backend(addrs[&(from, "db-0")]);
            assert!(
                got.is_err(),
                "{from}: connection {i} to db-0 landed on {got:?}"
            );
        }
        assert_eq!(ask_backend(addrs[&(from, "db-1")]).as_deref(), Ok("db-1"));
    }

    // A pod that goes away takes its import Service with it.
    let east_pods = [("db-1", pod_ip(&fed, 102))];
    for doc in db_objects(&east_pods) {
        apis[0].apply(&doc);
    }
    for api in &apis {
        wait_until("db-0's import Service is deleted", SYNC, || {
            import_service(api, "demo/db@east/db-0").is_none()
        });
    }
    for from in ["west", "eu"] {
        wait_until(&format!("{from} no longer answers db-0"), SYNC, || {
            dns_query(fed.get(from).dns(), &pod_name("db-0", "east"), "A").code == "NXDomain"
        });
    }
}
