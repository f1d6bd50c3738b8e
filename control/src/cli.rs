//! The `fedctl` command line (DESIGN.md, CLI contract): global flags
//! `--config`, `--admin`, `-o table|json` before or after the subcommand;
//! client commands find the admin API by `--admin`, else `FEDCTL_ADMIN`,
//! else `control.adminListen` from `--config`, else the default
//! `127.0.0.1:15000`.

mod ca;
mod client;
pub mod demo;
mod drain;
pub mod drill;
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
    /// Take this cluster out of rotation: peers and its own gateways send
    /// it new connections only when no other cluster can serve; open
    /// connections continue. Run against CLUSTER's own admin API.
    Drain {
        /// This cluster's name (a check that --admin is the right one).
        cluster: String,
    },
    /// Put a drained cluster back into rotation.
    Undrain {
        /// This cluster's name.
        cluster: String,
    },
    /// A failover drill: send new connections through a service's VIP,
    /// drain a cluster, undrain it; report failed connections, switch-over
    /// and return times. Non-zero exit if any connection failed.
    Drill(drill::DrillArgs),
    /// Show this fedctl's version and, when it answers, the control
    /// plane's.
    Version,
    /// Print a shell completion script (e.g. `source <(fedctl completion bash)`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
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
    // `run` reads its config first: its `log` section sets up the logs.
    let run_config = match &cli.command {
        Command::Run => match run_config(&cli) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("error: {}", fedmesh_proto::chain::chain_text(e.as_ref()));
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    // hickory logs every DNS request at info: keep it for debugging only.
    let default = match run_config {
        Some(_) => "info,hickory_server=warn,hickory_proto=warn",
        None => "warn",
    };
    if let Err(e) = fedmesh_gateway::logging::init(run_config.as_ref().map(|c| &c.log), default) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli, run_config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", fedmesh_proto::chain::chain_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The config `fedctl run` needs.
fn run_config(cli: &Cli) -> anyhow::Result<Config> {
    let path = cli.config.as_deref().ok_or_else(|| {
        anyhow!("`fedctl run` needs --config FILE (the cluster config, see docs/config.md)")
    })?;
    Ok(Config::load(path)?)
}

async fn dispatch(cli: Cli, run_config: Option<Config>) -> anyhow::Result<ExitCode> {
    if let Some(config) = run_config {
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
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "fedctl", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version => {
            let admin = admin_address(&cli)?;
            return drain::version(client::connect(&admin).await.ok(), cli.output).await;
        }
        _ => {}
    }
    let admin = admin_address(&cli)?;
    let mut client = client::connect(&admin).await?;
    match cli.command {
        Command::Run
        | Command::Demo { .. }
        | Command::DemoBackend { .. }
        | Command::Completion { .. }
        | Command::Version => {
            unreachable!("handled above")
        }
        Command::Drain { cluster } => drain::set(&mut client, &cluster, true, cli.output).await,
        Command::Undrain { cluster } => drain::set(&mut client, &cluster, false, cli.output).await,
        Command::Drill(args) => {
            let gateway = match &cli.config {
                Some(path) => Some(
                    Config::load(path)
                        .context("while reading --config to find gateway.adminListen")?
                        .gateway
                        .admin_listen,
                ),
                None => None,
            };
            drill::run(&mut client, args, gateway, cli.output).await
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
