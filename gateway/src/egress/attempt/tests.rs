//! Stage 4 on its own: real sockets on loopback, an egress whose only
//! remote gateway is a closed port (its pool cannot dial), and local
//! endpoints.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{LiveCert, SharedTrust, TrustBundle};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::*;
use crate::lifecycle;
use crate::limits::Limits;
use crate::metrics::{Format, Metrics};
use crate::pools::Pools;
use crate::state::{Affinity, Endpoint, Export, Locality};
use crate::tls::GatewayTls;
use crate::wire;

fn config() -> fedmesh_proto::config::GatewayConfig {
    fedmesh_proto::config::Config::from_yaml(
        "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
        std::path::Path::new("/tmp/x.yaml"),
    )
    .unwrap()
    .gateway
}

/// A self-signed certificate: no remote dial in these tests gets as far
/// as a handshake.
fn cert() -> LiveCert {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gw.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let key: PrivateKeyDer<'static> = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    LiveCert::new(vec![der], key).unwrap()
}

fn egress(state: GatewayState) -> Arc<Egress> {
    let gw = config();
    let (_tx, states) = watch::channel(Arc::new(state));
    let trust = SharedTrust::new(TrustBundle::default());
    let tls = GatewayTls::new(cert(), trust, &[wire::ALPN_H2]);
    let (life, _drain) = lifecycle::new();
    Arc::new(Egress {
        states,
        health: Arc::new(crate::health::Health::new(&gw)),
        limits: Arc::new(Limits::new(&gw)),
        metrics: Arc::new(Metrics::new()),
        pools: Arc::new(Pools::new(tls, Duration::from_secs(1), 10_000)),
        endpoints: Arc::new(crate::http::Endpoints::new()),
        retry_budgets: Arc::new(crate::http::RetryBudgets::new()),
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        bind: "127.0.0.1".parse().unwrap(),
        observe: Arc::new(crate::observe::Observe::off("east")),
        life,
    })
}

fn target(cluster: &str, gateway: Option<SocketAddr>) -> Target {
    Target {
        cluster: cluster.into(),
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        gateway: gateway.map(|g| g.to_string()).unwrap_or_default(),
        local: gateway.is_none(),
        draining: false,
    }
}

/// demo/hello on `endpoint` here, imported from here and `west`.
fn state(endpoint: SocketAddr, west_gateway: SocketAddr) -> GatewayState {
    let key = ("demo".to_string(), "hello".to_string());
    let import = Import {
        key: key.clone(),
        vip: "127.77.0.1".parse().unwrap(),
        ports: vec![("http".into(), 8080)],
        affinity: Affinity::Remote,
        weights: BTreeMap::new(),
        targets: vec![target("west", Some(west_gateway)), target("east", None)],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    };
    let export = Export {
        ports: vec![("http".into(), 8080)],
        endpoints: vec![Endpoint {
            address: endpoint.ip(),
            ready: true,
            ports: BTreeMap::from([("http".to_string(), endpoint.port())]),
            hostname: None,
        }],
        export_to: Vec::new(),
    };
    GatewayState {
        cluster: "east".into(),
        imports: BTreeMap::from([(key.clone(), import)]),
        exports: HashMap::from([(key, export)]),
        ..Default::default()
    }
}

/// A connected client socket pair: (what egress holds, the client).
async fn client() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    (l.accept().await.unwrap().0, c)
}

async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn an_unreachable_peer_fails_over_to_the_next_target_and_counts_as_a_failed_probe() {
    let endpoint = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let west = closed_port().await;
    let e = egress(state(endpoint.local_addr().unwrap(), west));
    let st = e.state();
    let import = &st.imports[&("demo".to_string(), "hello".to_string())];
    let route = Route::new("demo", "hello", 8080);
    let attempts = Attempts {
        egress: &e,
        state: &st,
        import,
        route: &route,
    };
    let targets: Vec<&Target> = import.targets.iter().collect();
    assert_eq!(targets[0].cluster, "west", "affinity remote: west first");
    let (mut ours, _client) = client().await;
    let mut early = Early::default();
    let connected = attempts
        .first_that_connects(&targets, &mut ours, &mut early)
        .await
        .expect("the local endpoint takes it");
    assert_eq!(connected.cluster, "east");
    let text = e.metrics.encode(Format::OpenMetrics);
    assert!(
        text.lines()
            .any(|l| l.contains("reason=\"peer_unreachable\"")
                && l.contains("cluster=\"west\"")
                && l.ends_with(" 1")),
        "{text}"
    );
    // The failed dial counted as one failed probe: two more make three
    // (probeFailures) and take west's gateway down.
    let w = west.to_string();
    assert_eq!(e.health.probed(&w, false), crate::health::Transition::None);
    assert_eq!(e.health.probed(&w, false), crate::health::Transition::Down);
}

#[tokio::test]
async fn bytes_kept_from_a_refusing_target_reach_the_local_endpoint_first() {
    let endpoint = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = egress(state(endpoint.local_addr().unwrap(), closed_port().await));
    let st = e.state();
    let import = &st.imports[&("demo".to_string(), "hello".to_string())];
    let route = Route::new("demo", "hello", 8080);
    let attempts = Attempts {
        egress: &e,
        state: &st,
        import,
        route: &route,
    };
    // What a refusing peer left: the client's first bytes.
    let (mut ours, mut theirs) = client().await;
    theirs.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut early = Early::default();
    early.read_more(&mut ours).await.unwrap();
    let local: Vec<&Target> = import.targets.iter().filter(|t| t.local).collect();
    attempts
        .first_that_connects(&local, &mut ours, &mut early)
        .await
        .expect("connected");
    assert!(early.is_empty(), "delivered");
    let (mut at_endpoint, _) = endpoint.accept().await.unwrap();
    let mut got = [0u8; 16];
    at_endpoint.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn no_usable_target_resets_the_client_and_counts_it() {
    let e = egress(state(closed_port().await, closed_port().await));
    let (ours, mut theirs) = client().await;
    let conn = Accepted {
        client: ours,
        remote: "127.0.0.1:1".parse().unwrap(),
        listener: crate::state::Listener {
            key: ("demo".into(), "hello".into()),
            port: 8080,
            pinned: Some("nowhere".into()),
            endpoint: None,
        },
    };
    let r = forward(e.clone(), conn).await;
    assert!(matches!(r, Err(EgressError::NoUsableTarget)), "{r:?}");
    let mut buf = [0u8; 1];
    let read = theirs.read(&mut buf).await;
    assert!(
        read.is_err() || read.unwrap() == 0,
        "reset, not left hanging"
    );
    let text = e.metrics.encode(Format::OpenMetrics);
    assert!(
        text.contains("fedmesh_gateway_egress_connections_failed_total{namespace=\"demo\",service=\"hello\"} 1"),
        "{text}"
    );
}
