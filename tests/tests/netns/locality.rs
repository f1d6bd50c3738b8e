//! Join, export, DNS and locality with every cluster in its own namespace:
//! peers know each other by their namespace addresses, each namespace's
//! DNS answers with its own VIP, and each namespace's clients are served
//! by the locality order of DESIGN.md (local endpoints first, then the same
//! zone, the same region, then any, spread by healthy endpoint count).

use fedmesh_tests::netns::helper;
use fedmesh_tests::netns::mesh::{CLUSTERS, Mesh};
use fedmesh_tests::netns::{PREFIX, Topology, run_in, sweep_stale};

#[test]
fn clusters_in_their_own_namespaces_join_export_resolve_and_route_by_locality() {
    let Some(mut mesh) =
        Mesh::create("clusters_in_their_own_namespaces_join_export_resolve_and_route_by_locality")
    else {
        return;
    };
    mesh.start_joined();
    for (name, _, _) in CLUSTERS {
        for peer in mesh.fed.get(name).peers() {
            let other = peer["name"].as_str().expect("a peer name");
            assert_eq!(
                peer["endpoint"],
                format!("{}:15017", mesh.addr(other)),
                "{name} knows {other} by its namespace address"
            );
        }
    }

    let _east = mesh.serve_hello("east");
    let _west = mesh.serve_hello("west");
    for (i, (name, _, _)) in CLUSTERS.iter().enumerate() {
        let vip = mesh.hello_vip(name, &["east", "west"]);
        let own_range = format!("127.77.{}.", i + 1);
        assert!(
            vip.ip().to_string().starts_with(&own_range),
            "{name}'s VIP {vip} is from its own vipRange"
        );
        resolves_inside(&mesh, name, vip);
    }

    // east and west serve their own clients; for eu both are "any region"
    // with one endpoint each, so its clients are spread over both.
    for name in ["east", "west"] {
        let vip = mesh.hello_vip(name, &["east", "west"]);
        let answers = mesh.ask(name, vip, 20);
        assert!(
            answers.iter().all(|a| a.as_deref() == Ok(name)),
            "{name}'s clients reach {name}'s own endpoint: {answers:?}"
        );
    }
    let vip = mesh.hello_vip("eu", &["east", "west"]);
    let answers = mesh.ask("eu", vip, 40);
    for name in ["east", "west"] {
        assert!(
            answers.iter().any(|a| a.as_deref() == Ok(name)),
            "eu's clients reach {name} too: {answers:?}"
        );
    }
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    for (name, _, _) in CLUSTERS {
        let check = mesh.fed.get(name).fedctl(&["check"]);
        assert!(
            check.ok,
            "fedctl check in {name}: {}{}",
            check.stdout, check.stderr
        );
    }
}

/// DNS asked from inside `name`'s namespace answers with `vip`, and
/// names of other types and pinned names as DESIGN.md says.
fn resolves_inside(mesh: &Mesh, name: &str, vip: std::net::SocketAddr) {
    let ns = mesh.ns(name);
    let server = mesh.fed.get(name).dns();
    let a = helper::dns(ns, server, "hello.demo.svc.clusterset.local.", "A");
    let answered: Vec<std::net::IpAddr> = a.a.iter().map(|ip| (*ip).into()).collect();
    assert_eq!(
        (a.code.as_str(), answered),
        ("NoError", vec![vip.ip()]),
        "{name}: A is this cluster's VIP"
    );
    let aaaa = helper::dns(ns, server, "hello.demo.svc.clusterset.local.", "AAAA");
    assert_eq!(
        (aaaa.code.as_str(), aaaa.a.len(), aaaa.soa),
        ("NoError", 0, true),
        "{name}: AAAA is NODATA with the SOA"
    );
    let pinned = helper::dns(ns, server, "west.hello.demo.svc.clusterset.local.", "A");
    assert_eq!(pinned.a.len(), 1, "{name}: {pinned:?}");
    assert_ne!(pinned.a, a.a, "{name}: a pinned VIP is not the service VIP");
    let unknown = helper::dns(ns, server, "nope.demo.svc.clusterset.local.", "A");
    assert_eq!(
        (unknown.code.as_str(), unknown.soa),
        ("NXDomain", true),
        "{name}"
    );
    // dig, where installed (CI installs it), agrees from inside too.
    let dig = run_in(
        ns,
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            "15053",
            "+short",
            "+tries=1",
            "+time=3",
            "hello.demo.svc.clusterset.local",
            "A",
        ],
    );
    if dig.ok {
        assert_eq!(dig.stdout.trim(), vip.ip().to_string(), "{name}: dig");
    }
}

#[test]
fn dropped_topologies_leave_no_namespace_behind() {
    if let Some(reason) = fedmesh_tests::netns::unavailable() {
        fedmesh_tests::netns::skip("dropped_topologies_leave_no_namespace_behind", &reason);
        return;
    }
    let topo = Topology::create(&["a", "b"]);
    let names: Vec<String> = topo.nodes.iter().map(|n| n.netns.clone()).collect();
    let listed = fedmesh_tests::netns::ip(&["netns", "list"]).stdout;
    assert!(
        names.iter().all(|n| listed.contains(n.as_str())),
        "{listed}"
    );
    drop(topo);
    let listed = fedmesh_tests::netns::ip(&["netns", "list"]).stdout;
    assert!(
        names.iter().all(|n| !listed.contains(n.as_str())),
        "{listed}"
    );

    // A namespace left by a run whose process is gone is swept away.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn a short-lived process");
    let dead = gone.id();
    gone.wait().expect("it exits");
    let stale = format!("{PREFIX}{dead}-0-stale");
    assert!(fedmesh_tests::netns::ip(&["netns", "add", &stale]).ok);
    let stale_dir = std::env::temp_dir().join(format!("{PREFIX}{dead}-stale"));
    std::fs::create_dir_all(stale_dir.join("east")).expect("a stale temp folder");
    sweep_stale();
    assert!(!stale_dir.exists(), "{} was not swept", stale_dir.display());
    let listed = fedmesh_tests::netns::ip(&["netns", "list"]).stdout;
    if listed.contains(&stale) {
        let _ = fedmesh_tests::netns::ip(&["netns", "del", &stale]);
        panic!("{stale} was not swept: {listed}");
    }
}
