//! The kinds the fake API server serves and the API paths that name them
//! (`/api/v1/…`, `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/NAME[/status]]`).

use serde_json::Value;

/// The kinds the fake serves (and a test names to read or delete one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// core/v1 Secret.
    Secret,
    /// multicluster.x-k8s.io/v1alpha1 ServiceExport.
    ServiceExport,
    /// multicluster.x-k8s.io/v1alpha1 ServiceImport.
    ServiceImport,
    /// gateway.networking.k8s.io/v1 HTTPRoute.
    HttpRoute,
    /// fedmesh.io/v1alpha1 FaultInjection.
    FaultInjection,
}

impl Kind {
    pub(super) fn of(object: &Value) -> Option<Kind> {
        match object["kind"].as_str()? {
            "Service" => Some(Kind::Service),
            "EndpointSlice" => Some(Kind::EndpointSlice),
            "Secret" => Some(Kind::Secret),
            "ServiceExport" => Some(Kind::ServiceExport),
            "ServiceImport" => Some(Kind::ServiceImport),
            "HTTPRoute" => Some(Kind::HttpRoute),
            "FaultInjection" => Some(Kind::FaultInjection),
            _ => None,
        }
    }

    pub(super) fn api_version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Secret => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::ServiceExport | Kind::ServiceImport => "multicluster.x-k8s.io/v1alpha1",
            Kind::HttpRoute => "gateway.networking.k8s.io/v1",
            Kind::FaultInjection => "fedmesh.io/v1alpha1",
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
            Kind::ServiceExport => "ServiceExport",
            Kind::ServiceImport => "ServiceImport",
            Kind::HttpRoute => "HTTPRoute",
            Kind::FaultInjection => "FaultInjection",
        }
    }

    /// A kind of the MCS API, served only while its CRDs are installed.
    pub(super) fn is_mcs(self) -> bool {
        matches!(self, Kind::ServiceExport | Kind::ServiceImport)
    }

    /// A route kind, served only while its CRDs are installed.
    pub(super) fn is_route(self) -> bool {
        matches!(self, Kind::HttpRoute | Kind::FaultInjection)
    }

    /// Has a `/status` subresource here (the MCS kinds).
    pub(super) fn has_status(self) -> bool {
        self.is_mcs()
    }
}

/// The parts of an API path: `/api/v1/[namespaces/NS/]services[/NAME]`.
pub(super) struct Target {
    pub(super) kind: Kind,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    /// The path ends in `/status` (the status subresource).
    pub(super) status: bool,
}

pub(super) fn target(path: &str) -> Option<Target> {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/discovery.k8s.io/v1/"))
        .or_else(|| path.strip_prefix("/apis/multicluster.x-k8s.io/v1alpha1/"))
        .or_else(|| path.strip_prefix("/apis/gateway.networking.k8s.io/v1/"))
        .or_else(|| path.strip_prefix("/apis/fedmesh.io/v1alpha1/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, rest) = match parts.as_slice() {
        ["namespaces", ns, rest @ ..] => (Some((*ns).to_string()), rest),
        rest => (None, rest),
    };
    let (kind, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_string()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_string()), true),
        _ => return None,
    };
    let mcs = path.starts_with("/apis/multicluster.x-k8s.io/");
    let kind = match kind {
        "services" if path.starts_with("/api/v1/") => Kind::Service,
        "secrets" if path.starts_with("/api/v1/") => Kind::Secret,
        "endpointslices" if path.starts_with("/apis/discovery") => Kind::EndpointSlice,
        "serviceexports" if mcs => Kind::ServiceExport,
        "serviceimports" if mcs => Kind::ServiceImport,
        "httproutes" if path.starts_with("/apis/gateway.networking.k8s.io/") => Kind::HttpRoute,
        "faultinjections" if path.starts_with("/apis/fedmesh.io/") => Kind::FaultInjection,
        _ => return None,
    };
    // Only custom resources have a status subresource here.
    if status && !kind.has_status() {
        return None;
    }
    Some(Target {
        kind,
        namespace,
        name,
        status,
    })
}
