//! examples/monitoring stays true: the rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`: a fresh gateway's first
//! failure fires the reset alert), the rules of docs/operations.md are in
//! the rules file, and every metric the rules and the Grafana dashboard
//! name is exported by a real gateway and control plane.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, http_get, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .join("examples/monitoring")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs `promtool` with `args` in examples/monitoring, `stdin` piped in.
/// `None` when promtool is not installed and neither
/// `FEDMESH_REQUIRE_PROMTOOL` nor `CI` is set (CI installs it; there a
/// missing promtool fails the test).
pub(crate) fn promtool(args: &[&str], stdin: Option<&str>) -> Option<Output> {
    let required = ["FEDMESH_REQUIRE_PROMTOOL", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let child = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!("promtool is not installed: `promtool {args:?}` skipped");
            return None;
        }
        Err(e) => panic!("cannot run promtool ({e}); install the prometheus package"),
    };
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write to promtool");
    drop(input);
    Some(child.wait_with_output().expect("promtool ran"))
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests_fire_on_a_first_failure() {
    let Some(out) = promtool(&["check", "rules", "fedmesh-rules.yaml"], None) else {
        return;
    };
    assert_success(&out, "promtool check rules");
    let out = promtool(&["test", "rules", "fedmesh-rules.test.yaml"], None).expect("promtool");
    assert_success(&out, "promtool test rules");
    let out = promtool(&["check", "config", "prometheus.yml"], None).expect("promtool");
    assert_success(&out, "promtool check config");
    let tests = read("fedmesh-rules.test.yaml");
    assert!(
        tests.contains("values: '0 0 0 1 1 1'"),
        "the reset test starts at 0"
    );
}

#[test]
fn every_alert_of_operations_md_is_in_the_rules_file() {
    let doc =
        std::fs::read_to_string(dir().join("../../docs/operations.md")).expect("operations.md");
    let rules = read("fedmesh-rules.yaml");
    let exprs: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr: "))
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    for expr in exprs {
        assert!(
            rules.contains(&format!("expr: {expr}\n")),
            "operations.md's {expr} is not in fedmesh-rules.yaml"
        );
    }
}

/// Every `fedmesh_*` and `process_*` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["fedmesh_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
        }
    }
    out
}

/// The metric names a classic scrape declares (`# TYPE` lines), with the
/// sample names of histograms.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        out.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{suffix}"));
            }
        }
    }
    out
}

/// east and west, each with its web port and a gateway, demo/hello served
/// by west's backend and reached once through east's VIP, so that every
/// per-peer and per-target series (probes, pools, connect times, ingress)
/// exists.
fn east_served_by_west() -> (Federation, Backend) {
    let mut fed = Federation::standard_with_web(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let west = fed.get("west");
    let backend: SocketAddr = (west.ip, 18080).into();
    let endpoint = backend.ip().to_string();
    west.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&endpoint],
        ),
    );
    let backend = Backend::start(backend, "west");
    let east = fed.get("east");
    wait_until("east imports hello from west", SYNC, || {
        east.service_clusters("demo/hello") == ["west"]
    });
    let vip: IpAddr = east.service("demo/hello").expect("hello")["vip"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a VIP");
    let vip = SocketAddr::new(vip, 8080);
    wait_until("a connection through east's VIP reaches west", SYNC, || {
        ask_backend(vip).as_deref() == Ok("west")
    });
    (fed, backend)
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_in_a_real_scrape() {
    let (fed, _backend) = east_served_by_west();
    let mut have = BTreeSet::new();
    for (i, c) in fed.clusters.iter().enumerate() {
        have.extend(exported(&c.gateway_admin("/metrics").1));
        let web = format!("{}:15080", fed.ip(i));
        have.extend(exported(&http_get(&web, "/metrics").1));
    }
    let mut used = metric_names(&read("fedmesh-rules.yaml"));
    used.extend(metric_names(&read("fedmesh-dashboard.json")));
    assert!(used.len() >= 20, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the rules or dashboard use metrics no scrape exports: {missing:?}\nexported: {have:?}"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("fedmesh-dashboard.json")).expect("the dashboard is JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10)
    );
}
