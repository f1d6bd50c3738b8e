//! The `fedctl` command line (DESIGN.md, CLI contract): global flags
//! `--config`, `--admin`, `-o table|json` before or after the subcommand;
//! client commands find the admin API by `--admin`, else `FEDCTL_ADMIN`,
//! else `control.adminListen` from `--config`, else the default
//! `127.0.0.1:15000`.

mod ca;
mod client;
pub mod demo;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use fedmesh_proto::config::{AdminListen, Config, parse_duration};

/// fedmesh: link clusters into one federation with `fedctl join`.
#[derive(Debug, Parser)]
#[command(name = "fedctl", version, long_about = None)]
pub struct Cli {
    /// Cluster config file (YAML); `run` requires it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Admin API of the control plane to talk to (IP:PORT or unix:PATH).
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        env = "FEDCTL_ADMIN",
        hide_env_values = true
    )]
    pub admin: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Table,
    /// JSON for scripts (the shapes are in docs/cli.md).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (peering, export sync, DNS, admin and gateway
    /// APIs, and the gateway with `gateway.embedded`) until SIGTERM or Ctrl-C.
    Run,
    /// Manage join tokens.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Join the cluster that issued TOKEN; blocks until it answers.
    Join {
        /// A token printed by `fedctl token create` on the other cluster.
        token: String,
    },
    /// End the peering with PEER (on both sides when it can be told).
    Leave {
        /// The peer's cluster name.
        peer: String,
    },
    /// List this cluster's peers and their link state.
    Peers,
    /// List global services as this cluster sees them.
    Services,
    /// Check this cluster's certificates, peerings and data plane
    /// (gateways, peers' gateways as probed); non-zero exit on failure.
    /// WARN lines (export conflicts) alone do not fail it.
    Check {
        /// Retry until every check passes or this much time is up (e.g.
        /// 30s), printing progress; for scripts waiting on a restart.
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
    },
    /// Rotate this cluster's CA root by overlap, or show the rotation.
    Ca {
        /// What to do.
        #[command(subcommand)]
        command: ca::CaCommand,
    },
    /// The quickstart: three clusters on this host, joined, a service
    /// exported in two, DNS answered, traffic sent, a failover shown.
    Demo {
        /// Leave the federation running at the end and print how to explore it.
        #[arg(long)]
        keep: bool,
    },
    /// The demo's HTTP backend (started by `fedctl demo`).
    #[command(hide = true)]
    DemoBackend {
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Cluster name to answer with.
        #[arg(long)]
        name: String,
    },
}

/// `fedctl token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a single-use join token for another cluster.
    Create {
        /// How long the token stays valid (e.g. 10m, 1h, 24h; at most 30 days).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("the ttl must be at least 1s".into());
    }
    Ok(d)
}

/// Runs the parsed command line and returns the process exit code. Errors
/// are printed as `error: …` with the whole cause.
pub fn main(cli: Cli) -> ExitCode {
    let verbose = matches!(cli.command, Command::Run);
    init_tracing(verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Run = cli.command {
        let path = cli.config.as_deref().ok_or_else(|| {
            anyhow!("`fedctl run` needs --config FILE (the cluster config, see docs/config.md)")
        })?;
        let config = Config::load(path)?;
        crate::daemon::run(config).await?;
        return Ok(ExitCode::SUCCESS);
    }
    match cli.command {
        Command::Demo { keep } => {
            demo::run(keep).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::DemoBackend { listen, name } => {
            demo::backend::serve(listen, name).await?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let admin = admin_address(&cli)?;
    let mut client = client::connect(&admin).await?;
    match cli.command {
        Command::Run | Command::Demo { .. } | Command::DemoBackend { .. } => {
            unreachable!("handled above")
        }
        Command::Token {
            command: TokenCommand::Create { ttl },
        } => client::token_create(&mut client, ttl, cli.output).await,
        Command::Join { token } => client::join(&mut client, &token, cli.output).await,
        Command::Leave { peer } => client::leave(&mut client, &peer, cli.output).await,
        Command::Peers => client::peers(&mut client, cli.output).await,
        Command::Services => client::services(&mut client, cli.output).await,
        Command::Check { wait } => client::check(&mut client, wait, cli.output).await,
        Command::Ca { command } => ca::run(&mut client, command, cli.output).await,
    }
}

/// Where the admin API is: `--admin` (or `FEDCTL_ADMIN`), else the config's
/// `control.adminListen`, else the default.
fn admin_address(cli: &Cli) -> anyhow::Result<AdminListen> {
    if let Some(text) = &cli.admin {
        return AdminListen::parse(text).map_err(|e| anyhow!("--admin {text:?}: {e}"));
    }
    if let Some(path) = &cli.config {
        let config =
            Config::load(path).context("while reading --config to find control.adminListen")?;
        return Ok(config.control.admin_listen);
    }
    AdminListen::parse("127.0.0.1:15000").map_err(|e| anyhow!(e))
}

fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    // hickory logs every DNS request at info: keep it for debugging only.
    let default = if verbose {
        "info,hickory_server=warn,hickory_proto=warn"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("FEDMESH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
