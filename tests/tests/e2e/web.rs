//! The control plane's web port (`control.webListen`) on three real
//! clusters: `/metrics` passes `promtool check metrics` and has the
//! peer-state series, `/api/topology` names every cluster, link and
//! served service, and a headless Chromium renders `/ui/` with every
//! cluster and link state, then shows a killed peer's link go down on the
//! same open page, refreshed by its own polling.

mod browser;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use fedmesh_tests::{EXPORT, Federation, dns_query, http_get, service_yaml, wait_until};
use serde_json::Value;

use browser::Browser;

const SYNC: Duration = Duration::from_secs(20);

/// east, west and eu, each with its web port on its own address at
/// :15080, joined in a full mesh; `control_extra` goes into every
/// `control:` section.
fn web_mesh(control_extra: &str) -> Federation {
    let fed = Federation::standard_with_web(3, control_extra);
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.join("eu", "west");
    for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
        fed.wait_connected(a, b, SYNC);
    }
    fed
}

fn web(fed: &Federation, cluster: &str) -> String {
    let i = fed
        .clusters
        .iter()
        .position(|c| c.name == cluster)
        .expect("cluster");
    format!("{}:15080", fed.ip(i))
}

fn topology(addr: &str) -> Value {
    let (code, body) = http_get(addr, "/api/topology");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("topology JSON ({e}): {body}"))
}

fn names(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[key].as_str().map(String::from))
        .collect();
    out.sort();
    out
}

/// GET with an `Accept` header; (Content-Type, body).
fn get_accepting(addr: &str, path: &str, accept: &str) -> (String, String) {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the web port");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let content_type = head
        .lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower.strip_prefix("content-type: ").map(str::to_string)
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

/// Runs `promtool check metrics` on `text`. Without promtool the check is
/// skipped, unless `FEDMESH_REQUIRE_PROMTOOL` or `CI` is set.
pub(crate) fn promtool_check_metrics(text: &str) {
    let Some(out) = crate::monitoring::promtool(&["check", "metrics"], Some(text)) else {
        return;
    };
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_the_topology_names_every_cluster_link_and_service() {
    let mut fed = web_mesh("");
    // East's gateway reports to east; it probes west's once it imports
    // from west.
    fed.get_mut("east").start_gateway();
    fed.get_mut("west").start_gateway();
    fed.get("west").write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &["127.0.0.20"],
        ),
    );
    let east = web(&fed, "east");
    assert_eq!(http_get(&east, "/live").0, 200);
    wait_until("east is ready", SYNC, || http_get(&east, "/ready").0 == 200);

    wait_until("east's topology serves demo/hello from west", SYNC, || {
        let t = topology(&east);
        t["services"][0]["clusters"][0]["cluster"] == "west"
    });
    let t = topology(&east);
    assert_eq!(t["cluster"], "east");
    assert_eq!(names(&t["clusters"], "name"), ["east", "eu", "west"]);
    let links: Vec<(String, String)> = t["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["to"].as_str().unwrap_or("").into(),
                l["state"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("eu".into(), "connected".into()),
            ("west".into(), "connected".into())
        ]
    );
    let west = t["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "west"))
        .cloned()
        .expect("west in clusters");
    assert_eq!(
        (west["region"].as_str(), west["zone"].as_str()),
        (Some("us-west"), Some("us-west-2a"))
    );
    wait_until(
        "east's topology shows its gateway and west's as probed",
        SYNC,
        || {
            let g = topology(&east)["gateways"].clone();
            let find = |cluster: &str| {
                g.as_array()
                    .and_then(|all| all.iter().find(|x| x["cluster"] == cluster).cloned())
            };
            let mine =
                find("east").is_some_and(|x| x["name"] == "gw-1" && x["health"] == "healthy");
            let west = find("west").is_some_and(|x| {
                x["health"] == "healthy"
                    && x["probes"][0]["by"] == "gw-1"
                    && x["probes"][0]["up"] == true
            });
            mine && west
        },
    );

    // One DNS question, so a response code moves.
    let before = dns_count(&east, "NOERROR");
    let _ = dns_query(
        fed.get("east").dns(),
        "hello.demo.svc.clusterset.local",
        "A",
    );
    wait_until("the DNS answer is counted", SYNC, || {
        dns_count(&east, "NOERROR") > before
    });

    let scrape = Instant::now();
    let (code, classic) = http_get(&east, "/metrics");
    assert_eq!(code, 200);
    let samples = classic.lines().filter(|l| !l.starts_with('#')).count();
    println!(
        "east /metrics: {} bytes, {samples} samples, answered in {:?}",
        classic.len(),
        scrape.elapsed()
    );
    for line in [
        "fedmesh_control_peers{state=\"connected\"} 2",
        "fedmesh_control_peers{state=\"disconnected\"} 0",
        "fedmesh_control_peer_state{peer=\"west\",state=\"connected\"} 1",
        "fedmesh_control_peer_imports{peer=\"west\"} 1",
        "fedmesh_control_services 1",
        "fedmesh_control_gateways_ready 1",
        "fedmesh_control_service_endpoints_healthy{namespace=\"demo\",service=\"hello\",cluster=\"west\"} 1",
    ] {
        assert!(
            classic.lines().any(|l| l == line),
            "no {line:?} in\n{classic}"
        );
    }
    for name in [
        "fedmesh_control_peer_heartbeat_age_seconds{peer=\"eu\"}",
        "fedmesh_control_peer_sync_pending_exports{peer=\"west\"}",
        "fedmesh_control_cert_expiry_timestamp_seconds{cert=\"root\",name=\"east\"}",
        "fedmesh_control_cert_expiry_timestamp_seconds{cert=\"gateway\",name=\"gw-1\"}",
        "fedmesh_control_cert_expiry_timestamp_seconds{cert=\"peer_root\",name=\"west\"}",
        "fedmesh_control_build_info{",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(classic.contains(name), "no {name} in\n{classic}");
    }
    promtool_check_metrics(&classic);
    // West exported one service: every peer acked it, and it was timed.
    let west_web = web(&fed, "west");
    wait_until("west's peers acked its export", SYNC, || {
        let (_, m) = http_get(&west_web, "/metrics");
        m.lines()
            .any(|l| l == "fedmesh_control_peer_sync_pending_exports{peer=\"east\"} 0")
            && m.lines().any(|l| {
                l.starts_with("fedmesh_control_export_propagation_seconds_count ")
                    && !l.ends_with(" 0")
            })
    });

    let (_, m) = http_get(&west_web, "/metrics");
    let value = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "west export propagation: {} changes, {} s in all",
        value("fedmesh_control_export_propagation_seconds_count "),
        value("fedmesh_control_export_propagation_seconds_sum ")
    );

    let (content_type, open) = get_accepting(
        &east,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
}

fn dns_count(addr: &str, rcode: &str) -> u64 {
    let (_, m) = http_get(addr, "/metrics");
    let prefix = format!("fedmesh_control_dns_queries_total{{rcode=\"{rcode}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What the rendered page shows: cluster names drawn on the map, and each
/// link row's peer and state.
const RENDERED: &str = "
    const clusters = [...document.querySelectorAll('[data-cluster]')].map(e => e.dataset.cluster).sort();
    const links = [...document.querySelectorAll('#links [data-link]')]
        .map(e => [e.dataset.link, e.dataset.state, e.textContent]);
    return { clusters, links, text: document.body.innerText };
";

fn link_state(rendered: &Value, peer: &str) -> Option<String> {
    rendered["links"]
        .as_array()?
        .iter()
        .find(|l| l[0] == peer)
        .and_then(|l| l[1].as_str().map(String::from))
}

#[test]
fn the_topology_page_renders_every_cluster_and_shows_a_killed_peers_link_down() {
    let Some(browser) = Browser::start() else {
        return;
    };
    // A short grace, so a dead peer is shown disconnected within seconds.
    let mut fed = web_mesh("  staleGrace: 1s\n");
    let east = web(&fed, "east");
    browser.goto(&format!("http://{east}/ui/"));
    let deadline = Instant::now() + SYNC;
    let rendered = loop {
        let r = browser.eval(RENDERED);
        let both = ["eu", "west"]
            .iter()
            .all(|p| link_state(&r, p).as_deref() == Some("connected"));
        if both && r["clusters"].as_array().is_some_and(|c| c.len() == 3) {
            break r;
        }
        assert!(Instant::now() < deadline, "page never showed the mesh: {r}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        rendered["clusters"],
        serde_json::json!(["east", "eu", "west"])
    );
    let text = rendered["text"].as_str().unwrap_or("");
    for needle in ["east", "west", "eu", "region us-west", "connected"] {
        assert!(text.contains(needle), "page text lacks {needle:?}:\n{text}");
    }
    // FEDMESH_UI_SCREENSHOT=DIR keeps what the page looked like.
    let shots = std::env::var_os("FEDMESH_UI_SCREENSHOT").map(std::path::PathBuf::from);
    if let Some(dir) = &shots {
        browser.screenshot(&dir.join("topology-connected.png"));
    }

    fed.get_mut("west").kill9();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(10);
    loop {
        let r = browser.eval(RENDERED);
        if link_state(&r, "west").as_deref() == Some("disconnected") {
            assert_eq!(link_state(&r, "eu").as_deref(), Some("connected"), "{r}");
            if let Some(dir) = &shots {
                browser.screenshot(&dir.join("topology-west-down.png"));
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "page never showed west down: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "page showed west disconnected {:?} after the kill",
        killed.elapsed()
    );
}
