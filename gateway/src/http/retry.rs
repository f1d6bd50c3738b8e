//! Retries of a route's `retry` policy, and the retry budget that bounds
//! them (DESIGN.md, HTTP-aware services).
//!
//! A request whose answer is retryable ([`retryable`]: a code the rule
//! lists, a gRPC UNAVAILABLE counted as a 503, or no answer at all) is
//! sent again after the rule's backoff, at most `attempts` times, and only
//! when [`RetryBudgets::try_retry`] allows it. Budgets are kept per target
//! service (the service a backend names), so one failing service cannot
//! spend the retries of another.
//!
//! The budget is Finagle's `RetryBudget` with the contract's numbers:
//! every request deposits 0.2 retries, and a reserve of 10 retries per
//! second is always available, over a window of 10 s. In any 10 s a
//! service gets at most `0.2 × requests + 100` retries, so a failing
//! service sees at most 20 % more load than its clients send, plus a
//! trickle that lets a quiet service retry at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fedmesh_proto::routes::Retry;
use http::{HeaderMap, StatusCode, header};

use crate::state::ServiceKey;

/// The share of requests that may be retried, in percent.
pub(super) const BUDGET_PERCENT: u64 = 20;
/// Retries always allowed per second, whatever the traffic.
pub(super) const BUDGET_MIN_PER_SECOND: u64 = 10;
/// How far back deposits and retries count.
pub(super) const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Seconds in [`BUDGET_WINDOW`]: one bucket each.
const BUCKETS: usize = 10;

/// Services remembered before idle budgets are dropped.
const MAX_SERVICES: usize = 4096;

/// gRPC's UNAVAILABLE (gRPC status codes, `doc/statuscodes.md`).
pub(super) const GRPC_UNAVAILABLE: &str = "14";

/// How one try of a request ended, as the retry policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A response with this status.
    Answered(u16),
    /// A gRPC trailers-only response with `grpc-status: 14` (UNAVAILABLE):
    /// a 503 to the rule's codes.
    GrpcUnavailable,
    /// No target could serve it (the gateway answers 503).
    NoTarget,
    /// The rule's `backendRequest` timeout expired (the gateway answers 504).
    TimedOut,
}

impl Outcome {
    /// The outcome of a response: its status, except that a gRPC
    /// trailers-only response with `grpc-status: 14` counts as a 503, as
    /// gRPC's own retry policy treats UNAVAILABLE (gRFC A6).
    pub(super) fn of(status: StatusCode, headers: &HeaderMap) -> Self {
        if is_grpc(headers)
            && headers
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == GRPC_UNAVAILABLE.as_bytes())
        {
            return Outcome::GrpcUnavailable;
        }
        Outcome::Answered(status.as_u16())
    }

    /// The status the client would see.
    fn code(self) -> u16 {
        match self {
            Outcome::Answered(code) => code,
            Outcome::GrpcUnavailable | Outcome::NoTarget => 503,
            Outcome::TimedOut => 504,
        }
    }
}

/// Whether `headers` are a gRPC response's (`content-type:
/// application/grpc` or `application/grpc+proto` etc.).
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v == "application/grpc" || v.starts_with("application/grpc+")
        })
}

/// Whether `retry` sends a request that ended with `outcome` again: its
/// code is one the rule lists (a request no target served counts as the
/// 503 the gateway answers, an expired `backendRequest` as the 504).
pub(super) fn retryable(retry: &Retry, outcome: Outcome) -> bool {
    retry.codes.contains(&outcome.code())
}

/// Whether a request may be sent again at all after `outcome`: an
/// idempotent one always (RFC 9110 §9.2.2); any other only after a gRPC
/// UNAVAILABLE. gRPC calls are all POSTs, and a route's `retry` on 503 is
/// the service owner's opt-in, as a gRPC retry policy is (gRFC A6 retries
/// any method its policy names); UNAVAILABLE is the status gRPC defines
/// as transient and safe to retry.
pub(super) fn may_resend(idempotent: bool, outcome: Outcome) -> bool {
    idempotent || outcome == Outcome::GrpcUnavailable
}

/// One service's deposits and retries, per second of the window.
#[derive(Debug, Clone)]
struct Budget {
    /// The second (since `RetryBudgets::epoch`) each bucket counts.
    second: [u64; BUCKETS],
    requests: [u64; BUCKETS],
    retries: [u64; BUCKETS],
}

impl Budget {
    fn new() -> Self {
        Self {
            second: [u64::MAX; BUCKETS],
            requests: [0; BUCKETS],
            retries: [0; BUCKETS],
        }
    }

    /// The bucket of `second`, emptied if it last counted an older one.
    fn bucket(&mut self, second: u64) -> usize {
        let at = usize::try_from(second % BUCKETS as u64).unwrap_or(0);
        if self.second[at] != second {
            self.second[at] = second;
            self.requests[at] = 0;
            self.retries[at] = 0;
        }
        at
    }

    /// Requests and retries in the window ending at `second`.
    fn totals(&self, second: u64) -> (u64, u64) {
        let live = |i: usize| second.saturating_sub(self.second[i]) < BUCKETS as u64;
        (0..BUCKETS).filter(|&i| live(i)).fold((0, 0), |(q, r), i| {
            (q + self.requests[i], r + self.retries[i])
        })
    }

    /// Whether one more retry fits: `retries + 1 ≤ 0.2 × requests + 100`
    /// (in hundredths, to stay in integers).
    fn allows(&self, second: u64) -> bool {
        let (requests, retries) = self.totals(second);
        let reserve = BUDGET_MIN_PER_SECOND * BUDGET_WINDOW.as_secs();
        (retries + 1) * 100 <= requests * BUDGET_PERCENT + reserve * 100
    }

    /// Whether the newest request or retry is older than the window.
    fn idle(&self, second: u64) -> bool {
        self.totals(second) == (0, 0)
    }
}

/// The retry budgets of every target service.
#[derive(Debug)]
pub struct RetryBudgets {
    epoch: Instant,
    budgets: Mutex<HashMap<ServiceKey, Budget>>,
}

impl Default for RetryBudgets {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudgets {
    /// Empty budgets: every service starts with the reserve.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            budgets: Mutex::default(),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Counts a request to `service` (its first try).
    pub(super) fn deposit(&self, service: &ServiceKey, now: Instant) {
        let second = self.second(now);
        let mut budgets = self.lock();
        if !budgets.contains_key(service) {
            if budgets.len() >= MAX_SERVICES {
                budgets.retain(|_, b| !b.idle(second));
            }
            // The key is copied once per service, not per request.
            budgets.insert(service.clone(), Budget::new());
        }
        let Some(budget) = budgets.get_mut(service) else {
            return;
        };
        let at = budget.bucket(second);
        budget.requests[at] += 1;
    }

    /// Takes one retry of a request to `service` from its budget; false
    /// when the budget is spent (the request is not retried).
    pub(super) fn try_retry(&self, service: &ServiceKey, now: Instant) -> bool {
        let second = self.second(now);
        let mut budgets = self.lock();
        // A service with no deposit yet has the whole reserve.
        let budget = budgets.entry(service.clone()).or_insert_with(Budget::new);
        if !budget.allows(second) {
            return false;
        }
        let at = budget.bucket(second);
        budget.retries[at] += 1;
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceKey, Budget>> {
        // Plain counters: a poisoned lock is still consistent.
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn key() -> ServiceKey {
        ("demo".into(), "hello".into())
    }

    fn spend(b: &RetryBudgets, now: Instant) -> u64 {
        (0..10_000).take_while(|_| b.try_retry(&key(), now)).count() as u64
    }

    #[test]
    fn a_quiet_service_gets_the_reserve_of_ten_per_second_over_the_window() {
        let b = RetryBudgets::new();
        let now = b.epoch;
        assert_eq!(spend(&b, now), 100, "10/s × 10 s");
        assert!(!b.try_retry(&key(), now + Duration::from_secs(9)));
        // Another service has its own budget.
        assert!(b.try_retry(&("demo".into(), "bye".into()), now));
        // Once the window has passed, the reserve is back.
        assert_eq!(spend(&b, now + Duration::from_secs(10)), 100);
    }

    #[test]
    fn each_request_adds_a_fifth_of_a_retry() {
        let b = RetryBudgets::new();
        let now = b.epoch;
        for _ in 0..1000 {
            b.deposit(&key(), now);
        }
        assert_eq!(spend(&b, now), 200 + 100, "20 % of 1000, plus the reserve");
        for _ in 0..4 {
            b.deposit(&key(), now + Duration::from_secs(1));
        }
        assert!(!b.try_retry(&key(), now + Duration::from_secs(1)), "0.8");
        b.deposit(&key(), now + Duration::from_secs(1));
        assert!(b.try_retry(&key(), now + Duration::from_secs(1)), "1.0");
    }

    #[test]
    fn deposits_older_than_the_window_no_longer_count() {
        let b = RetryBudgets::new();
        let now = b.epoch;
        for _ in 0..1000 {
            b.deposit(&key(), now);
        }
        let later = now + Duration::from_secs(10);
        assert_eq!(spend(&b, later), 100, "only the reserve is left");
    }

    fn retry(codes: &[u16]) -> Retry {
        Retry {
            attempts: 2,
            backoff: None,
            codes: codes.to_vec(),
        }
    }

    #[test]
    fn listed_codes_and_the_gateways_own_answers_are_retryable() {
        let r = retry(&[502, 503]);
        assert!(retryable(&r, Outcome::Answered(503)));
        assert!(!retryable(&r, Outcome::Answered(500)));
        assert!(!retryable(&r, Outcome::Answered(200)));
        assert!(retryable(&r, Outcome::NoTarget), "the gateway's 503");
        assert!(!retryable(&r, Outcome::TimedOut));
        assert!(retryable(&retry(&[504]), Outcome::TimedOut));
    }

    #[test]
    fn a_grpc_unavailable_counts_as_a_503() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        // Not gRPC without its content type.
        assert_eq!(
            Outcome::of(StatusCode::OK, &headers),
            Outcome::Answered(200)
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert_eq!(
            Outcome::of(StatusCode::OK, &headers),
            Outcome::GrpcUnavailable
        );
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(
            Outcome::of(StatusCode::OK, &headers),
            Outcome::Answered(200)
        );
    }

    #[test]
    fn only_an_idempotent_request_or_a_grpc_unavailable_is_sent_again() {
        assert!(may_resend(true, Outcome::Answered(503)), "a GET");
        assert!(!may_resend(false, Outcome::Answered(503)), "a POST's 503");
        assert!(
            !may_resend(false, Outcome::NoTarget),
            "a POST nothing served"
        );
        assert!(
            may_resend(false, Outcome::GrpcUnavailable),
            "a gRPC call (a POST) answered UNAVAILABLE"
        );
    }
}
