//! What every fedmesh component shares.
//!
//! - [`v1`]: the generated gRPC code for the three services of the wire
//!   protocol: `Peering` (control plane ↔ control plane: join handshake and
//!   the per-peering sync stream), `GatewayConfig` (control plane → gateway:
//!   certificates and configuration snapshots) and `Admin` (`fedctl` → its
//!   control plane). The `.proto` sources are in `proto/proto/`.
//! - [`identity`]: SPIFFE IDs, trust bundles keyed by peer, and the rustls
//!   verifiers that accept a peer only with a certificate chaining to *that*
//!   peer's root and a SPIFFE ID in *that* peer's trust domain.
//! - [`config`]: the YAML cluster config read by `fedctl run` and `fedgw`,
//!   with validation and defaults.
//! - [`app_protocol`]: what a service port speaks (TCP or an HTTP flavour),
//!   decided once from `appProtocol` or the port name.
//! - [`routes`]: Gateway API `HTTPRoute`s and `FaultInjection`s:
//!   validation, the compiled route table and its matcher.
//! - [`token`]: join tokens and gateway bootstrap tokens.
//! - [`transport`]: gRPC over our own TLS (accept and dial).
//! - [`metrics_text`]: the two Prometheus text formats of every `/metrics`.
//! - [`chain`]: an error and its causes as the binaries print them.
//!
//! Start with `proto/proto/peering.proto` to see what crosses the wire.

pub mod app_protocol;
pub mod chain;
pub mod config;
pub mod identity;
pub mod metrics_text;
pub mod routes;
pub mod token;
pub mod transport;

/// The encoded `FileDescriptorSet` of every `.proto` file, for gRPC
/// server reflection (`grpcurl list` and friends).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fedmesh_descriptor.bin"));

/// Generated protobuf messages and tonic clients and servers
/// (package `fedmesh.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("fedmesh.v1");
}
