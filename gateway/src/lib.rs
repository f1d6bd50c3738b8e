//! The east-west gateway data plane (`fedgw`): ingress from peer clusters
//! over mTLS, egress listeners on imported VIPs, locality-aware failover.
//!
//! Data flow: [`control`] gets this gateway's certificate (CSR) and
//! configuration snapshots from the control plane, decoded into
//! [`state::GatewayState`]. [`egress`] listens on every imported VIP and
//! carries each client connection to the first target [`select`] offers
//! that connects, checking [`health`]; remote hops go to a peer's
//! [`ingress`], which confirms with a [`status`] preface before bytes
//! [`splice`]. [`gateway::run`] wires it all and serves [`admin`] with
//! [`metrics`].
//!
//! Depends on `fedmesh-proto` only — never on `kube` or the control plane.

pub mod admin;
pub mod control;
pub mod egress;
pub mod gateway;
pub mod health;
pub mod ingress;
pub mod limits;
pub mod metrics;
pub mod select;
pub mod splice;
pub mod state;
pub mod status;
pub mod transport;
