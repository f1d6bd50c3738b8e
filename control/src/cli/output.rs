//! Rendering for `fedctl`: the fixed `-o json` shapes of DESIGN.md and
//! aligned tables for people.
//!
//! Table text comes partly from peers, so every cell goes through
//! [`safe_text`]: control characters (ANSI escapes, newlines) are printed
//! escaped, never interpreted by the terminal, and a cell is cut to a
//! bounded width. JSON needs neither: serde_json escapes control
//! characters (RFC 8259 §7) and a script wants the whole value.

use fedmesh_proto::v1;
use serde_json::{Value, json};

use crate::clock;
use crate::model::AppProtocol;

/// A port's protocol as `fedctl services` shows it: `HTTP`, `H2C`, `GRPC`
/// or `TCP` (a peer on an earlier release sends none: TCP).
fn port_protocol(p: &v1::ServicePort) -> &'static str {
    AppProtocol::from_wire(&p.app_protocol)
        .unwrap_or_default()
        .label()
}

/// Prints pretty JSON on stdout.
pub(super) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Widest table cell, in characters; longer text is cut with `…`.
const MAX_CELL_CHARS: usize = 120;

/// `text` safe to print on a terminal: each control character escaped
/// (`\u{1b}`, `\n`), then cut to [`MAX_CELL_CHARS`] characters.
pub(super) fn safe_text(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if chars + n > MAX_CELL_CHARS {
            out.push('…');
            return out;
        }
        chars += n;
        out.push_str(&piece);
    }
    out
}

/// `region/zone`, safe to print.
pub(super) fn locality_text(l: Option<&v1::Locality>) -> String {
    l.map_or_else(
        || "-".into(),
        |l| safe_text(&format!("{}/{}", l.region, l.zone)),
    )
}

fn time_or_null(unix_ms: i64) -> Value {
    if unix_ms == 0 {
        Value::Null
    } else {
        Value::String(clock::rfc3339_ms(unix_ms))
    }
}

/// One peer in the `fedctl peers -o json` shape.
pub(super) fn peer_json(p: &v1::PeerStatus) -> Value {
    let locality = p
        .locality
        .as_ref()
        .map_or(Value::Null, |l| json!({"region": l.region, "zone": l.zone}));
    json!({
        "name": p.name,
        "endpoint": p.endpoint,
        "role": p.role,
        "locality": locality,
        "state": p.state,
        "since": time_or_null(p.since_unix_ms),
        "lastHeartbeat": time_or_null(p.last_heartbeat_unix_ms),
        "imports": p.imports,
        "rootExpires": time_or_null(p.root_expires_unix_ms),
        "rootFingerprints": p.root_fingerprints,
        "trustDomain": p.trust_domain,
        "gatewayAddress": p.gateway_address,
        "draining": p.draining,
        "lastError": if p.last_error.is_empty() { Value::Null } else { Value::String(p.last_error.clone()) },
    })
}

fn ago(unix_ms: i64) -> String {
    if unix_ms == 0 {
        return "never".into();
    }
    let age = clock::age(unix_ms);
    if age.as_secs() < 100 {
        format!("{:.1}s ago", age.as_secs_f64())
    } else {
        clock::rfc3339_ms(unix_ms)
    }
}

/// The `fedctl peers` table.
pub(super) fn peers_table(peers: &[v1::PeerStatus]) -> String {
    if peers.is_empty() {
        return "no peers yet: run `fedctl token create` here and `fedctl join <token>` on another cluster\n".into();
    }
    let header = [
        "NAME",
        "ROLE",
        "STATE",
        "ENDPOINT",
        "LOCALITY",
        "SINCE",
        "HEARTBEAT",
        "IMPORTS",
    ];
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.role.clone(),
                if p.draining {
                    format!("{}, draining", p.state)
                } else {
                    p.state.clone()
                },
                p.endpoint.clone(),
                locality_text(p.locality.as_ref()),
                clock::rfc3339_ms(p.since_unix_ms),
                ago(p.last_heartbeat_unix_ms),
                p.imports.to_string(),
            ]
        })
        .collect();
    let mut text = table(&header, &rows);
    for p in peers
        .iter()
        .filter(|p| p.state != "connected" && !p.last_error.is_empty())
    {
        text.push_str(&format!("{}: {}\n", p.name, p.last_error));
    }
    text
}

/// One service in the `fedctl services -o json` shape.
pub(super) fn service_json(s: &v1::GlobalServiceStatus) -> Value {
    let text_or_null = |t: &str| {
        if t.is_empty() {
            Value::Null
        } else {
            Value::String(t.to_string())
        }
    };
    json!({
        "namespace": s.namespace,
        "name": s.name,
        "dnsName": s.dns_name,
        "vip": text_or_null(&s.vip),
        "ports": s.ports.iter().map(|p| json!({"name": p.name, "port": p.port, "protocol": port_protocol(p)})).collect::<Vec<_>>(),
        "clusters": s.clusters.iter().map(|c| json!({
            "name": c.name,
            "locality": c.locality.as_ref().map_or(Value::Null, |l| json!({"region": l.region, "zone": l.zone})),
            "healthyEndpoints": c.healthy_endpoints,
            "stale": c.stale,
            "pinnedVip": text_or_null(&c.pinned_vip),
            "exportedAt": time_or_null(c.exported_at_unix_ms),
            "local": c.local,
            "draining": c.draining,
        })).collect::<Vec<_>>(),
        "conflicts": s.conflicts,
        "affinity": affinity_name(s.affinity),
        "weights": s.effective_weights.iter().map(|w| (w.cluster.clone(), json!(w.weight))).collect::<serde_json::Map<_, _>>(),
        "exportTo": s.export_to.as_ref().map_or(Value::Null, |t| json!(t.peers)),
        "delivery": s.delivery.iter().map(|d| json!({"peer": d.peer, "state": d.state})).collect::<Vec<_>>(),
        "refused": s.refused.iter().map(|r| json!({"peer": r.peer, "reason": r.reason, "code": r.code})).collect::<Vec<_>>(),
        "routes": s.routes,
    })
}

/// The annotation form of an affinity: `local`, `remote` or `none`.
fn affinity_name(wire: i32) -> &'static str {
    match v1::Affinity::try_from(wire) {
        Ok(v1::Affinity::Remote) => "remote",
        Ok(v1::Affinity::None) => "none",
        // Unknown values decode as the default, as the table does.
        _ => "local",
    }
}

/// The `fedctl services` table.
pub(super) fn services_table(services: &[v1::GlobalServiceStatus]) -> String {
    if services.is_empty() {
        return "no global services: annotate a Service with fedmesh.io/export: \"true\" here or in a peer\n".into();
    }
    let header = [
        "NAMESPACE",
        "NAME",
        "VIP",
        "PORTS",
        "CLUSTERS (healthy endpoints)",
    ];
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let ports = s
                .ports
                .iter()
                .map(|p| {
                    let protocol = port_protocol(p);
                    if p.name.is_empty() {
                        format!("{}/{protocol}", p.port)
                    } else {
                        format!("{}:{}/{protocol}", p.name, p.port)
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            let clusters = s
                .clusters
                .iter()
                .map(|c| {
                    let mut t = format!("{}({}", c.name, c.healthy_endpoints);
                    if c.local {
                        t.push_str(", local");
                    }
                    if c.stale {
                        t.push_str(", stale");
                    }
                    if c.draining {
                        t.push_str(", draining");
                    }
                    t.push(')');
                    t
                })
                .collect::<Vec<_>>()
                .join(" ");
            // Only refused exports name it: nothing serves it here.
            let clusters = if clusters.is_empty() {
                "-".to_string()
            } else {
                clusters
            };
            let vip = if s.vip.is_empty() {
                "-".to_string()
            } else {
                s.vip.clone()
            };
            vec![s.namespace.clone(), s.name.clone(), vip, ports, clusters]
        })
        .collect();
    let mut text = table(&header, &rows);
    for s in services {
        for c in &s.conflicts {
            let line = format!("conflict {}/{}: {c}", s.namespace, s.name);
            text.push_str(&safe_text(&line));
            text.push('\n');
        }
        for r in &s.refused {
            let line = format!(
                "refused {}/{} from {}: {}",
                s.namespace, s.name, r.peer, r.reason
            );
            text.push_str(&safe_text(&line));
            text.push('\n');
        }
        if !s.routes.is_empty() {
            let line = format!("routes {}/{}: {}", s.namespace, s.name, s.routes.join(", "));
            text.push_str(&safe_text(&line));
            text.push('\n');
        }
        text.push_str(&split_line(s));
    }
    text
}

/// `split ns/name: east=70% west=30%` for a weighted service (what the
/// gateways do now), and the peers its export-to leaves out.
fn split_line(s: &v1::GlobalServiceStatus) -> String {
    let mut text = String::new();
    if !s.effective_weights.is_empty() {
        let split: Vec<String> = s
            .effective_weights
            .iter()
            .map(|w| format!("{}={}%", w.cluster, w.weight))
            .collect();
        text.push_str(&format!(
            "split {}/{}: {}\n",
            s.namespace,
            s.name,
            split.join(" ")
        ));
    }
    let excluded: Vec<&str> = s
        .delivery
        .iter()
        .filter(|d| d.state == "excluded")
        .map(|d| d.peer.as_str())
        .collect();
    if let Some(to) = &s.export_to {
        text.push_str(&format!(
            "export-to {}/{}: {} (excluded: {})\n",
            s.namespace,
            s.name,
            to.peers.join(","),
            if excluded.is_empty() {
                "none".to_string()
            } else {
                excluded.join(",")
            }
        ));
    }
    text
}

/// Left-aligned columns separated by two spaces; every cell made safe
/// ([`safe_text`]), so widths stay bounded and padding is by characters.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe_text(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let pad = w.saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_json_has_the_design_shape() {
        let p = v1::PeerStatus {
            name: "west".into(),
            endpoint: "127.0.2.1:15017".into(),
            role: "dialer".into(),
            locality: Some(v1::Locality {
                region: "us-west".into(),
                zone: "us-west-2a".into(),
            }),
            state: "connected".into(),
            since_unix_ms: 1_795_341_600_000,
            last_heartbeat_unix_ms: 0,
            imports: 3,
            root_expires_unix_ms: 1_795_341_600_000,
            ..Default::default()
        };
        let v = peer_json(&p);
        for key in [
            "name",
            "endpoint",
            "role",
            "locality",
            "state",
            "since",
            "lastHeartbeat",
            "imports",
            "rootExpires",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["locality"]["zone"], "us-west-2a");
        assert_eq!(v["since"], "2026-11-22T10:00:00Z");
        assert_eq!(v["lastHeartbeat"], Value::Null);
        assert_eq!(v["imports"], 3);
    }

    #[test]
    fn service_json_has_the_design_shape() {
        let s = v1::GlobalServiceStatus {
            namespace: "demo".into(),
            name: "hello".into(),
            dns_name: "hello.demo.svc.clusterset.local".into(),
            vip: "127.77.1.1".into(),
            ports: vec![
                v1::ServicePort {
                    name: "http".into(),
                    port: 8080,
                    protocol: "TCP".into(),
                    app_protocol: "http".into(),
                },
                v1::ServicePort {
                    name: "db".into(),
                    port: 5432,
                    protocol: "TCP".into(),
                    app_protocol: String::new(),
                },
            ],
            clusters: vec![v1::ClusterStatus {
                name: "east".into(),
                locality: Some(v1::Locality {
                    region: "us-east".into(),
                    zone: "us-east-1a".into(),
                }),
                healthy_endpoints: 1,
                stale: false,
                pinned_vip: "127.77.1.2".into(),
                exported_at_unix_ms: 1_795_341_600_000,
                ..Default::default()
            }],
            conflicts: vec![],
            ..Default::default()
        };
        let v = service_json(&s);
        for key in [
            "namespace",
            "name",
            "dnsName",
            "vip",
            "ports",
            "clusters",
            "conflicts",
            "affinity",
            "weights",
            "exportTo",
            "routes",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        // Unweighted and unrestricted (DESIGN.md, Operations).
        assert_eq!(
            (&v["affinity"], &v["weights"], &v["exportTo"]),
            (&json!("local"), &json!({}), &Value::Null)
        );
        assert_eq!(
            v["ports"][0],
            json!({"name": "http", "port": 8080, "protocol": "HTTP"})
        );
        assert_eq!(
            v["ports"][1],
            json!({"name": "db", "port": 5432, "protocol": "TCP"})
        );
        let c = &v["clusters"][0];
        for key in [
            "name",
            "locality",
            "healthyEndpoints",
            "stale",
            "pinnedVip",
            "exportedAt",
        ] {
            assert!(c.get(key).is_some(), "missing clusters[].{key}");
        }
        assert_eq!(c["exportedAt"], "2026-11-22T10:00:00Z");
        assert_eq!(c["pinnedVip"], "127.77.1.2");
        assert!(services_table(std::slice::from_ref(&s)).contains("east(1)"));
        assert_eq!(c["draining"], false);

        let mut drained = s;
        drained.clusters[0].draining = true;
        assert_eq!(service_json(&drained)["clusters"][0]["draining"], true);
        assert!(services_table(&[drained]).contains("east(1, draining)"));
    }

    #[test]
    fn a_draining_peer_is_shown_in_json_and_table() {
        let p = v1::PeerStatus {
            name: "east".into(),
            state: "connected".into(),
            draining: true,
            ..Default::default()
        };
        assert_eq!(peer_json(&p)["draining"], true);
        assert!(peers_table(&[p]).contains("connected, draining"));
    }

    #[test]
    fn routes_of_a_service_are_listed_in_json_and_the_table() {
        let s = v1::GlobalServiceStatus {
            namespace: "demo".into(),
            name: "hello".into(),
            routes: vec!["canary".into(), "retries".into()],
            ..Default::default()
        };
        assert_eq!(service_json(&s)["routes"], json!(["canary", "retries"]));
        let t = services_table(&[s]);
        assert!(t.contains("routes demo/hello: canary, retries"), "{t}");
        let none = service_json(&v1::GlobalServiceStatus::default());
        assert_eq!(none["routes"], json!([]));
    }

    #[test]
    fn refused_exports_are_listed_with_their_reason() {
        let s = v1::GlobalServiceStatus {
            namespace: "demo".into(),
            name: "secret".into(),
            refused: vec![v1::RefusedExport {
                peer: "eu".into(),
                reason: "imports allow namespace demo only from [east]".into(),
                code: "peer_not_allowed".into(),
            }],
            ..Default::default()
        };
        let v = service_json(&s);
        assert_eq!(
            v["refused"],
            json!([{"peer": "eu", "reason": "imports allow namespace demo only from [east]", "code": "peer_not_allowed"}])
        );
        let t = services_table(&[s]);
        assert!(
            t.contains(
                "refused demo/secret from eu: imports allow namespace demo only from [east]"
            ),
            "{t}"
        );
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn peer_text_is_escaped_and_cut_in_tables() {
        let huge = "p".repeat(65_536);
        let t = table(&["A", "B"], &[vec![huge, "red\u{1b}[31m\nnext".into()]]);
        assert!(!t.contains('\u{1b}'), "no raw escape: {t:?}");
        assert!(t.contains("red\\u{1b}[31m\\nnext"), "{t:?}");
        assert_eq!(t.lines().count(), 2, "no injected line: {t:?}");
        assert!(t.len() < 400, "the cell is cut: {} bytes", t.len());
        assert!(t.contains('…'));
        let aligned = table(&["N", "X"], &[vec!["é".into(), "1".into()]]);
        assert_eq!(aligned, "N  X\né  1\n", "padding counts characters");
    }
}
