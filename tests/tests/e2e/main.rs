//! End-to-end tests: real `fedctl` processes on 127.x.y.z, driven through
//! the CLI (one test binary, one module per capability).

mod check_dataplane;
mod cli_docs;
mod config;
mod demo;
mod docs;
mod endpoints;
mod examples;
mod export;
mod gateway;
mod gateway_api;
mod hardening;
mod imports;
mod ingress;
mod join;
mod join_safety;
mod kubernetes;
mod leave;
mod liveness;
mod manifests;
mod mcs;
mod pool;
mod registry_events;
mod restart;
mod routes;
mod tokens;
mod trust;
