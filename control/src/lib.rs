//! The fedmesh control plane and the `fedctl` command.
//!
//! One control plane runs per cluster (`fedctl run`). It owns the cluster's
//! CA ([`ca`]) and state ([`store`]), links the cluster with its peers
//! ([`peering`]: join handshake, one mTLS sync stream per peering with
//! heartbeats), serves the admin API for `fedctl` and the gateway API for
//! `fedgw` ([`api`]), and the web port ([`web`]: metrics, topology, the
//! topology page). [`daemon`] wires these together; [`cli`] is the
//! command line.
//!
//! Layers, each using only those below it: [`model`] (the vocabulary) →
//! [`store`], [`ca`], [`registry`] → [`exports`] → [`table`] → [`peering`],
//! [`dnsfeed`], [`import_services`] → [`api`], [`web`] → [`daemon`] → [`cli`].
//! `fedctl check` ([`checks`]) reads the [`context::Control`] bundle the
//! daemon builds for it. [`harness`] (child processes, config and manifest
//! texts, one DNS question) is what `fedctl demo` (in [`cli`]) shares with
//! the end-to-end tests.
//!
//! Where to start reading: `daemon::run`, then `peering.rs`.

pub mod api;
pub mod ca;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod context;
pub mod daemon;
pub mod dnsfeed;
pub mod drain;
pub mod exports;
pub mod harness;
pub mod import_services;
pub mod model;
pub mod peering;
pub mod registry;
pub mod renewal;
pub mod routes;
pub mod store;
pub mod table;
pub mod web;
