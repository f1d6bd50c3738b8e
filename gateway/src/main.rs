//! `fedgw --config FILE`: runs an east-west gateway from the cluster's
//! config file (its `gateway` section, `control.gatewayListen`, and the
//! bootstrap token file).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fedmesh_proto::config::Config;

/// fedmesh east-west gateway.
#[derive(Debug, Parser)]
#[command(name = "fedgw", version, about)]
struct Args {
    /// The cluster config file (the same one `fedctl run` reads).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // FEDMESH_LOG, then RUST_LOG, then log.level; log.format.
    if let Err(e) = fedmesh_gateway::logging::init(Some(&config.log), "info") {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    raise_open_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fedmesh_gateway::gateway::run(&config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", fedmesh_proto::chain::chain_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// One listener per VIP and port: raise the soft open-file limit to the
/// hard limit (DESIGN.md, DNS: VIPs).
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
