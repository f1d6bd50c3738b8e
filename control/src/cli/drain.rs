//! `fedctl drain`, `fedctl undrain` and `fedctl version`: one admin call
//! each.

use std::process::ExitCode;

use anyhow::anyhow;
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use tonic::transport::Channel;

use super::Output;
use super::output;
use crate::clock;

/// Drains (`draining`) or undrains `cluster`, which must be the cluster
/// whose admin API `client` talks to.
pub(super) async fn set(
    client: &mut AdminClient<Channel>,
    cluster: &str,
    draining: bool,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .set_draining(v1::SetDrainingRequest {
            draining,
            cluster: cluster.to_string(),
        })
        .await
        .map_err(|e| anyhow!("{}", e.message()))?
        .into_inner();
    match out {
        Output::Json => output::print_json(&serde_json::json!({
            "cluster": r.cluster,
            "draining": r.draining,
            "changed": r.changed,
            "since": clock::rfc3339_ms(r.since_unix_ms),
        })),
        Output::Table => println!("{}", summary(&r)),
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(r: &v1::SetDrainingResponse) -> String {
    let c = &r.cluster;
    match (r.draining, r.changed) {
        (true, true) => format!(
            "{c} drained: its peers and its own gateways send it new connections only when no other cluster can serve; open connections continue. `fedctl undrain {c}` puts it back."
        ),
        (true, false) => format!(
            "{c} was drained already (since {}).",
            clock::rfc3339_ms(r.since_unix_ms)
        ),
        (false, true) => format!("{c} undrained: it gets new connections again."),
        (false, false) => format!("{c} was not drained."),
    }
}

/// Prints this client's release and, when the admin API answers, the
/// control plane's.
pub(super) async fn version(
    client: Option<AdminClient<Channel>>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let mine = env!("CARGO_PKG_VERSION");
    let server = match client {
        Some(mut c) => c
            .get_version(v1::GetVersionRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|e| e.message().to_string()),
        None => Err("no admin API answered".to_string()),
    };
    match out {
        Output::Json => {
            let server = server
                .as_ref()
                .ok()
                .map(|s| serde_json::json!({"version": s.version, "cluster": s.cluster}));
            output::print_json(&serde_json::json!({"client": mine, "server": server}));
        }
        Output::Table => {
            println!("client  fedctl {mine}");
            match &server {
                Ok(s) => println!("server  fedctl {} (cluster {})", s.version, s.cluster),
                Err(why) => println!("server  unknown ({why})"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_changed_and_how_to_undo_it() {
        let mut r = v1::SetDrainingResponse {
            cluster: "east".into(),
            draining: true,
            changed: true,
            since_unix_ms: 1_795_341_600_000,
        };
        assert!(summary(&r).contains("fedctl undrain east"));
        r.changed = false;
        assert!(summary(&r).contains("drained already (since 2026-11-22T10:00:00Z)"));
        r.draining = false;
        assert_eq!(summary(&r), "east was not drained.");
    }
}
