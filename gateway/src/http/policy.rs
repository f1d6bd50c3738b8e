//! Routes applied to one request at the client's gateway (DESIGN.md,
//! HTTP-aware services → Routes): the rule a request matches decides
//! where it goes and what happens to it on the way.
//!
//! 1. **plan** ([`plan`]): a request on the service's VIP (not a pinned
//!    cluster's or endpoint's VIP, which name their target already) to a
//!    port some route is bound to is looked up in the service's
//!    [`RouteTable`]. No rule fits: 404. A rule whose FaultInjection is
//!    missing, or with no backend of non-zero weight, or whose chosen
//!    backend is not a service port imported here: 500 (Gateway API).
//!    Otherwise one backend is chosen by weight, per request, and
//!    resolved: `Service` and MCS `ServiceImport` mean the global service
//!    (locality, affinity, failover); `fedmesh.io` `ServiceImport
//!    <cluster>.<svc>` means that cluster's copy only, chosen as a pinned
//!    VIP is (no failover: 503 when it cannot serve).
//! 2. **fault** ([`super::fault`]): a delay waits, an abort answers here.
//! 3. **request headers**: `RequestHeaderModifier` (never a `fedmesh-*`
//!    header: those are the gateways' own).
//! 4. **tries**: [`super::attempts::Attempts`] (target choice and failover)
//!    once, then again per [`super::retry`] while the answer is retryable,
//!    attempts are left, the method is idempotent (or the answer is a gRPC
//!    UNAVAILABLE: [`super::retry::may_resend`]) and the retry budget
//!    allows it.
//!    `timeouts.backendRequest` bounds each attempt, `timeouts.request`
//!    2–4 as a whole: expiry before the response head answers 504, after
//!    it cuts the response body ([`super::deadline`]).
//! 5. **response headers**: `ResponseHeaderModifier`, on every answer of
//!    the rule.
//!
//! Whatever the path, the answer's gRPC status is counted
//! ([`super::grpc`]).

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use fedmesh_proto::routes::{
    Backend, BackendTarget, FaultInjection, FaultRef, RouteTable, Rule, choose_backend,
};
use http::{Request, Response, StatusCode};
use tracing::debug;

use super::attempts::Attempts;
use super::body::{RequestBody, boxed};
use super::deadline::Deadline;
use super::headers::{is_idempotent, strip_gateway};
use super::reply::status;
use super::retry::{Outcome, may_resend, retryable};
use super::{Body, fault, grpc};
use crate::egress::Egress;
use crate::metrics::HTTP_NO_CLUSTER;
use crate::select::Rng;
use crate::state::{GatewayState, Import, Listener, ServiceKey};
use crate::wire::Route;

/// An answer and the cluster that gave it ([`HTTP_NO_CLUSTER`]: this
/// gateway).
type Answer = (String, Response<Body>);

/// What the routes make of one request.
#[derive(Debug)]
pub(super) enum Plan<'a> {
    /// No route governs it: the listener's service, as without routes.
    Plain,
    /// This gateway answers it at once.
    Refuse(StatusCode, &'static str),
    /// A rule governs it.
    Rule(Applied<'a>),
}

/// A matched rule and where it sends this request.
#[derive(Debug)]
pub(super) struct Applied<'a> {
    /// The rule.
    pub(super) rule: &'a Rule,
    /// Its fault, if it has one.
    pub(super) fault: Option<&'a FaultInjection>,
    /// The chosen backend's service.
    pub(super) import: &'a Import,
    /// Its targets as a listener would choose them: the backend's
    /// service and port, pinned to a cluster for a cluster's copy.
    pub(super) listener: Listener,
}

/// Answers one request: through its rule when a route governs it, else
/// as the listener's service.
pub(super) async fn answer(
    egress: &Egress,
    state: &GatewayState,
    listener: &Listener,
    import: &Import,
    route: &Route,
    (head, mut body): (Request<()>, RequestBody),
    tried: &AtomicU32,
) -> Answer {
    let roll = roll(&mut Rng::new());
    let (cluster, response) = match plan(state, listener, &head, roll) {
        Plan::Plain => {
            let attempts = Attempts::new(egress, state, import, listener, route, tried);
            once(&attempts, &head, &mut body).await.1
        }
        Plan::Refuse(code, text) => {
            debug!(%code, text, "a route answers the request");
            (HTTP_NO_CLUSTER.to_string(), status(code, text))
        }
        Plan::Rule(applied) => {
            ruled(egress, state, &listener.key, &applied, (head, body), tried).await
        }
    };
    let response = grpc::observe(&egress.metrics, &listener.key, &cluster, response);
    (cluster, response)
}

/// Stage 1: the rule for a request on `listener`, with its backend chosen
/// by `roll` (uniform over `u64`).
pub(super) fn plan<'a>(
    state: &'a GatewayState,
    listener: &Listener,
    head: &Request<()>,
    roll: u64,
) -> Plan<'a> {
    if listener.pinned.is_some() || listener.endpoint.is_some() {
        return Plan::Plain;
    }
    let Some(table) = state.routes.table(&listener.key) else {
        return Plan::Plain;
    };
    if !governs(table, &listener.key.1, listener.port) {
        return Plan::Plain;
    }
    let uri = head.uri();
    let found = table.find(
        listener.port,
        head.method(),
        uri.path(),
        uri.query(),
        head.headers(),
    );
    let Some(matched) = found else {
        return Plan::Refuse(StatusCode::NOT_FOUND, "no route rule matches the request");
    };
    let fault = match matched.fault {
        FaultRef::None => None,
        FaultRef::Found(f) => Some(f),
        FaultRef::Missing => {
            let text = "the route rule's FaultInjection does not exist";
            return Plan::Refuse(StatusCode::INTERNAL_SERVER_ERROR, text);
        }
    };
    let Some(backend) = choose_backend(&matched.rule.backends, roll) else {
        let text = "the route rule has no backend with a weight";
        return Plan::Refuse(StatusCode::INTERNAL_SERVER_ERROR, text);
    };
    match resolve(state, listener, backend) {
        Ok((import, listener)) => Plan::Rule(Applied {
            rule: matched.rule,
            fault,
            import,
            listener,
        }),
        Err(text) => Plan::Refuse(StatusCode::INTERNAL_SERVER_ERROR, text),
    }
}

/// Whether a route of `table` is bound to `service`'s `port` (a route
/// bound to another port leaves this one as without routes).
fn governs(table: &RouteTable, service: &str, port: u16) -> bool {
    table.routes().iter().any(|r| {
        r.parents
            .iter()
            .any(|p| p.service == service && p.port.is_none_or(|p| p == port))
    })
}

/// The import and listener a backend names: its service (in the route's
/// namespace, the listener's), its port (default: the request's), and for
/// a cluster's copy that cluster as the only target.
fn resolve<'a>(
    state: &'a GatewayState,
    listener: &Listener,
    backend: &Backend,
) -> Result<(&'a Import, Listener), &'static str> {
    let (service, pinned) = match &backend.target {
        BackendTarget::Global { service } => (service, None),
        BackendTarget::Cluster { cluster, service } => (service, Some(cluster.clone())),
    };
    let key: ServiceKey = (listener.key.0.clone(), service.clone());
    let import = state
        .imports
        .get(&key)
        .ok_or("the route's backend service is not imported here")?;
    let port = backend.port.unwrap_or(listener.port);
    if !import.ports.iter().any(|(_, p)| *p == port) {
        return Err("the route's backend service has no such port");
    }
    let listener = Listener {
        key,
        port,
        pinned,
        endpoint: None,
    };
    Ok((import, listener))
}

/// Stages 2–5 for a request a rule governs.
async fn ruled(
    egress: &Egress,
    state: &GatewayState,
    client_key: &ServiceKey,
    applied: &Applied<'_>,
    (mut head, body): (Request<()>, RequestBody),
    tried: &AtomicU32,
) -> Answer {
    let rule = applied.rule;
    let l = &applied.listener;
    let route = Route::new(&l.key.0, &l.key.1, l.port);
    let attempts = Attempts::new(egress, state, applied.import, l, &route, tried)
        .per_try(rule.timeouts.backend_request);
    let tries = Tries {
        egress,
        attempts: &attempts,
        rule,
        target: &l.key,
        client: client_key,
    };
    let served = async {
        if let Some(fault) = applied.fault {
            let mut rng = Rng::new();
            let aborted = fault::inject(fault, client_key, &egress.metrics, &mut rng).await;
            if let Some(code) = aborted {
                return (HTTP_NO_CLUSTER.to_string(), status(code, "fault injected"));
            }
        }
        if let Some(modifier) = &rule.request_headers {
            modifier.apply(head.headers_mut());
            // A route cannot speak for the gateway: `fedmesh-*` headers
            // are the mesh's own, between gateways.
            strip_gateway(head.headers_mut());
        }
        tries.run(&head, body).await
    };
    let (cluster, mut response) = within(rule.timeouts.request, served).await;
    if let Some(modifier) = &rule.response_headers {
        modifier.apply(response.headers_mut());
    }
    (cluster, response)
}

/// `served` under a rule's `timeouts.request`: 504 when it expires before
/// the response head, the body cut when it expires after.
async fn within(limit: Option<Duration>, served: impl Future<Output = Answer>) -> Answer {
    let Some(limit) = limit else {
        return served.await;
    };
    let deadline = tokio::time::Instant::now() + limit;
    match tokio::time::timeout_at(deadline, served).await {
        Ok((cluster, r)) => (cluster, r.map(|b| boxed(Deadline::new(b, deadline)))),
        Err(_) => {
            let text = "the route's request timeout expired";
            let answer = status(StatusCode::GATEWAY_TIMEOUT, text);
            (HTTP_NO_CLUSTER.to_string(), answer)
        }
    }
}

/// Stage 4: the tries of one request.
struct Tries<'a> {
    egress: &'a Egress,
    attempts: &'a Attempts<'a>,
    rule: &'a Rule,
    /// The backend's service (whose retry budget is spent).
    target: &'a ServiceKey,
    /// The service the client called (whose counters move).
    client: &'a ServiceKey,
}

impl Tries<'_> {
    /// The first answer that is not retried.
    async fn run(&self, head: &Request<()>, mut body: RequestBody) -> Answer {
        let budgets = &self.egress.retry_budgets;
        let metrics = &self.egress.metrics;
        budgets.deposit(self.target, Instant::now());
        let retry = self.rule.retry.as_ref();
        let idempotent = is_idempotent(head.method());
        let mut left = retry.map_or(0, |r| r.attempts);
        loop {
            let (outcome, answer) = once(self.attempts, head, &mut body).await;
            let Some(retry) = retry else {
                return answer;
            };
            let again = retryable(retry, outcome) && may_resend(idempotent, outcome);
            if left == 0 || !again || !body.can_replay() {
                return answer;
            }
            if !budgets.try_retry(self.target, Instant::now()) {
                debug!("the retry budget is spent; answering without a retry");
                metrics.http_retry_budget_exhausted(self.client);
                return answer;
            }
            left -= 1;
            metrics.http_retry(self.client);
            // The answer that is retried goes nowhere (its permit with it).
            drop(answer);
            if let Some(backoff) = retry.backoff {
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// One run of the attempts, and how it ended for the retry policy.
async fn once(
    attempts: &Attempts<'_>,
    head: &Request<()>,
    body: &mut RequestBody,
) -> (Outcome, Answer) {
    match attempts.run(head, body).await {
        Ok((cluster, response)) => {
            let outcome = Outcome::of(response.status(), response.headers());
            (outcome, (cluster, response))
        }
        Err(_) if attempts.timed_out() => {
            let text = "the route's backendRequest timeout expired";
            let answer = status(StatusCode::GATEWAY_TIMEOUT, text);
            (Outcome::TimedOut, (HTTP_NO_CLUSTER.to_string(), answer))
        }
        Err(error) => {
            debug!(%error, "no target can serve the request");
            let answer = status(StatusCode::SERVICE_UNAVAILABLE, "no target can serve");
            (Outcome::NoTarget, (HTTP_NO_CLUSTER.to_string(), answer))
        }
    }
}

/// A roll uniform over `u64` for [`choose_backend`] (53 random bits, as
/// `Rng::unit` gives).
fn roll(rng: &mut Rng) -> u64 {
    // (0, 1] scaled to u64; the top end saturates to u64::MAX.
    (rng.unit() * u64::MAX as f64) as u64
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
