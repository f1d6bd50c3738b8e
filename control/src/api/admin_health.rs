//! gRPC health checking (grpc.health.v1, `tonic-health`) and server
//! reflection (grpc.reflection.v1, `tonic-reflection`) for the control
//! plane's gRPC ports: the admin API and the gateway API. The peering port
//! serves neither: every call there but Join needs a peer's certificate.
//! The gateway's ingress is a TLS/HTTP/2 CONNECT port, not a gRPC server,
//! so it has neither either.
//!
//! Health answers SERVING for the whole server (`""`) and for each named
//! service once the server runs; it has no other state, as the process
//! serves its APIs or is gone. Reflection describes every fedmesh `.proto`
//! file ([`fedmesh_proto::FILE_DESCRIPTOR_SET`]).

use tonic::server::NamedService;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

/// Why reflection could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The compiled-in descriptors do not decode (a build problem).
    #[error("cannot build gRPC reflection from the compiled-in descriptors")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// A health service reporting `S` (and the whole server, `""`) as
/// SERVING.
pub async fn health_for<S: NamedService>() -> HealthServer<impl Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    service
}

/// The reflection service over every fedmesh `.proto` file.
///
/// # Errors
/// When the compiled-in descriptors do not decode.
pub fn reflection() -> Result<ServerReflectionServer<impl ServerReflection>, MetaError> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fedmesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(MetaError::Reflection)
}
