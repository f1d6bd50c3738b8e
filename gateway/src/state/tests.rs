//! The snapshot decoding and the listeners, driven directly.

use super::*;

fn snapshot(listen_ports: Vec<v1::ListenPort>) -> v1::GatewaySnapshot {
    let target = |cluster: &str, pinned: &str, local: bool| v1::Target {
        cluster: cluster.into(),
        healthy_endpoints: 1,
        gateway_address: if local { "" } else { "127.0.2.1:15443" }.into(),
        pinned_vip: pinned.into(),
        local,
        ..Default::default()
    };
    v1::GatewaySnapshot {
        imports: vec![v1::ImportedService {
            namespace: "demo".into(),
            name: "hello".into(),
            vip: "127.77.0.1".into(),
            ports: vec![v1::ServicePort {
                name: "http".into(),
                port: 8080,
                ..Default::default()
            }],
            targets: vec![
                target("east", "127.77.0.2", true),
                target("west", "127.77.0.3", false),
            ],
            listen_ports,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn listener(pinned: Option<&str>) -> Listener {
    Listener {
        key: ("demo".into(), "hello".into()),
        port: 8080,
        pinned: pinned.map(str::to_string),
        endpoint: None,
    }
}

#[test]
fn a_named_endpoint_vip_gets_a_listener_of_its_own() {
    let mut snap = snapshot(vec![]);
    snap.imports[0].targets[1].endpoint_vips = vec![v1::EndpointVip {
        hostname: "db-2".into(),
        vip: "127.77.0.9".into(),
    }];
    let state = GatewayState::from_proto(&snap).unwrap();
    let got = state.listeners("127.0.1.1".parse().unwrap());
    assert_eq!(got.len(), 4, "{got:?}");
    let mut want = listener(Some("west"));
    want.endpoint = Some("db-2".into());
    assert_eq!(got[&"127.77.0.9:8080".parse().unwrap()], want);
}

#[test]
fn standalone_listeners_are_the_vip_and_every_pinned_vip() {
    let state = GatewayState::from_proto(&snapshot(vec![])).unwrap();
    let got = state.listeners("127.0.1.1".parse().unwrap());
    let want: HashMap<std::net::SocketAddr, Listener> = [
        ("127.77.0.1:8080", listener(None)),
        ("127.77.0.2:8080", listener(Some("east"))),
        ("127.77.0.3:8080", listener(Some("west"))),
    ]
    .into_iter()
    .map(|(a, l)| (a.parse().unwrap(), l))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn kubernetes_listeners_are_the_listen_ports_on_the_bind_address() {
    let ports = vec![
        v1::ListenPort {
            cluster: String::new(),
            port: 8080,
            listen_port: 20001,
            hostname: String::new(),
        },
        v1::ListenPort {
            cluster: "west".into(),
            port: 8080,
            listen_port: 20002,
            hostname: String::new(),
        },
    ];
    let state = GatewayState::from_proto(&snapshot(ports)).unwrap();
    let got = state.listeners("10.0.0.5".parse().unwrap());
    assert_eq!(got.len(), 2, "{got:?}: no listener on the ClusterIPs");
    assert_eq!(got[&"10.0.0.5:20001".parse().unwrap()], listener(None));
    assert_eq!(
        got[&"10.0.0.5:20002".parse().unwrap()],
        listener(Some("west"))
    );
}

#[test]
fn a_named_endpoints_listen_port_reaches_that_endpoint_only() {
    let ports = vec![v1::ListenPort {
        cluster: "west".into(),
        port: 8080,
        listen_port: 20007,
        hostname: "db-2".into(),
    }];
    let state = GatewayState::from_proto(&snapshot(ports)).unwrap();
    let got = state.listeners("10.0.0.5".parse().unwrap());
    let mut want = listener(Some("west"));
    want.endpoint = Some("db-2".into());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[&"10.0.0.5:20007".parse().unwrap()], want);
}

#[test]
fn a_bad_pinned_vip_or_listen_port_is_refused_by_name() {
    let mut bad = snapshot(vec![]);
    bad.imports[0].targets[1].pinned_vip = "not-an-ip".into();
    let e = GatewayState::from_proto(&bad).unwrap_err();
    assert!(e.contains("imports[0]") && e.contains("pinned_vip"), "{e}");
    let bad = snapshot(vec![v1::ListenPort {
        cluster: String::new(),
        port: 8080,
        listen_port: 70000,
        hostname: String::new(),
    }]);
    let e = GatewayState::from_proto(&bad).unwrap_err();
    assert!(e.contains("listen_ports"), "{e}");
    let bad = snapshot(vec![v1::ListenPort {
        cluster: String::new(),
        port: 8080,
        listen_port: 20003,
        hostname: "db-0".into(),
    }]);
    let e = GatewayState::from_proto(&bad).unwrap_err();
    assert!(e.contains("db-0") && e.contains("cluster"), "{e}");
}

#[test]
fn http_ports_decode_and_an_empty_protocol_is_tcp() {
    let mut snap = snapshot(vec![]);
    snap.imports[0].ports[0].app_protocol = "grpc".into();
    snap.imports[0].ports.push(v1::ServicePort {
        name: "db".into(),
        port: 5432,
        ..Default::default()
    });
    let state = GatewayState::from_proto(&snap).unwrap();
    let key = ("demo".to_string(), "hello".to_string());
    assert_eq!(state.import_protocol(&key, 8080), AppProtocol::Grpc);
    assert_eq!(state.import_protocol(&key, 5432), AppProtocol::Tcp);
    assert_eq!(state.export_protocol(&key, 8080), AppProtocol::Tcp);
    snap.imports[0].ports[0].app_protocol = "spdy".into();
    let e = GatewayState::from_proto(&snap).unwrap_err();
    assert!(e.contains("imports[0]") && e.contains("spdy"), "{e}");
}

#[test]
fn target_totals_decode_and_an_unknown_total_means_fully_healthy() {
    let mut snap = snapshot(vec![]);
    snap.imports[0].targets[1].healthy_endpoints = 4;
    snap.imports[0].targets[1].total_endpoints = 10;
    let state = GatewayState::from_proto(&snap).unwrap();
    let targets = &state.imports[&("demo".into(), "hello".into())].targets;
    let got: Vec<(u32, u32)> = targets.iter().map(|t| (t.healthy, t.total)).collect();
    // east sent no total (0): read as its healthy count.
    assert_eq!(got, [(1, 1), (4, 10)]);
}
