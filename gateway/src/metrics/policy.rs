//! The families of route policies on HTTP ports (DESIGN.md, HTTP-aware
//! services): retries made, retries refused by the retry budget, faults
//! injected, and the gRPC status of each gRPC request.
//!
//! Retries, budget refusals and faults are per service (the service the
//! client called), at 0 from the service's first snapshot as an HTTP
//! import; they are kept when the service goes, as a counter that
//! vanishes and comes back would read as a reset. gRPC series are per
//! target cluster and status, and appear with their first request.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{ServiceLabels, service_labels};
use crate::state::ServiceKey;

/// `kind` values of `http_faults_injected`.
pub const FAULT_KINDS: [&str; 2] = ["delay", "abort"];

/// The `grpc_status` of a value that is not one of gRPC's codes 0–16
/// (which keeps the family's size bounded whatever an endpoint sends).
pub const GRPC_UNKNOWN: &str = "unknown";

/// Labels: a service and a fault kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    namespace: String,
    service: String,
    kind: String,
}

/// Labels: a service, the cluster that answered and the gRPC status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    namespace: String,
    service: String,
    cluster: String,
    grpc_status: String,
}

/// The policy families.
#[derive(Debug, Default)]
pub(super) struct PolicyMetrics {
    retries: Family<ServiceLabels, Counter>,
    budget_exhausted: Family<ServiceLabels, Counter>,
    faults: Family<FaultLabels, Counter>,
    grpc: Family<GrpcLabels, Counter>,
}

fn fault_labels((namespace, service): &ServiceKey, kind: &str) -> FaultLabels {
    FaultLabels {
        namespace: namespace.clone(),
        service: service.clone(),
        kind: kind.to_string(),
    }
}

impl PolicyMetrics {
    /// Registers the families.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_retries",
            "Requests sent again by a route's retry policy",
            self.retries.clone(),
        );
        registry.register(
            "http_retry_budget_exhausted",
            "Retries a route asked for that the retry budget refused",
            self.budget_exhausted.clone(),
        );
        registry.register(
            "http_faults_injected",
            "Requests delayed or aborted by a route's FaultInjection",
            self.faults.clone(),
        );
        registry.register(
            "grpc_requests",
            "gRPC requests by the cluster that answered and their grpc-status",
            self.grpc.clone(),
        );
    }

    /// Creates the per-service series of an HTTP import at 0.
    pub(super) fn create(&self, service: &ServiceKey) {
        drop(self.retries.get_or_create(&service_labels(service)));
        drop(
            self.budget_exhausted
                .get_or_create(&service_labels(service)),
        );
        for kind in FAULT_KINDS {
            drop(self.faults.get_or_create(&fault_labels(service, kind)));
        }
    }

    /// A retry of a request to `service`.
    pub(super) fn retry(&self, service: &ServiceKey) {
        self.retries.get_or_create(&service_labels(service)).inc();
    }

    /// A retry of a request to `service` the budget refused.
    pub(super) fn budget_exhausted(&self, service: &ServiceKey) {
        self.budget_exhausted
            .get_or_create(&service_labels(service))
            .inc();
    }

    /// A fault of `kind` ([`FAULT_KINDS`]) hit a request to `service`.
    pub(super) fn fault(&self, service: &ServiceKey, kind: &str) {
        self.faults
            .get_or_create(&fault_labels(service, kind))
            .inc();
    }

    /// A gRPC request to `service` answered by `cluster` ended with
    /// `status` (the `grpc-status` value as sent).
    pub(super) fn grpc(&self, (namespace, service): &ServiceKey, cluster: &str, status: &str) {
        let labels = GrpcLabels {
            namespace: namespace.clone(),
            service: service.clone(),
            cluster: cluster.to_string(),
            grpc_status: status.to_string(),
        };
        self.grpc.get_or_create(&labels).inc();
    }

    /// Removes the gRPC series of `service` and `cluster` (statuses 0–16,
    /// the codes gRPC defines, and [`GRPC_UNKNOWN`]).
    pub(super) fn remove(&self, (namespace, service): &ServiceKey, cluster: &str) {
        let statuses = (0..=16).map(|c: u8| c.to_string());
        for status in statuses.chain(std::iter::once(GRPC_UNKNOWN.to_string())) {
            self.grpc.remove(&GrpcLabels {
                namespace: namespace.clone(),
                service: service.clone(),
                cluster: cluster.to_string(),
                grpc_status: status,
            });
        }
    }
}
