//! Client commands: each calls the admin API once and prints the answer.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use fedmesh_proto::config::AdminListen;
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::Output;
use super::output;
use crate::clock;

/// Largest admin answer the CLI accepts: `fedctl services` in a federation
/// of tens of thousands of services is more than tonic's 4 MiB default.
use crate::api::admin::MAX_ADMIN_MESSAGE;

/// Connects to the admin API.
///
/// # Errors
/// When nothing answers there, with what to check.
pub(super) async fn connect(admin: &AdminListen) -> anyhow::Result<AdminClient<Channel>> {
    let hint = || {
        format!(
            "cannot reach the control plane's admin API at {admin}; is `fedctl run` running? (find it with --admin ADDR, FEDCTL_ADMIN, or --config FILE)"
        )
    };
    let channel = match admin {
        AdminListen::Tcp(addr) => Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .with_context(hint)?,
        AdminListen::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://admin.fedmesh")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
                .with_context(hint)?
        }
    };
    Ok(AdminClient::new(channel).max_decoding_message_size(MAX_ADMIN_MESSAGE))
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow!("{}", e.message())
}

pub(super) async fn token_create(
    client: &mut AdminClient<Channel>,
    ttl: Duration,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .create_token(v1::CreateTokenRequest {
            ttl_seconds: ttl.as_secs(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let expires = clock::rfc3339_ms(r.expires_unix_ms);
    match out {
        Output::Json => {
            output::print_json(&serde_json::json!({"token": r.token, "expires": expires}))
        }
        Output::Table => {
            println!("{}", r.token);
            eprintln!(
                "single-use; expires at {expires}. On the other cluster run: fedctl join <token>"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn join(
    client: &mut AdminClient<Channel>,
    token: &str,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .join_peer(v1::JoinPeerRequest {
            token: token.to_string(),
        })
        .await
        .map_err(|e| anyhow!("join failed: {}", e.message()))?
        .into_inner();
    let peer = r
        .peer
        .ok_or_else(|| anyhow!("the control plane answered without a peer"))?;
    match out {
        Output::Json => output::print_json(&output::peer_json(&peer)),
        Output::Table => println!(
            "joined {} ({}); this cluster dials it at {}. `fedctl peers` shows the link.",
            peer.name,
            output::locality_text(peer.locality.as_ref()),
            peer.endpoint
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn leave(
    client: &mut AdminClient<Channel>,
    peer: &str,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .leave_peer(v1::LeavePeerRequest {
            peer: peer.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    match out {
        Output::Json => output::print_json(&serde_json::json!({
            "peer": peer, "remoteNotified": r.remote_notified, "detail": r.detail,
        })),
        Output::Table => println!("{}", r.detail),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn peers(
    client: &mut AdminClient<Channel>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .list_peers(v1::ListPeersRequest {})
        .await
        .map_err(status)?
        .into_inner();
    match out {
        Output::Json => output::print_json(&serde_json::Value::Array(
            r.peers.iter().map(output::peer_json).collect(),
        )),
        Output::Table => print!("{}", output::peers_table(&r.peers)),
    }
    if r.self_draining {
        eprintln!(
            "this cluster is drained: peers use it only when no other cluster can serve (`fedctl undrain` puts it back)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn services(
    client: &mut AdminClient<Channel>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .list_services(v1::ListServicesRequest {})
        .await
        .map_err(status)?
        .into_inner();
    match out {
        Output::Json => output::print_json(&serde_json::Value::Array(
            r.services.iter().map(output::service_json).collect(),
        )),
        Output::Table => print!("{}", output::services_table(&r.services)),
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `fedctl check --wait` asks again.
const CHECK_RETRY: Duration = Duration::from_secs(1);

pub(super) async fn check(
    client: &mut AdminClient<Channel>,
    wait: Option<Duration>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    // Bounded by the deadline: every pass sleeps, and the last one breaks.
    let mut attempt = 1u32;
    let r = loop {
        let answer = client.check(v1::CheckRequest {}).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let why = match &answer {
            Ok(r) => failing_names(&r.get_ref().results),
            Err(s) => Some(format!("the control plane did not answer: {}", s.message())),
        };
        match why {
            Some(why) if wait.is_some() && !left.is_zero() => {
                eprintln!(
                    "check {attempt}: {why}; retrying for {}s more",
                    left.as_secs()
                );
                tokio::time::sleep(CHECK_RETRY.min(left)).await;
                attempt += 1;
            }
            _ => break answer.map_err(status)?.into_inner(),
        }
    };
    print_checks(&r.results, out);
    Ok(if failing_names(&r.results).is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `None` when every check passes, else the failing ones' names.
fn failing_names(results: &[v1::CheckResult]) -> Option<String> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    (!failed.is_empty()).then(|| format!("{} failing ({})", failed.len(), failed.join(", ")))
}

fn print_checks(results: &[v1::CheckResult], out: Output) {
    match out {
        Output::Json => output::print_json(&serde_json::Value::Array(
            results
                .iter()
                .map(|c| {
                    serde_json::json!({"name": c.name, "ok": c.ok, "warn": c.warn, "detail": c.detail})
                })
                .collect(),
        )),
        Output::Table => {
            for c in results {
                let label = match (c.ok, c.warn) {
                    (false, _) => "FAIL",
                    (true, true) => "WARN",
                    (true, false) => "ok",
                };
                println!("{label:<4} {}: {}", c.name, c.detail);
            }
            if let Some(why) = failing_names(results) {
                eprintln!("{why}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
