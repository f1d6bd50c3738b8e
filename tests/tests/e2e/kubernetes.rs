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
    let mut fed = federation(&api);
    // The check at the end covers the data plane: east's gateway must serve.
    fed.get_mut("east").start_gateway();
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
    wait_until(
        "east's check passes and counts its one service",
        SYNC,
        || {
            let check = fed.get("east").fedctl(&["check"]);
            check.ok && check.stdout.contains("1 services, 1 exported")
        },
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

/// An import Service: (VIP name, ClusterIP, (service port, target port)).
type ImportService = (String, String, Vec<(u64, u64)>);

/// The import Services east keeps in the fake API.
fn import_services(api: &FakeKube) -> Vec<ImportService> {
    let mut out: Vec<_> = api
        .objects(Kind::Service, "app.kubernetes.io/managed-by=fedmesh")
        .iter()
        .map(|s| {
            let name = s["metadata"]["annotations"]["fedmesh.io/import"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ip = s["spec"]["clusterIP"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ports = s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["port"].as_u64().unwrap_or(0),
                        p["targetPort"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            (name, ip, ports)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn in_kubernetes_mode_imports_get_services_whose_cluster_ips_are_the_vips() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    let mut fed = federation(&api);
    let west = fed.get("west");
    let backend = fedmesh_tests::Backend::start((west.ip, 18080).into(), "west");
    west.write_manifest(
        "hello.yaml",
        &hello(&[EXPORT], &[&backend.addr().ip().to_string()]),
    );
    wait_until("east keeps import Services for demo/hello", SYNC, || {
        let names: Vec<String> = import_services(&api).into_iter().map(|s| s.0).collect();
        names == ["demo/hello", "demo/hello@west"]
    });
    let services = import_services(&api);
    for (name, ip, ports) in &services {
        assert!(ip.starts_with("127.96."), "{name}: ClusterIP {ip}");
        assert_eq!(ports.len(), 1, "{name}: {ports:?}");
        assert_eq!(ports[0].0, 8080);
        assert!((20000..=29999).contains(&ports[0].1), "{name}: {ports:?}");
    }
    let object = &api.objects(Kind::Service, "app.kubernetes.io/managed-by=fedmesh")[0];
    assert_eq!(
        object["spec"]["selector"]["app.kubernetes.io/name"], "fedgw",
        "the Services select the gateway pods"
    );
    let (global_ip, pinned_ip) = (&services[0].1, &services[1].1);

    // The gateway bootstrap token is in a Secret for the gateway pods.
    let secrets = api.objects(Kind::Secret, "app.kubernetes.io/managed-by=fedmesh");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(secrets[0]["metadata"]["name"], "fedmesh-gateway-bootstrap");
    let token_file =
        std::fs::read_to_string(fed.get("east").dir.join("data/gateway-bootstrap.token"))
            .expect("east's bootstrap token file");
    let encoded = secrets[0]["data"]["token"].as_str().expect("data.token");
    let decoded = base64_decode(encoded);
    assert_eq!(decoded.trim(), token_file.trim());

    // The ClusterIPs are the VIPs: in fedctl services and in DNS.
    let east = fed.get("east");
    wait_until("east's VIP is the ClusterIP", SYNC, || {
        east.service("demo/hello")
            .is_some_and(|s| s["vip"] == global_ip.as_str())
    });
    // DNS is fed from the table by a task of its own: it follows shortly.
    for (name, ip) in [
        ("hello.demo.svc.clusterset.local", global_ip),
        ("west.hello.demo.svc.clusterset.local", pinned_ip),
    ] {
        let want: std::net::Ipv4Addr = ip.parse().expect("a ClusterIP");
        wait_until(&format!("DNS answers {name} with {want}"), SYNC, || {
            fedmesh_tests::dns_query(east.dns(), name, "A").a == [want]
        });
    }

    // kube-proxy would send ClusterIP:8080 to a gateway pod's target port;
    // here the client dials east's gateway on that port directly.
    fed.get_mut("west").start_gateway();
    fed.get_mut("east").start_gateway();
    let east = fed.get("east");
    for (name, _, ports) in &services {
        let port = u16::try_from(ports[0].1).unwrap();
        let addr = std::net::SocketAddr::from((east.ip, port));
        wait_until(
            &format!("{name} is served on gateway port {port}"),
            SYNC,
            || fedmesh_tests::ask_backend(addr).as_deref() == Ok("west"),
        );
    }

    // A restart keeps every ClusterIP and port: the Services are the record.
    fed.get_mut("east").kill9();
    fed.get_mut("east").start();
    wait_until("east's table has the VIP again", SYNC, || {
        fed.get("east")
            .service("demo/hello")
            .is_some_and(|s| s["vip"] == global_ip.as_str())
    });
    assert_eq!(import_services(&api), services, "nothing moved");

    // Unexport in west: east deletes the Services.
    fed.get("west")
        .write_manifest("hello.yaml", &hello(&[], &[]));
    wait_until("east deletes the import Services", SYNC, || {
        import_services(&api).is_empty()
    });
}

/// Secret data is standard base64.
fn base64_decode(text: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 Secret data");
    String::from_utf8(bytes).expect("utf-8 token")
}
