//! The shipped examples stay usable: examples/three-clusters' configs load
//! with the real config parser and do not collide on one host, its manifest
//! folders read cleanly with the static registry and export what its README
//! says, and the README's commands name files that exist.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use fedmesh_control::model::ServiceKey;
use fedmesh_control::registry::static_files::StaticFiles;
use fedmesh_proto::config::Config;

/// Cluster, region, zone, address, exports demo/hello.
const CLUSTERS: [(&str, &str, &str, Ipv4Addr, bool); 3] = [
    (
        "east",
        "us-east",
        "us-east-1a",
        Ipv4Addr::new(127, 0, 1, 1),
        true,
    ),
    (
        "west",
        "us-west",
        "us-west-2a",
        Ipv4Addr::new(127, 0, 2, 1),
        true,
    ),
    (
        "eu",
        "eu-central",
        "eu-central-1a",
        Ipv4Addr::new(127, 0, 3, 1),
        false,
    ),
];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .join("examples/three-clusters")
}

fn load(name: &str) -> Config {
    let path = example().join(format!("{name}.yaml"));
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn three_cluster_configs_load_and_keep_to_their_own_addresses() {
    let dir = example();
    let mut ranges = Vec::new();
    for (name, region, zone, ip, _) in CLUSTERS {
        let c = load(name);
        assert_eq!(c.cluster, name);
        assert_eq!(
            (c.locality.region.as_str(), c.locality.zone.as_str()),
            (region, zone)
        );
        assert!(c.gateway.embedded, "{name}: the README runs no fedgw");
        assert_eq!(c.data_dir, dir.join("data").join(name));
        assert_eq!(c.registry.path, dir.join("services").join(name));
        let own = IpAddr::V4(ip);
        for (field, addr) in [
            ("control.peeringListen", c.control.peering_listen),
            ("control.gatewayListen", c.control.gateway_listen),
            ("dns.listen", c.dns.listen),
            ("gateway.ingressListen", c.gateway.ingress_listen),
            ("gateway.adminListen", c.gateway.admin_listen),
        ] {
            assert_eq!(addr.ip(), own, "{name}: {field}");
        }
        assert_eq!(c.control.admin_listen.to_string(), format!("{ip}:15000"));
        ranges.push((name, c.gateway.vip_range));
    }
    for (i, (a, ra)) in ranges.iter().enumerate() {
        for (b, rb) in &ranges[i + 1..] {
            assert!(
                !ra.contains(rb.network()) && !rb.contains(ra.network()),
                "{a} and {b} share VIPs: {ra} and {rb}"
            );
        }
    }
}

#[test]
fn three_cluster_manifests_export_hello_from_east_and_west() {
    let hello = ServiceKey::new("demo", "hello");
    for (name, _, _, ip, exports) in CLUSTERS {
        let snap = StaticFiles::load(&load(name).registry.path);
        if !exports {
            // Its folder is made at first start, so it may not exist.
            assert!(snap.services.is_empty(), "{name} is meant to serve nothing");
            continue;
        }
        assert!(snap.problems.is_empty(), "{name}: {:?}", snap.problems);
        assert_eq!(snap.services.len(), 1, "{name}");
        let svc = &snap.services[&hello];
        assert!(svc.export.is_some(), "{name}: demo/hello is not exported");
        assert_eq!(svc.ports.len(), 1);
        assert_eq!(
            (svc.ports[0].name.as_str(), svc.ports[0].port),
            ("http", 8080)
        );
        assert_eq!(svc.healthy_endpoints(), 1, "{name}");
        let endpoint = &svc.endpoints[0];
        assert_eq!(endpoint.address, IpAddr::V4(ip), "{name}'s backend address");
        assert_eq!(endpoint.ports.get("http"), Some(&8080));
    }
}

#[test]
fn the_three_cluster_readme_names_files_that_exist() {
    let dir = example();
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let mut named = 0;
    for flag in ["--config ", "--directory "] {
        for (at, _) in readme.match_indices(flag) {
            let rest = &readme[at + flag.len()..];
            let file = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(['`', '"', '\'', ')', ',', '.', ':']);
            if file.contains('<') || file.eq_ignore_ascii_case("file") {
                continue;
            }
            named += 1;
            assert!(
                dir.join(file).exists(),
                "README.md names {file}, which is not there"
            );
        }
    }
    assert!(named >= 10, "only {named} files named in README.md");
    for (name, _, _, _, _) in CLUSTERS {
        assert!(
            readme.contains(&format!("--config {name}.yaml")),
            "README.md never uses {name}.yaml"
        );
    }
}
