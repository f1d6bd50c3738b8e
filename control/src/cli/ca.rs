//! `fedctl ca rotate [--auto|--finish] [--force]` and `fedctl ca status`
//! (DESIGN.md, Operations): ask the control plane to take a rotation step
//! and print where the rotation stands. The rules live in the control
//! plane (`ca/rotation.rs`); this file only speaks and prints.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::{Output, output};
use crate::clock;

/// `fedctl ca …`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Start a root rotation by overlap: a new root is made and sent to
    /// every peer; once all acknowledge it, leaves are reissued from it.
    Rotate {
        /// Also reissue and drop the old root by itself as soon as it is safe.
        #[arg(long, conflicts_with = "finish")]
        auto: bool,
        /// Drop the old root now (refused until every peer acknowledged the
        /// new one and every gateway serves a leaf of it).
        #[arg(long)]
        finish: bool,
        /// Do not wait for peers' acknowledgements: the new root signs at
        /// once. For peers of an earlier release, which never acknowledge;
        /// make sure they hold the new root first (`fedctl peers`).
        #[arg(long, conflicts_with = "finish")]
        force: bool,
    },
    /// Show the rotation phase, the roots, peers' acknowledgements and
    /// which gateways still serve a leaf of the old root.
    Status,
}

/// Runs a `fedctl ca` command.
///
/// # Errors
/// When the control plane cannot be reached or refuses the step (the
/// message says why and what to do).
pub(super) async fn run(
    client: &mut AdminClient<Channel>,
    command: CaCommand,
    out: Output,
) -> anyhow::Result<ExitCode> {
    match command {
        CaCommand::Rotate {
            auto,
            finish,
            force,
        } => {
            let step = if finish { "finish" } else { "start" };
            let r = client
                .ca_rotate(v1::CaRotateRequest {
                    step: step.into(),
                    auto,
                    force,
                })
                .await
                .map_err(|e| anyhow!("ca rotate refused: {}", e.message()))?
                .into_inner();
            let status = r.status.unwrap_or_default();
            match out {
                Output::Json => output::print_json(&json!({
                    "detail": r.detail, "status": status_json(&status),
                })),
                Output::Table => println!("{}\n\n{}", r.detail, status_text(&status)),
            }
        }
        CaCommand::Status => {
            let status = client
                .ca_status(v1::CaStatusRequest {})
                .await
                .map_err(|e| anyhow!("ca status failed: {}", e.message()))?
                .into_inner();
            match out {
                Output::Json => output::print_json(&status_json(&status)),
                Output::Table => println!("{}", status_text(&status)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `fedctl ca status -o json` (docs/cli.md).
pub(super) fn status_json(s: &v1::CaStatusResponse) -> Value {
    json!({
        "phase": s.phase,
        "auto": s.auto,
        "force": s.force,
        "external": s.external,
        "waitingFor": (!s.waiting_for.is_empty()).then_some(&s.waiting_for),
        "roots": s.roots.iter().map(|r| json!({
            "fingerprint": r.fingerprint,
            "subject": r.subject,
            "notAfter": clock::rfc3339_ms(r.not_after_unix_ms),
            "signer": r.signer,
            "certPem": r.cert_pem,
        })).collect::<Vec<_>>(),
        "peers": s.peers.iter().map(|p| json!({"peer": p.peer, "acked": p.acked})).collect::<Vec<_>>(),
        "gateways": s.gateways.iter().map(|g| json!({
            "gateway": g.gateway,
            "issuerFingerprint": g.issuer_fingerprint,
            "current": g.current,
        })).collect::<Vec<_>>(),
    })
}

fn status_text(s: &v1::CaStatusResponse) -> String {
    let mut text = format!("phase: {}", s.phase);
    if s.auto {
        text.push_str(" (auto)");
    }
    if s.external {
        text.push_str("\nthe CA comes from ca.certFile/ca.keyFile: fedctl does not rotate it");
    }
    let roots: Vec<Vec<String>> = s
        .roots
        .iter()
        .map(|r| {
            vec![
                r.fingerprint.chars().take(16).collect(),
                r.subject.clone(),
                clock::rfc3339_ms(r.not_after_unix_ms),
                if r.signer { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    text.push_str("\n\n");
    text.push_str(&output::table(
        &["ROOT", "SUBJECT", "EXPIRES", "SIGNS"],
        &roots,
    ));
    if !s.peers.is_empty() {
        let peers: Vec<Vec<String>> = s
            .peers
            .iter()
            .map(|p| vec![p.peer.clone(), yes_no(p.acked)])
            .collect();
        text.push_str("\n\n");
        text.push_str(&output::table(&["PEER", "ACKED"], &peers));
    }
    if !s.gateways.is_empty() {
        let gateways: Vec<Vec<String>> = s
            .gateways
            .iter()
            .map(|g| {
                let root = g.issuer_fingerprint.chars().take(16).collect::<String>();
                vec![g.gateway.clone(), root, yes_no(g.current)]
            })
            .collect();
        text.push_str("\n\n");
        text.push_str(&output::table(
            &["GATEWAY", "LEAF ROOT", "FROM SIGNER"],
            &gateways,
        ));
    }
    if !s.waiting_for.is_empty() {
        text.push_str(&format!("\n\nwaiting: {}", s.waiting_for));
    }
    text
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_names_the_phase_roots_and_who_is_behind() {
        let s = v1::CaStatusResponse {
            phase: "overlap".into(),
            roots: vec![v1::CaRoot {
                fingerprint: "ab".into(),
                signer: true,
                ..Default::default()
            }],
            peers: vec![v1::CaPeerAck {
                peer: "west".into(),
                acked: false,
            }],
            waiting_for: "peers [\"west\"]".into(),
            ..Default::default()
        };
        let j = status_json(&s);
        assert_eq!(j["phase"], "overlap");
        assert_eq!(j["roots"][0]["signer"], true);
        assert_eq!(j["peers"][0]["acked"], false);
        let text = status_text(&s);
        assert!(text.contains("west") && text.contains("waiting"), "{text}");
    }
}
