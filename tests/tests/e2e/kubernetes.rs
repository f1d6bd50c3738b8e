//! The Kubernetes registry end to end: east's `fedctl run` reads its
//! Services and EndpointSlices from a fake Kubernetes API server (no real
//! one can run here; the fake speaks the API's JSON over HTTP, see
//! `fedmesh_tests::fake_kube`), and west, a static-registry cluster,
//! imports what east exports. Watch events (add, modify, delete) and a
//! forced relist must reach west's table as they would from files.

use std::time::Duration;

use fedmesh_tests::fake_kube::{FakeKube, Kind};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(15);

fn hello(annotations: &[(&str, &str)], endpoints: &[&str]) -> String {
    service_yaml("demo", "hello", "http", 8080, 18080, annotations, endpoints)
}

/// east (Kubernetes registry, on `api`) and west (static), joined.
fn federation(api: &FakeKube) -> Federation {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    let east = fed.get_mut("east");
    let config = std::fs::read_to_string(&east.config).expect("read config");
    east.write_config(&format!("{config}registry:\n  kind: kubernetes\n"));
    let kubeconfig = east.dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("write kubeconfig");
    east.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    fed
}

fn west_sees(fed: &Federation, id: &str) -> Vec<String> {
    fed.get("west").service_clusters(id)
}

#[test]
fn kubernetes_watch_events_reach_a_peers_table() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    // One object before start: it arrives by the initial list.
    for doc in hello(&[EXPORT], &["10.1.0.1", "10.1.0.2"]).split("---") {
        api.apply(doc);
    }
    let fed = federation(&api);
    wait_until("west imports demo/hello from east's API", SYNC, || {
        west_sees(&fed, "demo/hello") == ["east"]
    });
    let healthy = |fed: &Federation| {
        fed.get("west")
            .service("demo/hello")
            .map(|s| s["clusters"][0]["healthyEndpoints"].as_u64().unwrap_or(0))
    };
    assert_eq!(healthy(&fed), Some(2));

    // add: a second exported service by a watch event.
    let api_yaml = service_yaml("prod", "payments", "grpc", 9000, 19000, &[EXPORT], &[]);
    api.apply(&api_yaml);
    wait_until("west imports prod/payments", SYNC, || {
        west_sees(&fed, "prod/payments") == ["east"]
    });

    // modify: one endpoint turns not ready.
    let slice = hello(&[EXPORT], &["10.1.0.1", "10.1.0.2"]);
    let slice = slice.split("---").nth(1).expect("slice document");
    api.apply(&slice.replacen("{ ready: true }", "{ ready: false }", 1));
    wait_until("west sees one healthy endpoint", SYNC, || {
        healthy(&fed) == Some(1)
    });

    // modify: the export annotation removed withdraws the service.
    api.apply(hello(&[], &[]).as_str());
    wait_until("west withdraws demo/hello", SYNC, || {
        fed.get("west").service("demo/hello").is_none()
    });

    // delete
    assert!(api.delete(Kind::Service, "prod", "payments"));
    wait_until("west withdraws prod/payments", SYNC, || {
        fed.get("west").service("prod/payments").is_none()
    });

    // relist: a change no watch was told of arrives only by the list the
    // watchers make after a 410 Gone.
    wait_until("east's watches are open", SYNC, || api.open_watches() >= 2);
    api.apply_unseen(hello(&[EXPORT], &[]).as_str());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        fed.get("west").service("demo/hello").is_none(),
        "an unseen change must not arrive without a relist"
    );
    assert!(api.expire_watches() >= 2);
    wait_until(
        "west imports demo/hello again after the relist",
        SYNC,
        || west_sees(&fed, "demo/hello") == ["east"],
    );
    wait_until("east watches again", SYNC, || api.open_watches() >= 2);
    let check = fed.get("east").fedctl(&["check"]);
    assert!(
        check.ok,
        "east's check passes: {}{}",
        check.stdout, check.stderr
    );
    assert!(
        check.stdout.contains("1 exported"),
        "check counts the export: {}",
        check.stdout
    );
}

#[test]
fn an_unreachable_api_server_keeps_exports_and_is_reported() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    api.apply(&hello(&[EXPORT], &[]));
    let fed = federation(&api);
    wait_until("west imports demo/hello", SYNC, || {
        west_sees(&fed, "demo/hello") == ["east"]
    });
    drop(api);
    // The watches fail; east reports it and keeps exporting what it knew.
    wait_until("east's check reports the API", SYNC, || {
        let check = fed.get("east").fedctl(&["check"]);
        !check.ok && check.stdout.contains("kubernetes API")
    });
    assert_eq!(west_sees(&fed, "demo/hello"), ["east"]);
}
