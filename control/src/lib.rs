//! The fedmesh control plane and the `fedctl` command.
//!
//! One control plane runs per cluster (`fedctl run`). It owns the cluster's
//! CA ([`ca`]) and state ([`store`]), links the cluster with its peers
//! ([`peering`]: join handshake, one mTLS sync stream per peering with
//! heartbeats), serves the admin API for `fedctl` ([`admin`]) and the gateway
//! API for `fedgw` ([`gatewayapi`]). [`daemon`] wires these together; [`cli`]
//! is the command line.
//!
//! Where to start reading: `daemon::run`, then `peering.rs`.

pub mod admin;
pub mod ca;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod context;
pub mod daemon;
pub mod demo;
pub mod dnsfeed;
pub mod exports;
pub mod gatewayapi;
pub mod import_services;
pub mod model;
pub mod peering;
pub mod registry;
pub mod renewal;
pub mod store;
pub mod table;
