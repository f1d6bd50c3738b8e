//! docs/operations.md names the gateway's metrics as `/metrics` exports
//! them: every registered metric (counters with their `_total` suffix)
//! appears there, and every `fedmesh_gateway_…` name written there exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use fedmesh_gateway::metrics::Metrics;

/// Sample names as exported: `name_total` for counters, `name` otherwise;
/// histograms also by their `_bucket`, `_sum` and `_count` series.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    // A family with no sample is not exported: give each one.
    let m = Metrics::new();
    m.egress_connected("demo/hello", "west", Duration::from_millis(1));
    let _active = m.egress_active("demo/hello", "west");
    m.egress_attempt_failed("demo/hello", "east", "connect");
    m.egress_failed("demo/hello");
    m.tls_handshake("west", true);
    m.egress_rate_limited("demo/hello");
    m.egress_bytes("demo/hello", "west", 1, 1);
    m.ejection("west");
    m.probe("127.0.2.1:15443", true);
    m.ingress_refused("handshake");
    m.ingress_bytes("demo/hello", "eu", 1, 1);
    m.egress_listeners(1);
    m.peer_pool(
        "west",
        fedmesh_gateway::metrics::PoolCounts::default(),
        1,
        1,
    );
    let text = m.encode();
    let mut main = BTreeSet::new();
    let mut all = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let name = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                all.insert(format!("{name}{suffix}"));
            }
        }
        all.insert(name.clone());
        main.insert(name);
    }
    (main, all)
}

fn operations_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    std::fs::read_to_string(path).expect("docs/operations.md")
}

/// The names `metrics.rs` registers, read from its source.
fn registered() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics.rs");
    let src = std::fs::read_to_string(path).expect("src/metrics.rs");
    src.split("registry.register(")
        .skip(1)
        .filter_map(|call| call.split('"').nth(1))
        .map(|name| format!("fedmesh_gateway_{name}"))
        .collect()
}

#[test]
fn every_registered_metric_is_exported_by_this_test() {
    let (_, all) = exported();
    for name in registered() {
        assert!(
            all.contains(&name) || all.contains(&format!("{name}_total")),
            "{name} has no sample here; add a call for it in exported()"
        );
    }
}

#[test]
fn every_gateway_metric_is_in_operations_md() {
    let (main, _) = exported();
    assert!(main.len() >= 10, "{main:?}");
    let doc = operations_md();
    let missing: Vec<&String> = main
        .iter()
        .filter(|m| !doc.contains(&format!("`{m}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not list {missing:?}"
    );
}

#[test]
fn every_metric_named_in_operations_md_exists() {
    let (_, all) = exported();
    let doc = operations_md();
    let named: BTreeSet<&str> = doc
        .match_indices("fedmesh_gateway_")
        .map(|(at, _)| {
            let rest = &doc[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| *name != "fedmesh_gateway_")
        .collect();
    let unknown: Vec<&&str> = named.iter().filter(|n| !all.contains(**n)).collect();
    assert!(
        unknown.is_empty(),
        "docs/operations.md names metrics /metrics does not export: {unknown:?}"
    );
}
