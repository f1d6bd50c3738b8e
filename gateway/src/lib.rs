//! The east-west gateway data plane (`fedgw`): ingress from peer clusters
//! over mTLS, egress listeners on imported VIPs, locality-aware failover.
//!
//! Data flow: [`control`] gets this gateway's certificate (CSR) and
//! configuration snapshots from the control plane, decoded into
//! [`state::GatewayState`]. [`egress`] listens on every imported VIP and
//! carries each client connection down its stages (admission, target
//! choice by [`select`], attempts with failover, carry by [`splice`]);
//! HTTP ports go per request through [`http`] instead;
//! local endpoints and a peer's [`ingress`] endpoints are dialed by the
//! one loop in [`dial`], fed by [`health`] (probes, outlier detection per
//! cluster and per endpoint). What gateways say to each other is in
//! [`wire`]; what can fail in an attempt is [`error`]. [`gateway::run`]
//! wires it all and serves [`admin`] with [`metrics`]; [`status`] is what
//! the gateway reports of itself to the control plane. [`observe`] is what
//! it tells of each request and connection: W3C trace context ([`trace`]),
//! spans over OTLP ([`otlp`]) and JSON access logs ([`access_log`]).
//!
//! Start reading at `egress.rs`: its module doc lists the stages in order.
//!
//! Depends on `fedmesh-proto` only — never on `kube` or the control plane.

pub mod access_log;
pub mod admin;
pub mod control;
pub mod dial;
pub mod egress;
pub mod endpoint;
pub mod error;
pub mod gateway;
pub mod health;
pub mod http;
pub mod ingress;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod otlp;
pub mod pools;
pub mod routes;
pub mod select;
pub mod splice;
pub mod state;
pub mod status;
pub mod tls;
pub mod trace;
pub mod transport;
pub mod wire;
