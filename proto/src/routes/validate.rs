//! Document → validated route: [`parse_route`] and [`parse_fault`] check a
//! whole document and return every problem at once, each with the path of
//! the field (`spec.rules[1].matches[0].path.value`), so that one `fedctl
//! check` shows all that must be fixed. Fields fedmesh does not implement
//! are reported as unsupported: a route that silently lost a filter would
//! route differently from what its author wrote.
//!
//! The checks of one part of a route live in [`rule`]; the shared
//! vocabulary (errors, the problem collector, durations, regexes) here.

mod rule;

use std::fmt;
use std::time::Duration;

use regex::RegexBuilder;
use serde_json::Value;

use super::model::{
    Abort, Delay, FaultInjection, Fraction, HttpRoute, PERCENT, ParentRef, Pattern,
};
use super::spec::{Extra, FaultDoc, Meta, ParentRefDoc, RouteDoc};

/// Longest regular expression source accepted (bytes).
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled size limit of one regular expression (the `regex` crate's
/// `size_limit`): bounds memory and match time of a hostile pattern.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Why a field is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A field or value fedmesh does not implement.
    #[error("is not supported by fedmesh; remove it")]
    Unsupported,
    /// A required field is absent.
    #[error("is required")]
    Missing,
    /// The value is wrong; the text names it and what is expected.
    #[error("{0}")]
    Invalid(String),
}

/// One problem of a document, at a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FieldProblem {
    /// The field, as `spec.rules[1].matches[0].path.value`.
    pub path: String,
    /// What is wrong with it.
    pub reason: Reason,
}

/// Every problem of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblems(pub Vec<FieldProblem>);

impl fmt::Display for FieldProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why a document is not a usable route or fault.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The document does not have the kind's shape (a list where an
    /// object belongs, text where a number belongs).
    #[error("not a valid {kind}: {source}")]
    Document {
        /// `HTTPRoute` or `FaultInjection`.
        kind: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The document has the shape but some fields are wrong.
    #[error("{0}")]
    Invalid(FieldProblems),
}

impl RouteError {
    /// The field problems (one entry without a path for a shape error).
    pub fn problems(&self) -> Vec<FieldProblem> {
        match self {
            RouteError::Invalid(p) => p.0.clone(),
            RouteError::Document { .. } => vec![FieldProblem {
                path: "spec".into(),
                reason: Reason::Invalid(self.to_string()),
            }],
        }
    }
}

/// Collects problems while a document is checked.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<FieldProblem>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, reason: Reason) {
        self.0.push(FieldProblem {
            path: path.into(),
            reason,
        });
    }

    pub(super) fn invalid(&mut self, path: impl Into<String>, why: String) {
        self.add(path, Reason::Invalid(why));
    }

    /// Reports each field of `extra` as unsupported.
    pub(super) fn unsupported(&mut self, path: &str, extra: &Extra) {
        for key in extra.keys() {
            self.add(format!("{path}.{key}"), Reason::Unsupported);
        }
    }

    fn finish<T>(self, value: T) -> Result<T, RouteError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(RouteError::Invalid(FieldProblems(self.0)))
        }
    }
}

/// Checks an `HTTPRoute` document (`gateway.networking.k8s.io/v1`).
///
/// # Errors
///
/// [`RouteError::Document`] when it does not have the shape of one,
/// [`RouteError::Invalid`] with every wrong or unsupported field.
pub fn parse_route(doc: &Value) -> Result<HttpRoute, RouteError> {
    let doc: RouteDoc =
        serde_json::from_value(doc.clone()).map_err(|source| RouteError::Document {
            kind: "HTTPRoute",
            source,
        })?;
    let mut p = Problems::default();
    let (namespace, name) = identity(&doc.metadata, &mut p);
    let Some(spec) = doc.spec else {
        p.add("spec", Reason::Missing);
        return Err(RouteError::Invalid(FieldProblems(p.0)));
    };
    p.unsupported("spec", &spec.extra);
    if !spec.hostnames.is_empty() {
        p.add("spec.hostnames", Reason::Unsupported);
    }
    let parents = parents(&spec.parent_refs, &namespace, &mut p);
    if spec.rules.is_empty() {
        p.add("spec.rules", Reason::Missing);
    }
    let rules = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule::rule(r, &format!("spec.rules[{i}]"), &namespace, &mut p))
        .collect();
    p.finish(HttpRoute {
        namespace,
        name,
        created: doc.metadata.creation_timestamp,
        parents,
        rules,
    })
}

/// `metadata.namespace` (default `default`) and `metadata.name`.
fn identity(meta: &Meta, p: &mut Problems) -> (String, String) {
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        p.add("metadata.name", Reason::Missing);
    }
    (namespace, name)
}

/// The Service parents. Parents of other kinds (a north-south `Gateway`
/// sharing the route) are not fedmesh's and are skipped; a route with no
/// Service parent at all is reported, since it applies to nothing here.
fn parents(refs: &[ParentRefDoc], namespace: &str, p: &mut Problems) -> Vec<ParentRef> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let at = format!("spec.parentRefs[{i}]");
        // Gateway API: a parentRef's group defaults to
        // gateway.networking.k8s.io and its kind to Gateway; GAMMA binds
        // with `group: ""`, `kind: Service`.
        let is_service = r.group.as_deref() == Some("") && r.kind.as_deref() == Some("Service");
        if !is_service {
            continue;
        }
        p.unsupported(&at, &r.extra);
        if r.section_name.is_some() {
            p.add(format!("{at}.sectionName"), Reason::Unsupported);
        }
        if let Some(ns) = r.namespace.as_deref().filter(|ns| *ns != namespace) {
            p.invalid(
                format!("{at}.namespace"),
                format!("{ns:?} is not the route's namespace {namespace:?}; a route binds to a Service in its own namespace"),
            );
        }
        let port = r.port.and_then(|n| port(n, &format!("{at}.port"), p));
        match r.name.as_deref() {
            Some(name) if !name.is_empty() => out.push(ParentRef {
                service: name.to_string(),
                port,
            }),
            _ => p.add(format!("{at}.name"), Reason::Missing),
        }
    }
    if out.is_empty() && !refs.iter().any(|r| r.group.as_deref() == Some("")) {
        p.invalid(
            "spec.parentRefs",
            "no parentRef names a Service (group \"\", kind Service); fedmesh binds routes to Services (GAMMA), so this route applies to nothing".into(),
        );
    }
    out
}

/// A port number 1–65535, or a problem.
pub(super) fn port(n: i64, at: &str, p: &mut Problems) -> Option<u16> {
    match u16::try_from(n) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            p.invalid(at, format!("port {n} is not in 1-65535"));
            None
        }
    }
}

/// Checks a `FaultInjection` document (`fedmesh.io/v1alpha1`).
///
/// # Errors
///
/// As [`parse_route`].
pub fn parse_fault(doc: &Value) -> Result<FaultInjection, RouteError> {
    let doc: FaultDoc =
        serde_json::from_value(doc.clone()).map_err(|source| RouteError::Document {
            kind: "FaultInjection",
            source,
        })?;
    let mut p = Problems::default();
    let (namespace, name) = identity(&doc.metadata, &mut p);
    let Some(spec) = doc.spec else {
        p.add("spec", Reason::Missing);
        return Err(RouteError::Invalid(FieldProblems(p.0)));
    };
    p.unsupported("spec", &spec.extra);
    let delay = spec.delay.as_ref().and_then(|d| {
        p.unsupported("spec.delay", &d.extra);
        let share = share(d.percentage, "spec.delay.percentage", &mut p);
        let fixed = match d.fixed_delay.as_deref() {
            None => {
                p.add("spec.delay.fixedDelay", Reason::Missing);
                None
            }
            Some(text) => duration(text, "spec.delay.fixedDelay", &mut p),
        };
        Some(Delay {
            fixed: fixed?,
            share: share?,
        })
    });
    let abort = spec.abort.as_ref().and_then(|a| {
        p.unsupported("spec.abort", &a.extra);
        let share = share(a.percentage, "spec.abort.percentage", &mut p);
        let status = match a.http_status {
            None => {
                p.add("spec.abort.httpStatus", Reason::Missing);
                None
            }
            Some(code) => status(code, "spec.abort.httpStatus", &mut p),
        };
        Some(Abort {
            status: status?,
            share: share?,
        })
    });
    if spec.delay.is_none() && spec.abort.is_none() {
        p.invalid(
            "spec",
            "has neither delay nor abort; give at least one".into(),
        );
    }
    p.finish(FaultInjection {
        namespace,
        name,
        delay,
        abort,
    })
}

/// A percentage 0–100 with up to four decimals (default 100).
fn share(percentage: Option<f64>, at: &str, p: &mut Problems) -> Option<Fraction> {
    let Some(pct) = percentage else {
        return Some(Fraction(100 * PERCENT));
    };
    if !(0.0..=100.0).contains(&pct) {
        p.invalid(at, format!("{pct} is not a percentage from 0 to 100"));
        return None;
    }
    // In range, so the product fits a u32 (at most 1 000 000).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(Fraction((pct * f64::from(PERCENT)).round() as u32))
}

/// An abort status 200–599.
fn status(code: i64, at: &str, p: &mut Problems) -> Option<http::StatusCode> {
    match u16::try_from(code)
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| http::StatusCode::from_u16(c).ok())
    {
        Some(status) => Some(status),
        None => {
            p.invalid(at, format!("{code} is not an HTTP status from 200 to 599"));
            None
        }
    }
}

/// A Gateway API duration, or a problem naming the text.
pub(super) fn duration(text: &str, at: &str, p: &mut Problems) -> Option<Duration> {
    let parsed = parse_gateway_duration(text);
    if parsed.is_none() {
        p.invalid(
            at,
            format!(
                "{text:?} is not a Gateway API duration; write it like 300ms, 10s, 1m or 1h30m"
            ),
        );
    }
    parsed
}

/// Parses a duration as GEP-2257 defines it for the Gateway API: one to
/// four `<1-5 digits><unit>` terms, unit `h`, `m`, `s` or `ms`
/// (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`); no fractions, no signs.
pub fn parse_gateway_duration(text: &str) -> Option<Duration> {
    let mut rest = text.as_bytes();
    let (mut total, mut terms) = (Duration::ZERO, 0);
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=5).contains(&digits) {
            return None;
        }
        let n: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = match rest {
            [b'm', b's', ..] => (Duration::from_millis(1), 2),
            [b'h', ..] => (Duration::from_secs(3600), 1),
            [b'm', ..] => (Duration::from_secs(60), 1),
            [b's', ..] => (Duration::from_secs(1), 1),
            _ => return None,
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).ok()?;
        terms += 1;
    }
    (1..=4).contains(&terms).then_some(total)
}

/// Compiles a `RegularExpression` value, anchored, within the size limit.
pub(super) fn pattern(source: &str, at: &str, p: &mut Problems) -> Option<Pattern> {
    if source.len() > MAX_REGEX_LEN {
        p.invalid(
            at,
            format!(
                "a regular expression of {} bytes is longer than the {MAX_REGEX_LEN} allowed",
                source.len()
            ),
        );
        return None;
    }
    match RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(regex) => Some(Pattern {
            source: source.to_string(),
            regex,
        }),
        Err(e) => {
            // A syntax error's text draws the (anchored) pattern over
            // several lines and ends with the cause: keep the cause.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            p.invalid(
                at,
                format!("{source:?} is not a valid regular expression: {why}"),
            );
            None
        }
    }
}
