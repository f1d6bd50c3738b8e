use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::metrics::Format;
use crate::state::{Affinity, GatewayState, Import, Locality, Target};

/// What Prometheus 2.x sends when scraping.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,\
     text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn openmetrics_only_when_the_scrape_asks_for_it() {
    for (accept, want) in [
        (None, Format::Classic),
        (Some(""), Format::Classic),
        (Some("*/*"), Format::Classic),
        (Some("text/plain"), Format::Classic),
        (Some("text/plain;version=0.0.4"), Format::Classic),
        (Some(PROMETHEUS_ACCEPT), Format::OpenMetrics),
        (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
        (Some("application/openmetrics-text; q=0"), Format::Classic),
        (
            Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
            Format::Classic,
        ),
        (
            Some("text/plain;q=0.5, application/openmetrics-text;q=0.9"),
            Format::OpenMetrics,
        ),
    ] {
        assert_eq!(metrics_format(accept), want, "Accept: {accept:?}");
    }
}

/// Metrics with an import of demo/hello from a local and a remote
/// cluster, and a few events.
fn metrics() -> Arc<Metrics> {
    let key: crate::state::ServiceKey = ("demo".into(), "hello".into());
    let target = |cluster: &str, local: bool| Target {
        cluster: cluster.into(),
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        gateway: if local { "" } else { "127.0.2.1:15443" }.into(),
        local,
        draining: false,
    };
    let import = Import {
        key: key.clone(),
        vip: "127.77.0.1".parse().expect("an IPv4 literal"),
        ports: vec![("http".into(), 8080)],
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        targets: vec![target("east", true), target("west", false)],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    };
    let state = GatewayState {
        cluster: "east".into(),
        imports: [(key.clone(), import)].into(),
        ..GatewayState::default()
    };
    let m = Metrics::new();
    m.prepare(&state);
    m.egress_connected(&key, "west", Duration::from_millis(3));
    m.egress_meters(&key, "west").up.inc_by(42);
    m.egress_listeners(1);
    Arc::new(m)
}

/// GETs `/metrics` from a served admin port with `accept`; returns the
/// `Content-Type` and the body.
async fn scrape(accept: &str) -> (String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let server = tokio::spawn(serve(listener, metrics(), Arc::default()));
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    server.abort();
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .expect("a Content-Type");
    (content_type, body.to_string())
}

/// Runs `promtool check metrics` on `text`. Without promtool the check is
/// skipped, unless `FEDMESH_REQUIRE_PROMTOOL` or `CI` is set (CI installs
/// it): then a missing promtool fails the test.
fn promtool_check(text: &str) {
    let required = ["FEDMESH_REQUIRE_PROMTOOL", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!("promtool is not installed: classic text not checked by it");
            return;
        }
        Err(e) => panic!("cannot run promtool ({e}); install the prometheus package"),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn text_plain_scrape_gets_classic_text_that_promtool_accepts() {
    let (content_type, body) = scrape("text/plain").await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let failed = "fedmesh_gateway_egress_connections_failed_total";
    assert!(
        body.lines()
            .any(|l| l == format!("# TYPE {failed} counter")),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == format!("{failed}{{namespace=\"demo\",service=\"hello\"}} 0")),
        "{body}"
    );
    assert!(
        !body.contains("# EOF") && !body.contains("_created"),
        "{body}"
    );
    promtool_check(&body);
}

#[tokio::test]
async fn openmetrics_scrape_gets_openmetrics() {
    let (content_type, body) = scrape(PROMETHEUS_ACCEPT).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    // OpenMetrics grammar, the parts that differ from the classic format:
    // a counter family is named without `_total` and its samples with it.
    let mut family: Option<(String, String)> = None;
    let mut samples = 0;
    for line in body.lines().filter(|l| *l != "# EOF") {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(!name.ends_with("_total"), "{line}");
            family = Some((name.to_string(), kind.to_string()));
        } else if !line.starts_with('#') {
            let (name, kind) = family.as_ref().expect("a sample after its TYPE");
            assert!(line.starts_with(name.as_str()), "{line} is not in {name}");
            if kind == "counter" {
                assert!(line.starts_with(&format!("{name}_total")), "{line}");
            }
            samples += 1;
        }
    }
    assert!(samples > 20, "{body}");
}
