//! The documents as written: `HTTPRoute` (`gateway.networking.k8s.io/v1`)
//! and `FaultInjection` (`fedmesh.io/v1alpha1`), read with serde and not
//! yet checked. Every object keeps the fields it does not know in `extra`,
//! so that [`super::validate`] reports them as unsupported instead of
//! dropping them. Numbers are read wide (`i64`, `f64`) so that a value out
//! of range is reported with its path, not as a serde error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Fields an object has that fedmesh does not read.
pub(super) type Extra = BTreeMap<String, Value>;

/// `metadata`: only what routes use; labels and the rest are allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    pub(super) name: Option<String>,
    pub(super) namespace: Option<String>,
    /// RFC 3339 (Kubernetes writes it in UTC, `Z`).
    pub(super) creation_timestamp: Option<String>,
}

/// An `HTTPRoute` document.
#[derive(Debug, Deserialize)]
pub(super) struct RouteDoc {
    #[serde(default)]
    pub(super) metadata: Meta,
    pub(super) spec: Option<RouteSpecDoc>,
}

/// `HTTPRoute.spec`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RouteSpecDoc {
    #[serde(default)]
    pub(super) parent_refs: Vec<ParentRefDoc>,
    #[serde(default)]
    pub(super) hostnames: Vec<String>,
    #[serde(default)]
    pub(super) rules: Vec<RuleDoc>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `spec.parentRefs[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ParentRefDoc {
    pub(super) group: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) section_name: Option<String>,
    pub(super) port: Option<i64>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `spec.rules[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RuleDoc {
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) matches: Vec<MatchDoc>,
    #[serde(default)]
    pub(super) filters: Vec<FilterDoc>,
    #[serde(default)]
    pub(super) backend_refs: Vec<BackendRefDoc>,
    pub(super) timeouts: Option<TimeoutsDoc>,
    pub(super) retry: Option<RetryDoc>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `rules[].matches[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MatchDoc {
    pub(super) path: Option<PathMatchDoc>,
    #[serde(default)]
    pub(super) headers: Vec<ValueMatchDoc>,
    #[serde(default)]
    pub(super) query_params: Vec<ValueMatchDoc>,
    pub(super) method: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `matches[].path`.
#[derive(Debug, Deserialize)]
pub(super) struct PathMatchDoc {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) value: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `matches[].headers[]` and `matches[].queryParams[]`.
#[derive(Debug, Deserialize)]
pub(super) struct ValueMatchDoc {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    pub(super) value: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `rules[].filters[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FilterDoc {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) request_header_modifier: Option<HeaderModifierDoc>,
    pub(super) response_header_modifier: Option<HeaderModifierDoc>,
    pub(super) extension_ref: Option<ExtensionRefDoc>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `filters[].requestHeaderModifier` / `responseHeaderModifier`.
#[derive(Debug, Deserialize)]
pub(super) struct HeaderModifierDoc {
    #[serde(default)]
    pub(super) set: Vec<HeaderValueDoc>,
    #[serde(default)]
    pub(super) add: Vec<HeaderValueDoc>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// One `{name, value}` of a header modifier.
#[derive(Debug, Deserialize)]
pub(super) struct HeaderValueDoc {
    pub(super) name: Option<String>,
    pub(super) value: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `filters[].extensionRef`.
#[derive(Debug, Deserialize)]
pub(super) struct ExtensionRefDoc {
    pub(super) group: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `rules[].backendRefs[]`.
#[derive(Debug, Deserialize)]
pub(super) struct BackendRefDoc {
    pub(super) group: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) weight: Option<i64>,
    #[serde(default)]
    pub(super) filters: Vec<Value>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `rules[].timeouts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TimeoutsDoc {
    pub(super) request: Option<String>,
    pub(super) backend_request: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `rules[].retry`.
#[derive(Debug, Deserialize)]
pub(super) struct RetryDoc {
    pub(super) attempts: Option<i64>,
    pub(super) backoff: Option<String>,
    #[serde(default)]
    pub(super) codes: Vec<i64>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// A `FaultInjection` document.
#[derive(Debug, Deserialize)]
pub(super) struct FaultDoc {
    #[serde(default)]
    pub(super) metadata: Meta,
    pub(super) spec: Option<FaultSpecDoc>,
}

/// `FaultInjection.spec`.
#[derive(Debug, Deserialize)]
pub(super) struct FaultSpecDoc {
    pub(super) delay: Option<DelayDoc>,
    pub(super) abort: Option<AbortDoc>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `spec.delay`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DelayDoc {
    pub(super) fixed_delay: Option<String>,
    pub(super) percentage: Option<f64>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

/// `spec.abort`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AbortDoc {
    pub(super) http_status: Option<i64>,
    pub(super) percentage: Option<f64>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}
