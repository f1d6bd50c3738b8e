//! Routes on the wire (`RouteDocument` in `gateway.proto`): the control
//! plane sends each valid document as JSON ([`document`]); the gateway
//! reads it back and checks it again ([`RouteObject::try_from`]) with the
//! same rules, so both sides agree on what a route means.

use serde_json::Value;

use super::model::{FaultInjection, HttpRoute};
use super::validate::{RouteError, parse_fault, parse_route};
use crate::v1;

/// `kind` of an `HTTPRoute` document.
pub const ROUTE_KIND: &str = "HTTPRoute";
/// `kind` of a `FaultInjection` document.
pub const FAULT_KIND: &str = "FaultInjection";

/// A route document read back from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteObject {
    /// An `HTTPRoute`.
    Route(HttpRoute),
    /// A `FaultInjection`.
    Fault(FaultInjection),
}

/// Why a `RouteDocument` was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// `json` is not JSON.
    #[error("route document {namespace}/{name} is not JSON: {source}")]
    Json {
        /// The document's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A kind this release does not know (a newer control plane's).
    #[error(
        "route document {namespace}/{name} has kind {kind:?}, which this gateway does not know"
    )]
    UnknownKind {
        /// The kind.
        kind: String,
        /// The document's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The document does not validate here.
    #[error("{kind} {namespace}/{name}: {source}")]
    Invalid {
        /// The kind.
        kind: &'static str,
        /// The document's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The problems.
        #[source]
        source: RouteError,
    },
}

/// The wire form of a valid document of `kind` (see [`ROUTE_KIND`],
/// [`FAULT_KIND`]).
pub fn document(kind: &str, namespace: &str, name: &str, doc: &Value) -> v1::RouteDocument {
    v1::RouteDocument {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        json: doc.to_string().into_bytes(),
    }
}

impl TryFrom<&v1::RouteDocument> for RouteObject {
    type Error = WireError;

    fn try_from(d: &v1::RouteDocument) -> Result<Self, WireError> {
        let (namespace, name) = (d.namespace.clone(), d.name.clone());
        let value: Value = serde_json::from_slice(&d.json).map_err(|source| WireError::Json {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let invalid = |kind, source| WireError::Invalid {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        };
        match d.kind.as_str() {
            ROUTE_KIND => parse_route(&value)
                .map(RouteObject::Route)
                .map_err(|e| invalid(ROUTE_KIND, e)),
            FAULT_KIND => parse_fault(&value)
                .map(RouteObject::Fault)
                .map_err(|e| invalid(FAULT_KIND, e)),
            other => Err(WireError::UnknownKind {
                kind: other.to_string(),
                namespace,
                name,
            }),
        }
    }
}
