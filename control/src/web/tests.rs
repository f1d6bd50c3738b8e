//! The web port over a real socket: each route's status, type and body,
//! from a test cluster's handles.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::{WebInputs, serve};
use crate::api::gateways::GatewayRegistry;
use crate::exports::ExportState;
use crate::model::Locality;
use crate::peering::testkit::{DEADLINE, Side, side, wire};
use crate::store::Role;
use crate::table::TableSnapshot;

/// A running web port and what feeds it.
struct Port {
    addr: std::net::SocketAddr,
    exports: watch::Sender<Arc<ExportState>>,
    _table: watch::Sender<Arc<TableSnapshot>>,
    _stop: oneshot::Sender<()>,
}

/// The web port's handles over a test side, with `exports` and `table`.
fn inputs(
    east: &Side,
    exports: watch::Receiver<Arc<ExportState>>,
    table: watch::Receiver<Arc<TableSnapshot>>,
) -> WebInputs {
    WebInputs {
        cluster: "east".into(),
        locality: Locality {
            region: "us-east".into(),
            zone: "us-east-1a".into(),
        },
        peers: east.h.peers.clone(),
        acked: east.h.acked.clone(),
        exports,
        table,
        gateways: GatewayRegistry::new(),
        gateway_name: "gw-1".into(),
        dns: fedmesh_dns::QueryCounters::new(1),
        root_not_after: east.ca.not_after(),
        control_cert: east.dialer().cert,
    }
}

async fn start() -> Port {
    let east = side("east", Duration::from_secs(3));
    let (exports, exports_rx) = watch::channel(Arc::new(ExportState::default()));
    let (table, table_rx) = watch::channel(Arc::new(TableSnapshot::default()));
    let inputs = inputs(&east, exports_rx, table_rx);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, inputs, async move {
        let _ = stop_rx.await;
    }));
    Port {
        addr,
        exports,
        _table: table,
        _stop: stop_tx,
    }
}

/// One request; (status, head, body).
async fn request(addr: std::net::SocketAddr, line: &str, headers: &str) -> (u16, String, String) {
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let req = format!("{line}\r\nHost: t\r\n{headers}Connection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut text = String::new();
        conn.read_to_string(&mut text).await.expect("read");
        text
    };
    let text = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("an answer in time");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn ready_waits_for_the_first_read_of_the_registry_and_live_does_not() {
    let port = start().await;
    assert_eq!(request(port.addr, "GET /live HTTP/1.1", "").await.0, 200);
    let (status, _, body) = request(port.addr, "GET /ready HTTP/1.1", "").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: the registry has not been read yet\n")
    );
    let read = ExportState::new(1, 1, Default::default());
    port.exports.send_replace(Arc::new(read));
    assert_eq!(request(port.addr, "GET /ready HTTP/1.1", "").await.0, 200);
}

#[tokio::test]
async fn metrics_answer_in_the_format_the_scrape_asks_for() {
    let port = start().await;
    let (status, head, body) = request(port.addr, "GET /metrics HTTP/1.1", "").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("fedmesh_control_peers{state=\"connected\"} 0"),
        "{body}"
    );
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n";
    let (_, head, body) = request(port.addr, "GET /metrics HTTP/1.1", accept).await;
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn topology_page_and_redirects_are_served() {
    let port = start().await;
    let (status, head, body) = request(port.addr, "GET /api/topology HTTP/1.1", "").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    let t: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (t["cluster"].as_str(), t["clusters"][0]["region"].as_str()),
        (Some("east"), Some("us-east"))
    );
    let (status, head, body) = request(port.addr, "GET /ui/ HTTP/1.1", "").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.contains("fetch(\"/api/topology\""),
        "the page polls the topology"
    );
    let (status, head, _) = request(port.addr, "GET / HTTP/1.1", "").await;
    assert_eq!(status, 302);
    assert!(head.contains("location: /ui/"), "{head}");
}

#[tokio::test]
async fn unknown_paths_and_other_methods_are_refused_with_a_hint() {
    let port = start().await;
    let (status, _, body) = request(port.addr, "GET /nope HTTP/1.1", "").await;
    assert_eq!(status, 404);
    assert!(body.contains("/api/topology"), "{body}");
    let (status, _, _) =
        request(port.addr, "POST /metrics HTTP/1.1", "Content-Length: 0\r\n").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn an_export_change_is_timed_until_the_connected_peer_acks_it() {
    let (east, west) = (side("east", DEADLINE), side("west", DEADLINE));
    east.add_peer(&west, Role::Acceptor);
    west.add_peer(&east, Role::Dialer);
    let (_sessions_a, _sessions_b) = wire(&east, &west);
    let (_table, table_rx) = watch::channel(Arc::new(TableSnapshot::default()));
    let web = inputs(&east, east.h.exports.clone(), table_rx);
    let metrics = super::ControlMetrics::new();
    let timer = tokio::spawn(super::propagation::run(web.clone(), metrics.propagation()));
    let count = |m: &super::ControlMetrics| {
        let text = m.encode(
            &Default::default(),
            fedmesh_proto::metrics_text::Format::Classic,
        );
        text.lines()
            .find_map(|l| l.strip_prefix("fedmesh_control_export_propagation_seconds_count "))
            .map(str::to_string)
    };
    // The peering connects, then east exports one service.
    let connected = async {
        while east.state("west") != Some(crate::model::LinkState::Connected) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(DEADLINE, connected)
        .await
        .expect("connected");
    east.export(1, 1, &["hello"]);
    let observed = async {
        while count(&metrics).as_deref() != Some("1") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(DEADLINE, observed)
        .await
        .expect("the change timed");
    let sample = super::sample::take(&web);
    assert_eq!(sample.peers[0].pending, 0, "{sample:?}");
    assert_eq!(sample.peers[0].acked_version, 1, "{sample:?}");
    timer.abort();
}
