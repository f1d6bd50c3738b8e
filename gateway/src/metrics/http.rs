//! The per-request families of HTTP ports (DESIGN.md, HTTP-aware
//! services): requests by service, target cluster and status code, and
//! their latency to the response head. A request no target answered is
//! counted under `cluster="none"` with the gateway's own 503.
//!
//! Series at 0 from start, as for connections: per HTTP import and target
//! cluster, codes 200 and 503 (what a success-ratio or an error alert
//! reads), and `none`/503. Other codes appear with their first request;
//! the histogram with a target's first request (as the connect histogram
//! does).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{TargetLabels, target_labels};
use crate::state::ServiceKey;

/// The `cluster` of a request no target answered.
pub const HTTP_NO_CLUSTER: &str = "none";

/// Codes whose series exist from start.
pub const HTTP_PREPARED_CODES: [u16; 2] = [200, 503];

/// Labels: a service, a target cluster and a status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    namespace: String,
    service: String,
    cluster: String,
    code: String,
}

/// The HTTP families.
#[derive(Debug)]
pub(super) struct HttpMetrics {
    /// Retries, budget refusals, faults and gRPC statuses.
    pub(super) policy: super::policy::PolicyMetrics,
    requests: Family<CodeLabels, Counter>,
    seconds: Family<TargetLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            policy: super::policy::PolicyMetrics::default(),
            requests: Family::default(),
            // 100 µs to about 26 s.
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
        }
    }
}

fn code_labels((namespace, service): &ServiceKey, cluster: &str, code: u16) -> CodeLabels {
    CodeLabels {
        namespace: namespace.clone(),
        service: service.clone(),
        cluster: cluster.to_string(),
        code: code.to_string(),
    }
}

impl HttpMetrics {
    /// Registers both families.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "Requests to HTTP ports, by target cluster and status code",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to its response head, by target cluster",
            self.seconds.clone(),
        );
        self.policy.register(registry);
    }

    /// One request answered `code` by `cluster` after `took`.
    pub(super) fn request(&self, service: &ServiceKey, cluster: &str, code: u16, took: Duration) {
        self.requests
            .get_or_create(&code_labels(service, cluster, code))
            .inc();
        if cluster != HTTP_NO_CLUSTER {
            self.seconds
                .get_or_create(&target_labels(service, cluster))
                .observe(took.as_secs_f64());
        }
    }

    /// Creates the series of an HTTP import's target at 0.
    pub(super) fn create(&self, service: &ServiceKey, cluster: &str) {
        for code in HTTP_PREPARED_CODES {
            drop(
                self.requests
                    .get_or_create(&code_labels(service, cluster, code)),
            );
        }
        drop(
            self.requests
                .get_or_create(&code_labels(service, HTTP_NO_CLUSTER, 503)),
        );
        self.policy.create(service);
    }

    /// Removes every series of `service` and `cluster` (the snapshot no
    /// longer names them); codes seen are in `codes`.
    pub(super) fn remove(&self, service: &ServiceKey, cluster: &str) {
        // Any code may have been seen: 100–599.
        for code in 100..600 {
            self.requests.remove(&code_labels(service, cluster, code));
            self.requests
                .remove(&code_labels(service, HTTP_NO_CLUSTER, code));
        }
        self.seconds.remove(&target_labels(service, cluster));
        self.policy.remove(service, cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_code_and_prepared_ones_start_at_zero() {
        let m = HttpMetrics::default();
        let mut registry = Registry::with_prefix("fedmesh_gateway");
        m.register(&mut registry);
        let key = ("demo".to_string(), "hello".to_string());
        m.create(&key, "east");
        m.request(&key, "east", 200, Duration::from_millis(2));
        m.request(&key, "east", 404, Duration::from_millis(2));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = |cluster: &str, code: &str| {
            format!(
                "fedmesh_gateway_http_requests_total{{namespace=\"demo\",service=\"hello\",cluster=\"{cluster}\",code=\"{code}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 1", line("east", "200"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1", line("east", "404"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 0", line("east", "503"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 0", line("none", "503"))),
            "{text}"
        );
        m.remove(&key, "east");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("cluster=\"east\""), "{text}");
    }
}
