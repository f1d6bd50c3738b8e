//! `fedctl check`: health checks of this cluster and its peerings, each a
//! named pass/fail line with a reason and, on failure, what to do. The
//! control plane's own state is checked here; the data plane (gateways,
//! peers' gateways as probed, export conflicts) in [`dataplane`]; route
//! warnings in [`routes`].

use std::time::Duration;

use fedmesh_proto::v1::CheckResult;
use time::OffsetDateTime;

use crate::clock;

pub mod dataplane;
pub mod routes;
use crate::context::Control;
use crate::peering::LinkState;
use fedmesh_proto::token::BootstrapToken;

/// A CA closer than this to its end fails the check: time to rotate.
const CA_WARN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs every check.
pub fn run(ctl: &Control) -> Vec<CheckResult> {
    let now = OffsetDateTime::now_utc();
    let mut out = vec![
        check_ca(ctl, now),
        check_leaf(ctl, now),
        check_bootstrap(ctl),
        check_store(ctl),
    ];
    out.extend(check_rotation(ctl));
    out.extend(check_registry(ctl));
    out.extend(check_peers(ctl));
    let now_ms = clock::now_unix_ms();
    let gateway = &ctl.config.gateway.name;
    let views = ctl.gateways.views(gateway, now_ms);
    out.extend(dataplane::gateways(gateway, &views, now_ms));
    let peers: Vec<String> = ctl
        .peers
        .views()
        .into_iter()
        .map(|v| v.record.name)
        .collect();
    out.extend(dataplane::peer_gateways(&peers, &views, now_ms));
    out.extend(dataplane::conflicts(&ctl.table.borrow()));
    out.extend(routes::warnings(&ctl.local.borrow(), &ctl.table.borrow()));
    out
}

fn result(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok,
        detail: detail.into(),
        warn: false,
    }
}

fn until(t: OffsetDateTime) -> String {
    clock::rfc3339_ms(clock::datetime_unix_ms(t))
}

/// The state store: a failed write (disk full, read-only dataDir) fails
/// the check until a write commits again.
fn check_store(ctl: &Control) -> CheckResult {
    match ctl.store.write_failure() {
        None => result("store", true, ctl.store.path().display().to_string()),
        Some(cause) => result(
            "store",
            false,
            format!("store: write failed: {cause}; free space in dataDir"),
        ),
    }
}

fn check_ca(ctl: &Control, now: OffsetDateTime) -> CheckResult {
    let end = ctl.rotation.signer().not_after();
    if end <= now {
        result(
            "ca",
            false,
            format!(
                "the cluster CA expired at {}; replace it (ca.certFile/ca.keyFile) and re-join peers",
                until(end)
            ),
        )
    } else if end - now < CA_WARN {
        result(
            "ca",
            false,
            format!(
                "the cluster CA expires at {}, in under 30 days; rotate it",
                until(end)
            ),
        )
    } else {
        result("ca", true, format!("valid until {}", until(end)))
    }
}

fn check_leaf(ctl: &Control, now: OffsetDateTime) -> CheckResult {
    let end = ctl.cert.not_after();
    if end <= now {
        result(
            "control certificate",
            false,
            format!(
                "expired at {}; renewal failed, see the control plane log",
                until(end)
            ),
        )
    } else {
        result(
            "control certificate",
            true,
            format!(
                "valid until {} (renewed at two-thirds of its life)",
                until(end)
            ),
        )
    }
}

/// A CA rotation under way is shown (as a warning: two roots published
/// is safe, but one left half-done for long deserves a look).
fn check_rotation(ctl: &Control) -> Option<CheckResult> {
    if !ctl.rotation.view().phase.rotating() {
        return None;
    }
    let record = ctl.rotation.record()?;
    Some(CheckResult {
        name: "ca rotation".into(),
        ok: true,
        warn: true,
        detail: format!(
            "in phase {} since {}{}; `fedctl ca status` shows what it waits for",
            record.phase.as_str(),
            clock::rfc3339_ms(record.started_unix_ms),
            if record.auto { " (auto)" } else { "" },
        ),
    })
}

fn check_bootstrap(ctl: &Control) -> CheckResult {
    let path = &ctl.config.gateway.bootstrap_token_file;
    let name = "gateway bootstrap token";
    match std::fs::read_to_string(path) {
        Ok(text) => match BootstrapToken::decode(&text) {
            // The pin follows the signing root (CA rotation); the secret stays.
            Ok(t) if t.secret == ctl.bootstrap.secret && t.pin == ctl.rotation.signer().pin() => {
                result(name, true, format!("{}", path.display()))
            }
            Ok(_) => result(
                name,
                false,
                format!(
                    "{} holds another token than the one in use; restart `fedctl run` to rewrite it",
                    path.display()
                ),
            ),
            Err(e) => result(name, false, format!("{}: {e}", path.display())),
        },
        Err(e) => result(
            name,
            false,
            format!(
                "cannot read {}: {e}; restart `fedctl run` to rewrite it",
                path.display()
            ),
        ),
    }
}

/// One line for the registry, then one failing line per problem (a bad
/// manifest, a bad annotation, an unsupported port).
fn check_registry(ctl: &Control) -> Vec<CheckResult> {
    let local = ctl.local.borrow().clone();
    let exported = local
        .services
        .values()
        .filter(|s| s.export.is_some())
        .count();
    let pending = local.pending.then(|| {
        result(
            "registry",
            false,
            "not read yet: services are unknown until the registry's first full read (problems below)",
        )
    });
    let mut out = vec![pending.unwrap_or_else(|| {
        result(
            "registry",
            local.problems.is_empty(),
            format!(
                "{} services, {exported} exported{}",
                local.services.len(),
                if local.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {} problem(s) below", local.problems.len())
                }
            ),
        )
    })];
    out.extend(
        local
            .problems
            .iter()
            .map(|p| result(format!("registry {}", p.source), false, p.message.clone())),
    );
    out
}

fn check_peers(ctl: &Control) -> Vec<CheckResult> {
    let dead_after = ctl.config.control.peer_dead_after;
    ctl.peers
        .views()
        .into_iter()
        .map(|v| {
            let name = format!("peer {}", v.record.name);
            let since = clock::rfc3339_ms(v.since_ms);
            let error = v.last_error.clone().unwrap_or_else(|| "no error recorded".into());
            match v.state {
                LinkState::Connected => match v.last_heard_ms.map(clock::age) {
                    Some(age) if age <= dead_after => result(name, true, format!("connected since {since}, heard {} ms ago", age.as_millis())),
                    Some(age) => result(name, false, format!("connected but silent for {} ms (peerDeadAfter {} ms)", age.as_millis(), dead_after.as_millis())),
                    None => result(name, false, "connected but never heard"),
                },
                LinkState::Stale => result(name, false, format!("stale since {since}: {error}; check that {} is running and reachable at {}", v.record.name, v.record.endpoint)),
                LinkState::Disconnected => result(name, false, format!("disconnected since {since}: {error}; check that {} is running and reachable", v.record.name)),
            }
        })
        .collect()
}
