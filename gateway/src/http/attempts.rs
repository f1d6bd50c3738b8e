//! Stages 3–4 of a request at the client's gateway: its targets, chosen
//! as a connection's are ([`crate::egress::choose_targets`]: locality,
//! affinity, weights, spill-over) but per request, then tried in order,
//! each under its target's permit (`maxConnectionsPerTarget` counts
//! requests in flight here). A target that fails before any response byte
//! (connect failure, reset, a 503 whose `fedmesh-reason` says the peer has
//! nothing) passes the request to the next, unless it may have reached an
//! endpoint and the method is not idempotent, or its body is gone. An
//! idempotent request's response is held for a moment
//! ([`super::settle`]): if it breaks then, the next target is tried.
//! Failures and 5xx answers feed the cluster's outlier record.
//!
//! [`super::policy`] runs these once per try of a request.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tracing::{debug, warn};

use super::Body;
use super::body::{Held, RequestBody, boxed, full};
use super::headers::{is_idempotent, strip_gateway, strip_hop_by_hop};
use super::remote::{self, Hop};
use super::settle::{RESPONSE_HOLD, settle};
use crate::dial;
use crate::egress::{Egress, attempt_feedback, choose_targets};
use crate::error::AttemptError;
use crate::http::endpoints::EndpointError;
use crate::select::Rng;
use crate::state::{GatewayState, Import, Listener, Target};
use crate::wire::{self, Refusal, Route};

/// What every attempt of one request shares.
pub(super) struct Attempts<'a> {
    egress: &'a Egress,
    state: &'a GatewayState,
    import: &'a Import,
    listener: &'a Listener,
    route: &'a Route,
    /// The rule's `timeouts.backendRequest`: the most one attempt may take.
    per_try: Option<Duration>,
    /// Set when an attempt of the last run hit `per_try`.
    timed_out: AtomicBool,
    /// Targets tried so far for the request, over every retry (spans and
    /// access log lines).
    tried: &'a AtomicU32,
}

/// Why one attempt failed, and whether the request may have reached an
/// endpoint (then only an idempotent one goes on).
struct Failed {
    error: AttemptError,
    reached: bool,
}

impl<'a> Attempts<'a> {
    /// The attempts of a request to `import` (its service port in
    /// `route`), its targets chosen as for `listener`.
    pub(super) fn new(
        egress: &'a Egress,
        state: &'a GatewayState,
        import: &'a Import,
        listener: &'a Listener,
        route: &'a Route,
        tried: &'a AtomicU32,
    ) -> Self {
        Self {
            egress,
            state,
            import,
            listener,
            route,
            per_try: None,
            timed_out: AtomicBool::new(false),
            tried,
        }
    }

    /// Each attempt ends after `limit` (a rule's `backendRequest`): it
    /// fails, and the request goes to no further target in this run.
    pub(super) fn per_try(self, limit: Option<Duration>) -> Self {
        Self {
            per_try: limit,
            ..self
        }
    }

    /// Whether the last [`Attempts::run`] ended on the per-try limit.
    pub(super) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Stages 3–4: the first target's answer, with its cluster.
    pub(super) async fn run(
        &self,
        head: &Request<()>,
        body: &mut RequestBody,
    ) -> Result<(String, Response<Body>), AttemptError> {
        self.timed_out.store(false, Ordering::Relaxed);
        let targets = choose_targets(
            self.egress,
            self.state,
            self.import,
            self.listener,
            &mut Rng::new(),
        );
        let remote_clusters = self.import.targets.iter().filter(|t| !t.local).count();
        let idempotent = is_idempotent(head.method());
        let mut last = AttemptError::NoEndpoint;
        for target in targets {
            let Some(permit) = self.egress.limits.acquire(&target.cluster) else {
                self.failed(target, &AttemptError::AtCapacity, remote_clusters);
                last = AttemptError::AtCapacity;
                continue;
            };
            let attempt_body = match (body.is_empty(), body.take()) {
                (true, _) => None,
                (false, Some(b)) => Some(b),
                // A streamed body went to a target already.
                (false, None) => break,
            };
            let answer = match self.limited(target, head, attempt_body).await {
                Ok(response) => self.judge(target, response, remote_clusters),
                Err(failed) => Err(failed),
            };
            // Nothing has gone to the client yet: an idempotent request
            // whose response breaks right away may still go elsewhere.
            let answer = match answer {
                Ok(response) if idempotent && body.can_replay() => held(response).await,
                other => other,
            };
            let failed = match answer {
                Ok(response) => {
                    let response = response.map(|b| boxed(Held::new(b, permit)));
                    return Ok((target.cluster.clone(), response));
                }
                Err(failed) => failed,
            };
            self.failed(target, &failed.error, remote_clusters);
            let go_on = may_go_on(&failed, idempotent, body.can_replay());
            last = failed.error;
            if !go_on || self.timed_out() {
                break;
            }
        }
        Err(last)
    }

    /// One attempt under the per-try limit: on expiry it failed, after it
    /// may have reached an endpoint.
    async fn limited(
        &self,
        target: &Target,
        head: &Request<()>,
        body: Option<Body>,
    ) -> Result<Response<Body>, Failed> {
        let Some(limit) = self.per_try else {
            return self.one(target, head, body).await;
        };
        match tokio::time::timeout(limit, self.one(target, head, body)).await {
            Ok(answer) => answer,
            Err(_) => {
                self.timed_out.store(true, Ordering::Relaxed);
                Err(Failed {
                    error: AttemptError::Timeout {
                        addr: target.cluster.clone(),
                    },
                    reached: true,
                })
            }
        }
    }

    /// One attempt: a local endpoint or a peer's ingress.
    async fn one(
        &self,
        target: &Target,
        head: &Request<()>,
        body: Option<Body>,
    ) -> Result<Response<Body>, Failed> {
        self.tried.fetch_add(1, Ordering::Relaxed);
        if !target.local {
            let hop = Hop {
                egress: self.egress,
                target,
            };
            let deadline = tokio::time::Instant::now() + self.egress.connect_timeout;
            return remote::send(&hop, self.route, head, body, deadline)
                .await
                .map(|r| r.map(boxed))
                .map_err(|error| {
                    let reached = match &error {
                        AttemptError::Transport(e) => !e.is_before_request(),
                        _ => false,
                    };
                    Failed { error, reached }
                });
        }
        self.local(head, body).await.map(|r| r.map(boxed))
    }

    /// A local endpoint, through the endpoint pool.
    async fn local(
        &self,
        head: &Request<()>,
        body: Option<Body>,
    ) -> Result<Response<Incoming>, Failed> {
        let key = &self.import.key;
        let unreachable = |error| Failed {
            error,
            reached: false,
        };
        let export = self
            .state
            .exports
            .get(key)
            .ok_or_else(|| unreachable(AttemptError::NoEndpoint))?;
        let candidates = dial::candidates(export, self.route.port);
        let protocol = self.state.export_protocol(key, self.route.port);
        let mut request = Request::new(body.unwrap_or_else(|| full(Default::default())));
        *request.method_mut() = head.method().clone();
        *request.uri_mut() = head.uri().clone();
        *request.headers_mut() = head.headers().clone();
        let sent = self.egress.endpoints.send(
            &self.egress.health,
            &candidates,
            protocol,
            request,
            self.egress.connect_timeout,
        );
        sent.await.map_err(|e| match e {
            EndpointError::Unreachable(error) => unreachable(error),
            EndpointError::NotSent(source) => {
                unreachable(AttemptError::BadAnswer(source.to_string()))
            }
            EndpointError::Failed(source) => Failed {
                error: AttemptError::BadAnswer(source.to_string()),
                reached: true,
            },
        })
    }

    /// Whether an answer is the target's (returned to the client) or a
    /// peer ingress's refusal (the next target is tried); a 5xx counts
    /// against the cluster as a failed connect would.
    fn judge(
        &self,
        target: &Target,
        mut response: Response<Body>,
        remote_clusters: usize,
    ) -> Result<Response<Body>, Failed> {
        if target.local {
            strip_hop_by_hop(response.headers_mut());
            return Ok(response);
        }
        if let Some(refusal) = refusal(&response) {
            return Err(Failed {
                error: AttemptError::Refused(refusal),
                reached: false,
            });
        }
        if from_connect_only_ingress(&response) {
            let error = "the peer's ingress takes CONNECT streams only (an earlier release)";
            return Err(Failed {
                error: AttemptError::BadAnswer(error.into()),
                reached: false,
            });
        }
        let ok = !response.status().is_server_error();
        let health = &self.egress.health;
        if health.connect_result(&target.cluster, ok, remote_clusters, Instant::now()) {
            warn!(cluster = %target.cluster, "ejecting a cluster after consecutive 5xx answers");
            self.egress.metrics.ejection(&target.cluster);
        }
        strip_gateway(response.headers_mut());
        Ok(response)
    }

    /// Counts a failed attempt and tells health.
    fn failed(&self, target: &Target, error: &AttemptError, remote_clusters: usize) {
        debug!(cluster = %target.cluster, %error, "request attempt failed");
        let key = &self.import.key;
        let metrics = &self.egress.metrics;
        metrics.egress_attempt_failed(key, &target.cluster, error.label());
        attempt_feedback(self.egress, target, error, remote_clusters);
    }
}

/// Whether a request whose attempt `failed` goes to the next target:
/// the failure allows it, the body can be sent again, and either nothing
/// reached an endpoint or the method is idempotent (RFC 9110 §9.2.2).
fn may_go_on(failed: &Failed, idempotent: bool, replayable: bool) -> bool {
    failed.error.may_try_next() && replayable && (!failed.reached || idempotent)
}

/// `response` once its start has settled ([`settle`]).
async fn held(response: Response<Body>) -> Result<Response<Body>, Failed> {
    settle(response, RESPONSE_HOLD)
        .await
        .map_err(|error| Failed {
            error: AttemptError::BadAnswer(format!(
                "response broke before it was sent on: {error}"
            )),
            reached: true,
        })
}

/// A peer ingress's refusal: a status it answers with and a reason header
/// naming a [`Refusal`] (endpoints' own `fedmesh-*` headers are dropped by
/// the ingress, so only a gateway says this).
fn refusal(response: &Response<Body>) -> Option<Refusal> {
    let reason = response.headers().get(wire::REASON_HEADER)?.to_str().ok()?;
    let refusal = Refusal::from_reason(reason)?;
    (response.status().as_u16() == refusal.http_status()).then_some(refusal)
}

/// Whether an ingress of an earlier release answered: it refuses every
/// request stream with 405 and `Allow: CONNECT`, before any endpoint saw
/// it. (The control plane keeps a port TCP until every exporter says HTTP;
/// this covers an ingress older than its control plane.)
fn from_connect_only_ingress(response: &Response<Body>) -> bool {
    response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response
            .headers()
            .get(header::ALLOW)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"CONNECT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::reply::status;
    use http::HeaderValue;

    fn failed(error: AttemptError, reached: bool) -> Failed {
        Failed { error, reached }
    }

    #[test]
    fn a_request_that_reached_no_endpoint_goes_on_whatever_its_method() {
        let refused = failed(AttemptError::Refused(Refusal::EndpointFailed), false);
        assert!(
            may_go_on(&refused, false, true),
            "a POST goes on after a refusal"
        );
        assert!(may_go_on(&refused, true, true));
        assert!(
            !may_go_on(&refused, true, false),
            "not once its body is gone"
        );
        let gone = failed(AttemptError::ClientGone, false);
        assert!(!may_go_on(&gone, true, true), "not for a client that left");
    }

    #[test]
    fn a_request_that_may_have_reached_an_endpoint_goes_on_only_if_idempotent() {
        let broke = failed(AttemptError::BadAnswer("reset".into()), true);
        assert!(may_go_on(&broke, true, true), "a GET goes on");
        assert!(!may_go_on(&broke, false, true), "a POST does not");
    }

    #[test]
    fn only_a_gateways_reason_with_its_own_status_is_a_refusal() {
        let answer = |code: u16, reason: Option<&'static str>| {
            let mut r = status(StatusCode::from_u16(code).unwrap(), "x");
            if let Some(reason) = reason {
                r.headers_mut()
                    .insert(wire::REASON_HEADER, HeaderValue::from_static(reason));
            }
            r
        };
        let no_endpoint = answer(503, Some("endpoint_failed"));
        assert_eq!(refusal(&no_endpoint), Some(Refusal::EndpointFailed));
        assert_eq!(refusal(&answer(503, None)), None, "an endpoint's own 503");
        assert_eq!(refusal(&answer(200, Some("endpoint_failed"))), None);
        assert_eq!(refusal(&answer(503, Some("made_up"))), None);
        let forbidden = answer(403, Some("not_exported_to_peer"));
        assert_eq!(refusal(&forbidden), Some(Refusal::NotExportedToYou));
    }

    #[test]
    fn an_earlier_releases_405_is_told_from_an_endpoints() {
        let mut old = status(StatusCode::METHOD_NOT_ALLOWED, "x");
        assert!(!from_connect_only_ingress(&old), "an endpoint's own 405");
        old.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("CONNECT"));
        assert!(from_connect_only_ingress(&old));
    }
}
