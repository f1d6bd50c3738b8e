//! Rendering for `fedctl`: the fixed `-o json` shapes of DESIGN.md and
//! aligned tables for people.

use fedmesh_proto::v1;
use serde_json::{Value, json};

use crate::clock;

/// Prints pretty JSON on stdout.
pub(super) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// `region/zone`.
pub(super) fn locality_text(l: Option<&v1::Locality>) -> String {
    l.map_or_else(|| "-".into(), |l| format!("{}/{}", l.region, l.zone))
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
        "trustDomain": p.trust_domain,
        "gatewayAddress": p.gateway_address,
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
                p.state.clone(),
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

/// Left-aligned columns separated by two spaces.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
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
    fn tables_align_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
