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

pub(super) async fn check(
    client: &mut AdminClient<Channel>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let r = client
        .check(v1::CheckRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let failed = r.results.iter().filter(|c| !c.ok).count();
    match out {
        Output::Json => output::print_json(&serde_json::Value::Array(
            r.results
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "ok": c.ok, "detail": c.detail}))
                .collect(),
        )),
        Output::Table => {
            for c in &r.results {
                println!(
                    "{:<4} {}: {}",
                    if c.ok { "ok" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            if failed > 0 {
                eprintln!("{failed} check(s) failed");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests;
