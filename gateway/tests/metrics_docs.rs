//! docs/operations.md names the gateway's metrics as `/metrics` exports
//! them: every registered metric (counters with their `_total` suffix)
//! appears there with the labels it has, every `fedmesh_gateway_…` name
//! written there exists, the `reason` tables list the reasons the gateway
//! creates series for, and the alert rules file there is one `promtool`
//! accepts and whose "clients see resets" alert fires on a gateway's first
//! failure (`promtool test rules`, over the series as the gateway names
//! them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fedmesh_gateway::metrics::{
    Format, INGRESS_REFUSALS, LOCAL_ATTEMPT_REASONS, Metrics, REMOTE_ATTEMPT_REASONS,
};
use fedmesh_gateway::state::{Affinity, GatewayState, Import, Locality, ServiceKey, Target};
use fedmesh_proto::app_protocol::AppProtocol;

fn hello() -> ServiceKey {
    ("demo".to_string(), "hello".to_string())
}

/// A snapshot importing demo/hello from this cluster (east) and west.
fn state() -> GatewayState {
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
        key: hello(),
        vip: "127.77.0.1".parse().expect("an IPv4 literal"),
        ports: vec![("http".into(), 8080)],
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        targets: vec![target("east", true), target("west", false)],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    };
    GatewayState {
        cluster: "east".into(),
        imports: [(hello(), import)].into(),
        import_protocols: [((hello(), 8080), AppProtocol::Http)].into(),
        ..GatewayState::default()
    }
}

/// The OpenMetrics text of a gateway with a sample in every family.
fn text() -> String {
    let m = Metrics::new();
    m.prepare(&state());
    // Ingress series need a trusted peer in the snapshot; events make them.
    let _ingress = m.ingress_active(&hello(), "eu");
    m.ingress_meters(&hello(), "eu").up.inc_by(1);
    m.egress_connected(&hello(), "west", Duration::from_millis(1));
    m.http_request(&hello(), "west", 200, Duration::from_millis(1));
    m.grpc_request(&hello(), "west", "0");
    m.encode(Format::OpenMetrics)
}

/// Exported families: main name (`name_total` for counters) → label names
/// (`le` aside); and every sample name, histograms' series included.
fn exported() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut main: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all = BTreeSet::new();
    let mut family = String::new();
    for line in text().lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            family = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            main.entry(family.clone()).or_default();
            all.insert(family.clone());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        all.insert(line[..name_end].to_owned());
        let labels = main.entry(family.clone()).or_default();
        labels.extend(label_names(&line[name_end..]).filter(|l| l != "le"));
    }
    (main, all)
}

/// The label names of a sample's `{a="x",b="y"} 1` (values hold no quotes
/// here).
fn label_names(rest: &str) -> impl Iterator<Item = String> + '_ {
    let inside = rest
        .strip_prefix('{')
        .and_then(|r| r.split_once('}'))
        .map_or("", |(labels, _)| labels);
    inside
        .split("\",")
        .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
}

fn operations_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    std::fs::read_to_string(path).expect("docs/operations.md")
}

/// The metric table's rows: metric → its labels column.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    operations_md()
        .lines()
        .filter_map(|l| l.strip_prefix("| `fedmesh_gateway_"))
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = format!("fedmesh_gateway_{}", cells.first()?.trim_end_matches('`'));
            let labels = cells
                .get(2)?
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            Some((name, labels))
        })
        .collect()
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
            "{name} has no sample here; give it one in text()"
        );
    }
}

#[test]
fn every_gateway_metric_is_in_operations_md_with_its_labels() {
    let (main, _) = exported();
    assert!(main.len() >= 10, "{main:?}");
    assert_eq!(
        documented(),
        main,
        "docs/operations.md's metric table (left) differs from /metrics (right)"
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

/// The first-column reasons of the table under the line that starts with
/// `heading`.
fn reason_table(heading: &str) -> BTreeSet<String> {
    let doc = operations_md();
    let Some(at) = doc.find(heading) else {
        panic!("docs/operations.md has no {heading:?}");
    };
    doc[at..]
        .lines()
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split(", "))
        .map(|r| r.trim_start_matches("| ").trim_matches('`').to_owned())
        .collect()
}

#[test]
fn reason_tables_list_every_reason_with_a_series_at_zero() {
    let attempts: BTreeSet<String> = LOCAL_ATTEMPT_REASONS
        .iter()
        .chain(REMOTE_ATTEMPT_REASONS)
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        reason_table("`reason` of `egress_attempts_failed_total`"),
        attempts
    );
    let refusals: BTreeSet<String> = INGRESS_REFUSALS.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        reason_table("`reason` of `ingress_refused_total`"),
        refusals
    );
}

/// The `yaml` fenced block of operations.md that is a rules file.
fn rules_file() -> String {
    let doc = operations_md();
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in doc.lines() {
        match (&mut open, line.trim_start().starts_with("```")) {
            (Some(_), true) => blocks.extend(open.take()),
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, true) if line.trim() == "```yaml" => open = Some(String::new()),
            (None, _) => {}
        }
    }
    blocks
        .into_iter()
        .find(|b| b.starts_with("groups:"))
        .expect("docs/operations.md has a rules file (a yaml block starting `groups:`)")
}

#[test]
fn every_alert_expression_in_the_table_is_in_the_rules_file() {
    let rules = rules_file();
    let doc = operations_md();
    let at = doc
        .find("## Suggested alerts")
        .expect("a Suggested alerts section");
    let section = &doc[at..];
    let section = section[2..]
        .find("\n## ")
        .map_or(section, |end| &section[..end + 2]);
    let mut checked = 0;
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let Some(expr) = row
            .split('`')
            .nth(1)
            .filter(|e| e.contains("fedmesh_gateway_"))
        else {
            continue;
        };
        // Markdown tables escape `|`.
        let expr = expr.replace("\\|", "|");
        assert!(
            rules.contains(&format!("expr: {expr}\n")),
            "{expr} is not in the rules file"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} expressions found");
}

/// Runs `promtool` with `args` in `dir`. `None` when promtool is not
/// installed and neither `FEDMESH_REQUIRE_PROMTOOL` nor `CI` is set (CI
/// installs it; there a missing promtool fails the test).
fn promtool(dir: &Path, args: &[&str], stdin: &str) -> Option<std::process::Output> {
    let required = ["FEDMESH_REQUIRE_PROMTOOL", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
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
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    drop(input);
    Some(child.wait_with_output().expect("promtool ran"))
}

fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `promtool test rules` file: the connections-failed series as the
/// gateway names it, once at 0 from the start and once appearing only with
/// the first failure.
fn rules_test(series: &str) -> String {
    format!(
        "rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{series}'
        values: '0 0 0 1 1 1'
    alert_rule_test:
      - eval_time: 2m
        alertname: FedmeshClientsSeeResets
        exp_alerts: []
      - eval_time: 4m
        alertname: FedmeshClientsSeeResets
        exp_alerts:
          - exp_labels: {{severity: page, namespace: demo, service: hello}}
            exp_annotations:
              summary: no cluster could serve some connections of demo/hello
  # Without the 0 from the start, the first failure is the first sample:
  # increase() sees no increase and the alert never fires.
  - interval: 1m
    input_series:
      - series: '{series}'
        values: '_ _ _ 1 1 1'
    alert_rule_test:
      - eval_time: 4m
        alertname: FedmeshClientsSeeResets
        exp_alerts: []
"
    )
}

#[test]
fn the_rules_file_passes_promtool_and_alerts_on_the_first_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yml"), rules_file()).expect("write rules");
    let Some(out) = promtool(dir.path(), &["check", "rules", "rules.yml"], "") else {
        return;
    };
    assert_success(&out, "promtool check rules");

    // The series before any event, as a prepared gateway exports it.
    let m = Metrics::new();
    m.prepare(&state());
    let classic = m.encode(Format::Classic);
    let series = classic
        .lines()
        .find(|l| l.starts_with("fedmesh_gateway_egress_connections_failed_total{"))
        .and_then(|l| l.strip_suffix(" 0"))
        .expect("connections_failed at 0 after prepare");
    std::fs::write(dir.path().join("test.yml"), rules_test(series)).expect("write test");
    let out = promtool(dir.path(), &["test", "rules", "test.yml"], "").expect("promtool ran");
    assert_success(&out, "promtool test rules");
}
