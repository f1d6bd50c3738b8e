//! HTTP routes: Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`)
//! bound to Services (GAMMA) and fedmesh's `FaultInjection`
//! (`fedmesh.io/v1alpha1`), shared by the control plane that reads them
//! and the gateway that applies them (DESIGN.md, HTTP-aware services).
//!
//! Data flows in one direction:
//!
//! 1. a document (YAML or JSON, as a `serde_json::Value`) is read into
//!    loose serde shapes (the private `spec` module) that keep unknown
//!    fields, so that they can be reported;
//! 2. [`parse_route`] / [`parse_fault`] check it and return the validated
//!    [`HttpRoute`] / [`FaultInjection`] or every problem with its field
//!    path ([`RouteError`]);
//! 3. [`RouteTable::build`] compiles the routes bound to one service, in
//!    Gateway API precedence order, and [`RouteTable::find`] gives a
//!    request's rule;
//! 4. [`choose_backend`], [`HeaderModifier::apply`] and
//!    [`FaultInjection::decide`] say what the rule does to the request.
//!
//! On the wire a route is its JSON document ([`document`], read back with
//! [`RouteObject::try_from`]).
//!
//! Nothing here does I/O or draws random numbers: the caller passes them,
//! so every decision is a pure function with unit tests. Start reading at
//! [`RouteTable`].

mod apply;
mod model;
mod spec;
mod table;
mod validate;
mod wire;

#[cfg(test)]
mod tests;

pub use apply::{FaultDecision, choose_backend};
pub use model::{
    ALL, Abort, Backend, BackendTarget, Delay, FaultInjection, Fraction, HeaderMatch,
    HeaderModifier, HttpRoute, PERCENT, ParentRef, PathMatch, Pattern, QueryMatch, Retry,
    RouteMatch, Rule, Timeouts, ValueMatch,
};
pub use table::{FaultRef, Matched, RouteTable};
pub use validate::{
    FieldProblem, FieldProblems, MAX_REGEX_LEN, REGEX_SIZE_LIMIT, Reason, RouteError, parse_fault,
    parse_gateway_duration, parse_route,
};
pub use wire::{FAULT_KIND, ROUTE_KIND, RouteObject, WireError, document};

/// `apiVersion` of `HTTPRoute`.
pub const ROUTE_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// `apiVersion` of `FaultInjection`.
pub const FAULT_API_VERSION: &str = "fedmesh.io/v1alpha1";

/// Whether `s` is a lowercase RFC 1123 label (cluster and service names).
pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
