//! Fault injection at the client's gateway (`fedmesh.io/v1alpha1`
//! `FaultInjection`, named by a rule's `ExtensionRef`): a share of
//! requests waits a fixed delay, a share is answered with the abort's
//! status right here. An aborted request is never sent anywhere: no
//! target is chosen, no attempt made, no endpoint sees it.
//!
//! The decision is `FaultInjection::decide` of the shared route model,
//! with two independent rolls drawn here; each fault that hits is counted
//! (`fedmesh_gateway_http_faults_injected_total{kind}`).

use fedmesh_proto::routes::{ALL, FaultInjection};
use http::StatusCode;

use crate::metrics::Metrics;
use crate::select::Rng;
use crate::state::ServiceKey;

/// Applies `fault` to one request to `service`: waits its delay when the
/// delay hits, and returns the abort's status when the abort hits (the
/// caller answers with it and sends nothing on).
pub(super) async fn inject(
    fault: &FaultInjection,
    service: &ServiceKey,
    metrics: &Metrics,
    rng: &mut Rng,
) -> Option<StatusCode> {
    let decision = fault.decide(roll(rng), roll(rng));
    if let Some(delay) = decision.delay {
        metrics.http_fault(service, "delay");
        tokio::time::sleep(delay).await;
    }
    if decision.abort.is_some() {
        metrics.http_fault(service, "abort");
    }
    decision.abort
}

/// A roll uniform in `0..ALL` (the units of a `Fraction`).
fn roll(rng: &mut Rng) -> u32 {
    // `unit` is in (0, 1]: the top end wraps to 0, which `hits` allows.
    let scaled = rng.unit() * f64::from(ALL);
    (scaled as u32) % ALL
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fedmesh_proto::routes::{Abort, Delay, Fraction, PERCENT};

    use super::*;

    fn fault(delay_percent: u32, abort_percent: u32) -> FaultInjection {
        FaultInjection {
            namespace: "demo".into(),
            name: "flaky".into(),
            delay: Some(Delay {
                fixed: Duration::from_millis(1),
                share: Fraction(delay_percent * PERCENT),
            }),
            abort: Some(Abort {
                status: StatusCode::SERVICE_UNAVAILABLE,
                share: Fraction(abort_percent * PERCENT),
            }),
        }
    }

    #[test]
    fn rolls_stay_in_range_and_spread() {
        let mut rng = Rng::seeded(3);
        let rolls: Vec<u32> = (0..10_000).map(|_| roll(&mut rng)).collect();
        assert!(rolls.iter().all(|r| *r < ALL));
        let low = rolls.iter().filter(|r| **r < ALL / 2).count();
        assert!((4_500..5_500).contains(&low), "{low} of 10000 below half");
    }

    #[tokio::test]
    async fn an_abort_of_every_request_always_answers_and_is_counted() {
        let metrics = Metrics::new();
        let key = ("demo".to_string(), "hello".to_string());
        let mut rng = Rng::seeded(5);
        for _ in 0..20 {
            let got = inject(&fault(0, 100), &key, &metrics, &mut rng).await;
            assert_eq!(got, Some(StatusCode::SERVICE_UNAVAILABLE));
        }
        let none = inject(&fault(0, 0), &key, &metrics, &mut rng).await;
        assert_eq!(none, None);
        let text = metrics.encode(crate::metrics::Format::Classic);
        let line = "fedmesh_gateway_http_faults_injected_total{namespace=\"demo\",service=\"hello\",kind=\"abort\"} 20";
        assert!(text.contains(line), "{text}");
    }

    #[tokio::test]
    async fn a_tenth_of_requests_are_delayed() {
        let metrics = Metrics::new();
        let key = ("demo".to_string(), "hello".to_string());
        let mut rng = Rng::seeded(9);
        for _ in 0..1000 {
            inject(&fault(10, 0), &key, &metrics, &mut rng).await;
        }
        let text = metrics.encode(crate::metrics::Format::Classic);
        let prefix = "fedmesh_gateway_http_faults_injected_total{namespace=\"demo\",service=\"hello\",kind=\"delay\"} ";
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!((70.0..=130.0).contains(&n), "{n} of 1000 delayed");
    }
}
