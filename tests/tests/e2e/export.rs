//! Service export across real clusters: exported services appear in every
//! peer's table, unexport withdraws them, a dead cluster goes stale then
//! disappears, `export-to` is enforced, bad manifests are reported.

use std::time::Duration;

use fedmesh_tests::{EXPORT, Federation, dns_query, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(15);

fn hello(endpoints: &[&str]) -> String {
    service_yaml("demo", "hello", "http", 8080, 18080, &[EXPORT], endpoints)
}

/// east, west, eu joined into a full mesh.
fn mesh(control_extra: &str) -> Federation {
    Federation::full_mesh(control_extra, SYNC)
}

#[test]
fn a_service_exported_in_two_clusters_is_listed_in_all_three() {
    let fed = mesh("");
    fed.get("east")
        .write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    fed.get("west")
        .write_manifest("hello.yaml", &hello(&["127.0.0.20", "127.0.0.21"]));
    for c in &fed.clusters {
        wait_until(
            &format!("{} lists demo/hello from east and west", c.name),
            SYNC,
            || c.service_clusters("demo/hello") == ["east", "west"],
        );
    }
    // Every cluster's DNS answers A (the VIP) and SRV (the named port).
    for c in &fed.clusters {
        let vip = c.service("demo/hello").unwrap()["vip"]
            .as_str()
            .unwrap()
            .to_string();
        let a = dns_query(c.dns(), "hello.demo.svc.clusterset.local", "A");
        assert_eq!(a.code, "NoError", "{}: {a:?}", c.name);
        assert_eq!(
            a.a,
            [vip.parse::<std::net::Ipv4Addr>().unwrap()],
            "{}",
            c.name
        );
        let srv = dns_query(c.dns(), "_http._tcp.hello.demo.svc.clusterset.local", "SRV");
        assert_eq!(srv.srv.len(), 1, "{}: {srv:?}", c.name);
        assert_eq!(srv.srv[0].2, 8080);
        assert_eq!(srv.srv[0].3, "hello.demo.svc.clusterset.local.");
        let pinned = dns_query(c.dns(), "west.hello.demo.svc.clusterset.local", "A");
        assert_eq!(pinned.a.len(), 1, "{}: {pinned:?}", c.name);
        assert_ne!(pinned.a, a.a, "a pinned VIP differs from the service VIP");
        let aaaa = dns_query(c.dns(), "hello.demo.svc.clusterset.local", "AAAA");
        assert_eq!(
            (aaaa.code.as_str(), aaaa.a.len(), aaaa.soa),
            ("NoError", 0, true),
            "NODATA with SOA"
        );
        let unknown = dns_query(c.dns(), "nope.demo.svc.clusterset.local", "A");
        assert_eq!((unknown.code.as_str(), unknown.soa), ("NXDomain", true));
    }
    dig_agrees(&fed);
    let seen_by_eu = fed.get("eu").service("demo/hello").unwrap();
    assert_eq!(seen_by_eu["dnsName"], "hello.demo.svc.clusterset.local");
    assert_eq!(seen_by_eu["ports"][0]["port"], 8080);
    let west = seen_by_eu["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "west")
        .unwrap();
    assert_eq!(west["healthyEndpoints"], 2);
    assert_eq!(west["locality"]["region"], "us-west");
    assert_eq!(west["stale"], false);
    // VIPs come from eu's own vipRange.
    let eu_range = fed.vip_range(2);
    let prefix = eu_range.rsplit_once('.').unwrap().0;
    assert!(
        west["pinnedVip"].as_str().unwrap().starts_with(prefix),
        "{west} not in {eu_range}"
    );
    assert!(
        seen_by_eu["vip"].as_str().unwrap().starts_with(prefix),
        "{seen_by_eu} not in {eu_range}"
    );
    // fedctl peers counts what each peer exports to us.
    let peers = fed.get("eu").peers();
    let imports = |n: &str| peers.iter().find(|p| p["name"] == n).unwrap()["imports"].clone();
    assert_eq!((imports("east"), imports("west")), (1.into(), 1.into()));
}

#[test]
fn dropping_the_annotation_withdraws_everywhere_and_re_adding_restores() {
    let fed = mesh("");
    let east = fed.get("east");
    east.write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    for c in &fed.clusters {
        wait_until(&format!("{} sees hello", c.name), SYNC, || {
            c.service("demo/hello").is_some()
        });
    }
    let vip = fed.get("west").service("demo/hello").unwrap()["vip"].clone();
    east.write_manifest(
        "hello.yaml",
        &service_yaml("demo", "hello", "http", 8080, 18080, &[], &["127.0.0.10"]),
    );
    for c in &fed.clusters {
        wait_until(
            &format!("{}'s DNS says NXDOMAIN for hello", c.name),
            SYNC,
            || dns_query(c.dns(), "hello.demo.svc.clusterset.local", "A").code == "NXDomain",
        );
        assert!(c.service("demo/hello").is_none());
    }
    east.write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    for c in &fed.clusters {
        wait_until(
            &format!("{}'s DNS answers hello again", c.name),
            SYNC,
            || {
                !dns_query(c.dns(), "hello.demo.svc.clusterset.local", "A")
                    .a
                    .is_empty()
            },
        );
    }
    assert_eq!(
        fed.get("west").service("demo/hello").unwrap()["vip"],
        vip,
        "the VIP is stable"
    );
}

#[test]
fn a_killed_cluster_is_stale_at_once_gone_after_grace_and_back_after_restart() {
    let mut fed = mesh("  staleGrace: 3s\n");
    fed.get("east")
        .write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    fed.get("west")
        .write_manifest("hello.yaml", &hello(&["127.0.0.20"]));
    wait_until("eu sees both", SYNC, || {
        fed.get("eu").service_clusters("demo/hello") == ["east", "west"]
    });

    fed.get_mut("west").kill9();
    let west_entry = |fed: &Federation| {
        fed.get("eu").service("demo/hello").and_then(|s| {
            s["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "west")
                .cloned()
        })
    };
    wait_until(
        "eu marks west's entry stale",
        Duration::from_secs(5),
        || west_entry(&fed).is_some_and(|c| c["stale"] == true),
    );
    wait_until(
        "eu withdraws west after staleGrace",
        Duration::from_secs(10),
        || west_entry(&fed).is_none(),
    );
    assert_eq!(fed.get("eu").service_clusters("demo/hello"), ["east"]);

    fed.get_mut("west").start();
    wait_until(
        "west is back in eu's table without a new join",
        SYNC,
        || west_entry(&fed).is_some_and(|c| c["stale"] == false),
    );
}

#[test]
fn a_restarted_cluster_keeps_its_vips_and_serves_its_last_imports_at_once() {
    let mut fed = mesh("");
    fed.get("west")
        .write_manifest("hello.yaml", &hello(&["127.0.0.20"]));
    wait_until("eu sees hello", SYNC, || {
        fed.get("eu").service("demo/hello").is_some()
    });
    let before = fed.get("eu").service("demo/hello").unwrap();

    // eu restarts while west is down: it still lists west's service (stale).
    fed.get_mut("west").kill9();
    fed.get_mut("eu").kill9();
    fed.get_mut("eu").start();
    let after = fed
        .get("eu")
        .service("demo/hello")
        .expect("imports served at once after a restart");
    assert_eq!(after["vip"], before["vip"]);
    assert_eq!(
        after["clusters"][0]["pinnedVip"],
        before["clusters"][0]["pinnedVip"]
    );
    assert_eq!(after["clusters"][0]["stale"], true);
}

#[test]
fn export_to_keeps_the_service_out_of_other_peers_tables() {
    let fed = mesh("");
    let only_west = service_yaml(
        "demo",
        "secret",
        "http",
        8080,
        18080,
        &[EXPORT, ("fedmesh.io/export-to", "west")],
        &["127.0.0.10"],
    );
    fed.get("east").write_manifest("secret.yaml", &only_west);
    fed.get("east")
        .write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    wait_until("west sees secret", SYNC, || {
        fed.get("west").service("demo/secret").is_some()
    });
    // eu got the other export from east, so the absence below is not lag.
    wait_until("eu sees hello", SYNC, || {
        fed.get("eu").service("demo/hello").is_some()
    });
    assert!(
        fed.get("eu").service("demo/secret").is_none(),
        "export-to: west leaked to eu"
    );
}

#[test]
fn a_malformed_manifest_is_reported_and_the_good_ones_are_exported() {
    let fed = mesh("");
    let east = fed.get("east");
    east.write_manifest("hello.yaml", &hello(&["127.0.0.10"]));
    east.write_manifest(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: [not, a, map\n",
    );
    east.write_manifest(
        "bad-annotation.yaml",
        &service_yaml(
            "demo",
            "typo",
            "http",
            80,
            80,
            &[EXPORT, ("fedmesh.io/affinity", "closest")],
            &[],
        ),
    );
    wait_until("west sees hello", SYNC, || {
        fed.get("west").service("demo/hello").is_some()
    });
    assert!(
        fed.get("west").service("demo/typo").is_none(),
        "a bad annotation must stop the export"
    );
    let check = east.fedctl(&["check"]);
    assert!(!check.ok, "check must fail on a bad manifest");
    assert!(check.stdout.contains("broken.yaml"), "{}", check.stdout);
    assert!(
        check.stdout.contains("fedmesh.io/affinity"),
        "{}",
        check.stdout
    );
}

/// With `dig` installed (CI installs it), its answers agree with ours.
fn dig_agrees(fed: &Federation) {
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("dig is not installed: skipping the dig cross-check");
        return;
    }
    for c in &fed.clusters {
        let dig = |name: &str, rtype: &str| {
            let out = std::process::Command::new("dig")
                .args(["+short", "-p", "15053", &format!("@{}", c.ip), name, rtype])
                .output()
                .expect("run dig");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let ours = dns_query(c.dns(), "hello.demo.svc.clusterset.local", "A");
        assert_eq!(
            dig("hello.demo.svc.clusterset.local", "A"),
            ours.a[0].to_string(),
            "dig and fedmesh disagree on {}",
            c.name
        );
        assert_eq!(
            dig("_http._tcp.hello.demo.svc.clusterset.local", "SRV"),
            "0 100 8080 hello.demo.svc.clusterset.local."
        );
    }
}
