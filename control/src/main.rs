//! `fedctl`: runs a fedmesh control plane (`fedctl run`) and talks to it
//! (`token create`, `join`, `leave`, `peers`, `check`). See `fedctl --help`
//! and `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Only ring is compiled in; installing it explicitly keeps a dependency
    // that enables another provider from making rustls panic at first use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = fedmesh_control::cli::Cli::parse();
    fedmesh_control::cli::main(cli)
}
