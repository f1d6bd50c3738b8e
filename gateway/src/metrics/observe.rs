//! What the observability outputs lost: access log lines and spans dropped
//! because their queue was full (a slow disk, an absent collector), so an
//! alert sees that logs or traces have gaps. Both series exist at 0 from
//! start.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `kind` values: an access log line, a span.
pub(super) const KINDS: [&str; 2] = ["access_log", "span"];

/// Labels: what was dropped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The drop counters.
#[derive(Debug)]
pub(super) struct ObserveMetrics {
    dropped: Family<KindLabels, Counter>,
}

impl Default for ObserveMetrics {
    fn default() -> Self {
        let m = Self {
            dropped: Family::default(),
        };
        for kind in KINDS {
            drop(m.dropped.get_or_create(&labels(kind)));
        }
        m
    }
}

fn labels(kind: &str) -> KindLabels {
    KindLabels {
        kind: kind.to_owned(),
    }
}

impl ObserveMetrics {
    /// Registers the family.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "observe_dropped",
            "Access log lines and spans dropped because their queue was full",
            self.dropped.clone(),
        );
    }

    /// One `kind` dropped.
    pub(super) fn dropped(&self, kind: &str) {
        self.dropped.get_or_create(&labels(kind)).inc();
    }
}
