//! The data-plane checks of `fedctl check` (DESIGN.md, Wave 2 contract →
//! Operations): this cluster's gateways, each peer's gateways as this
//! cluster's gateways probe them, and export conflicts as warnings.
//!
//! Pure functions over [`GatewayView`]s (what the gateway API recorded)
//! and the time now, so every rule has a unit test. The rules:
//! - a gateway **serves** when its snapshot stream is open and its last
//!   status, newer than [`STATUS_STALE_MS`], says ready;
//! - the cluster passes when at least one gateway serves; every gateway
//!   known to be down (and the one the config names, if unseen) fails by
//!   name;
//! - a certificate past its end, or with under [`CERT_MIN_LEFT_MS`] left
//!   (renewal is due at two-thirds of its life), fails;
//! - a peer passes when a serving gateway probes one of its gateways up,
//!   or when no gateway probes it (nothing is imported from it).

use fedmesh_proto::v1::CheckResult;

use crate::api::gateways::GatewayView;
use crate::clock;
use crate::table::TableSnapshot;

/// A status older than this is no evidence: gateways report at least
/// every 2 s, so three reports were missed.
pub const STATUS_STALE_MS: i64 = 6_000;

/// Less validity left than this fails: renewal was due long before (at
/// two-thirds of a 24 h life, 8 h before the end).
pub const CERT_MIN_LEFT_MS: i64 = 3_600_000;

/// A check line.
fn line(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok,
        detail: detail.into(),
        warn: false,
    }
}

/// The gateway's fresh status, if it serves now.
fn serving(g: &GatewayView, now_ms: i64) -> Option<&fedmesh_proto::v1::GatewayStatus> {
    let (status, at) = g.status.as_ref()?;
    (g.watches > 0 && g.reporting && now_ms - at <= STATUS_STALE_MS && status.ready)
        .then_some(status)
}

/// Why a gateway does not serve, or `None` when it does.
fn down_reason(g: &GatewayView, now_ms: i64) -> Option<String> {
    let seen = clock::rfc3339_ms(g.last_seen_ms);
    if g.watches == 0 {
        return Some(format!(
            "not connected to the control plane (no snapshot stream since {seen}); check that its fedgw is running and can reach control.gatewayListen"
        ));
    }
    match &g.status {
        _ if !g.reporting => Some(format!(
            "connected but its status stream closed at {seen}; a gateway of an earlier release does not report: upgrade it"
        )),
        None => Some("connected but has not reported its status yet".into()),
        Some((_, at)) if now_ms - at > STATUS_STALE_MS => Some(format!(
            "connected but silent for {} ms (it reports every 2 s); see its log",
            now_ms - at
        )),
        Some((s, _)) if !s.ready => Some("connected but not ready (its /ready fails)".into()),
        Some(_) => None,
    }
}

fn cert_problem(g: &GatewayView, now_ms: i64) -> Option<String> {
    let end = g.cert_not_after_ms;
    let at = clock::rfc3339_ms(end);
    if end == 0 {
        None
    } else if end <= now_ms {
        Some(format!(
            "its certificate expired at {at}; restart its fedgw to get a new one"
        ))
    } else if end - now_ms < CERT_MIN_LEFT_MS {
        Some(format!(
            "its certificate expires at {at}, in under an hour, and was not renewed; see its log"
        ))
    } else {
        None
    }
}

/// One line per gateway, then a `gateways` summary line. `expected` is
/// the gateway the config names: it fails by name even before it ever
/// connected.
pub fn gateways(expected: &str, views: &[GatewayView], now_ms: i64) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let mut up = 0usize;
    if !expected.is_empty() && !views.iter().any(|g| g.name == expected) {
        out.push(line(
            format!("gateway {expected}"),
            false,
            "never connected to this control plane since it started; check that its fedgw (or gateway.embedded) is running",
        ));
    }
    for g in views {
        let name = format!("gateway {}", g.name);
        let problem = down_reason(g, now_ms).or_else(|| cert_problem(g, now_ms));
        match problem {
            Some(why) => out.push(line(name, false, why)),
            None => {
                up += 1;
                let version = serving(g, now_ms).map_or(0, |s| s.snapshot_version);
                out.push(line(
                    name,
                    true,
                    format!(
                        "connected and ready, snapshot {version}, certificate valid until {}",
                        clock::rfc3339_ms(g.cert_not_after_ms)
                    ),
                ));
            }
        }
    }
    let summary = if up == 0 {
        line(
            "gateways",
            false,
            "no gateway of this cluster is connected and ready: its clients' connections to global services fail",
        )
    } else {
        line("gateways", true, format!("{up} of {} serving", views.len()))
    };
    out.insert(0, summary);
    out
}

/// One line per peer that this cluster's serving gateways probe: passes
/// when any probes one of its gateways up.
pub fn peer_gateways(peers: &[String], views: &[GatewayView], now_ms: i64) -> Vec<CheckResult> {
    peers
        .iter()
        .map(|peer| {
            let name = format!("peer {peer} gateways");
            let probes: Vec<(&str, &fedmesh_proto::v1::PeerGatewayProbe)> = views
                .iter()
                .filter_map(|g| serving(g, now_ms).map(|s| (g.name.as_str(), s)))
                .flat_map(|(gw, s)| s.probes.iter().map(move |p| (gw, p)))
                .filter(|(_, p)| &p.cluster == peer)
                .collect();
            match probes.iter().find(|(_, p)| p.up) {
                Some((gw, p)) => line(name, true, format!("{} up as {gw} probes it", p.address)),
                None if probes.is_empty() => line(
                    name,
                    true,
                    "not probed: no service is imported from it (or no gateway here serves)",
                ),
                None => {
                    let seen: Vec<String> = probes
                        .iter()
                        .map(|(gw, p)| format!("{} down as {gw} probes it", p.address))
                        .collect();
                    line(
                        name,
                        false,
                        format!(
                            "{}; traffic fails over to other clusters; check {peer}'s gateways and the network between",
                            seen.join(", ")
                        ),
                    )
                }
            }
        })
        .collect()
}

/// A `WARN` line per service with conflicting exports: shown, not failing.
pub fn conflicts(table: &TableSnapshot) -> Vec<CheckResult> {
    table
        .services
        .values()
        .filter(|s| !s.conflicts.is_empty())
        .map(|s| CheckResult {
            name: format!("service {}/{}", s.key.namespace, s.key.name),
            ok: true,
            detail: s.conflicts.join("; "),
            warn: true,
        })
        .collect()
}

#[cfg(test)]
mod tests;
