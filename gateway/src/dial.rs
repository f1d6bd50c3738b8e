//! Dialing a service's local endpoints: the one loop the ingress (for
//! peers) and the egress (for this cluster's own clients) share. Ready
//! endpoints are tried in a random order, ejected ones last; each dial
//! gets its own budget, so that one silent endpoint (SYNs dropped) costs
//! at most that budget before the next is tried; every result feeds the
//! endpoint's outlier record ([`crate::health`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::error::AttemptError;
use crate::health::Health;
use crate::model::Export;
use crate::select::Rng;

/// The fewest endpoints a dial budget must leave room for (DESIGN.md:
/// the ingress tries at least two endpoints inside the egress's
/// `connectTimeout`); a third share is kept for the answer's way back.
pub const ENDPOINTS_PER_BUDGET: u32 = 3;

/// One part in this many of a budget is kept for the answer's way back
/// (and the work around the dials), so that an ingress whose endpoints
/// all fail answers "endpoint failed" before the egress stops waiting.
const ANSWER_RESERVE: u32 = 10;

/// The shortest dial worth making, whatever the budget.
const MIN_DIAL: Duration = Duration::from_millis(20);

/// The ready endpoints' addresses for service port `port` of `export`.
pub fn candidates(export: &Export, port: u16) -> Vec<SocketAddr> {
    export
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| {
            export
                .target_port(e, port)
                .map(|p| SocketAddr::new(e.address, p))
        })
        .collect()
}

/// How long one endpoint dial may take inside `budget` when there are
/// `candidates` endpoints: a share that leaves room for the next ones (at
/// most [`ENDPOINTS_PER_BUDGET`] shares), the whole budget for a single
/// endpoint (nothing to save room for: a slow accept under a burst is not a
/// dead endpoint).
pub fn per_dial(budget: Duration, candidates: usize) -> Duration {
    let shares = u32::try_from(candidates)
        .unwrap_or(u32::MAX)
        .clamp(1, ENDPOINTS_PER_BUDGET);
    (budget / shares).max(MIN_DIAL)
}

/// Dials `candidates` until one connects or `budget` runs out.
///
/// # Errors
/// [`AttemptError::NoEndpoint`] when there is no candidate; otherwise the
/// last dial's failure.
pub async fn dial(
    health: &Health,
    candidates: &[SocketAddr],
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), AttemptError> {
    dial_with(health, candidates, budget, true).await
}

/// As [`dial`], for a connection that will carry HTTP requests: a
/// successful dial is not recorded as a success, since the answers on
/// the connection are (a 5xx counts as a failure), and a connect must not
/// end a run of 5xx answers.
///
/// # Errors
/// As [`dial`].
pub async fn dial_for_requests(
    health: &Health,
    candidates: &[SocketAddr],
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), AttemptError> {
    dial_with(health, candidates, budget, false).await
}

/// [`dial`], recording successful dials when `record_success`.
async fn dial_with(
    health: &Health,
    candidates: &[SocketAddr],
    budget: Duration,
    record_success: bool,
) -> Result<(TcpStream, SocketAddr), AttemptError> {
    if candidates.is_empty() {
        return Err(AttemptError::NoEndpoint);
    }
    let started = Instant::now();
    // The answer must still reach the egress before it gives up.
    let budget = budget - budget / ANSWER_RESERVE;
    let deadline = started + budget;
    let each = per_dial(budget, candidates.len());
    let mut last = AttemptError::NoEndpoint;
    for addr in order(health, candidates, started) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let outcome = tokio::time::timeout(each.min(left), TcpStream::connect(addr)).await;
        let ok = matches!(outcome, Ok(Ok(_)));
        if (!ok || record_success) && health.endpoint_result(addr, ok, candidates, Instant::now()) {
            warn!(endpoint = %addr, "ejecting an endpoint after consecutive failed dials");
        }
        match outcome {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(source)) => {
                debug!(endpoint = %addr, %source, "endpoint dial failed; trying the next");
                last = AttemptError::Connect {
                    addr: addr.to_string(),
                    source,
                };
            }
            Err(_) => {
                debug!(endpoint = %addr, "endpoint dial timed out; trying the next");
                last = AttemptError::Timeout {
                    addr: addr.to_string(),
                };
            }
        }
    }
    Err(last)
}

/// A random order, ejected endpoints last (tried only when the others
/// failed: ejection steers, it never makes an endpoint unreachable).
fn order(health: &Health, candidates: &[SocketAddr], now: Instant) -> Vec<SocketAddr> {
    let mut rng = Rng::new();
    let mut keyed: Vec<(bool, f64, SocketAddr)> = candidates
        .iter()
        .map(|a| (health.endpoint_ejected(a, now), rng.unit(), *a))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keyed.into_iter().map(|(_, _, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        let c = fedmesh_proto::config::Config::from_yaml(
            "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
            std::path::Path::new("/tmp/x.yaml"),
        )
        .unwrap();
        Health::new(&c.gateway)
    }

    /// A port nothing listens on: bound, then closed.
    async fn closed_port() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    #[test]
    fn a_budget_leaves_room_for_two_endpoints_and_the_answer() {
        let b = Duration::from_secs(1);
        assert!(per_dial(b, 2) * 2 <= b);
        assert!(per_dial(b, 10) * 2 < b);
        assert_eq!(per_dial(b, 1), b, "one endpoint gets the whole wait");
        assert_eq!(per_dial(Duration::from_millis(3), 5), MIN_DIAL);
    }

    #[tokio::test]
    async fn a_refusing_endpoint_is_passed_over_and_ejected_in_the_end() {
        let h = health();
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let bad = closed_port().await;
        let both = [bad, good_addr];
        for _ in 0..20 {
            let (_, reached) = dial(&h, &both, Duration::from_secs(1)).await.unwrap();
            assert_eq!(reached, good_addr);
            if h.endpoint_ejected(&bad, Instant::now()) {
                break;
            }
        }
        assert!(h.endpoint_ejected(&bad, Instant::now()));
        assert_eq!(order(&h, &both, Instant::now()), [good_addr, bad]);
    }

    #[tokio::test]
    async fn no_candidate_is_no_endpoint_and_all_failing_is_the_last_error() {
        let h = health();
        assert!(matches!(
            dial(&h, &[], Duration::from_secs(1)).await,
            Err(AttemptError::NoEndpoint)
        ));
        let bad = closed_port().await;
        assert!(matches!(
            dial(&h, &[bad], Duration::from_secs(1)).await,
            Err(AttemptError::Connect { .. })
        ));
    }
}
