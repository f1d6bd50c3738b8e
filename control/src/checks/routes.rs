//! `fedctl check` lines for HTTP routes: one `WARN` per problem of a
//! route or fault document (invalid, duplicate, naming a missing fault)
//! and per route bound to a Service this cluster does not know. Warnings
//! alone never fail the check: an invalid route is ignored and the valid
//! ones keep working (DESIGN.md, HTTP-aware services).

use fedmesh_proto::v1::CheckResult;

use crate::model::{LocalSnapshot, Problem};
use crate::table::TableSnapshot;

/// The route warnings of this cluster's registry view.
pub fn warnings(local: &LocalSnapshot, table: &TableSnapshot) -> Vec<CheckResult> {
    let unknown = local.routes.unknown_parents(|key| {
        local.services.contains_key(key) || table.services.contains_key(key)
    });
    local
        .routes
        .problems
        .iter()
        .chain(&unknown)
        .map(warn)
        .collect()
}

fn warn(p: &Problem) -> CheckResult {
    CheckResult {
        name: format!("route {}", p.source),
        ok: true,
        detail: p.message.clone(),
        warn: true,
    }
}
