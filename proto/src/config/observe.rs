//! The gateway's observability sections: `gateway.tracing` (W3C trace
//! context and span export over OTLP) and `gateway.accessLog` (one JSON
//! line per request or connection).
//!
//! ```yaml
//! gateway:
//!   tracing:
//!     otlpEndpoint: http://127.0.0.1:4317   # an OTLP/gRPC collector
//!     sampleRatio: 0.25                     # of the traces this gateway starts; default 1.0
//!   accessLog: stdout                       # or a file path
//! ```
//!
//! Both are off when absent. Trace context is continued or started on every
//! HTTP request whatever this section says; it only decides what is
//! exported.

use std::path::{Path, PathBuf};

use super::yaml::{Field, Issue, Section};

/// The `gateway.tracing` section's fields.
pub(super) const TRACING: &[&str] = &["otlpEndpoint", "sampleRatio"];

/// Parts of a million: [`SampleRatio`]'s unit, fine enough for any ratio a
/// user writes with six decimals.
const MILLION: u32 = 1_000_000;

/// Span export (section `gateway.tracing`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TracingConfig {
    /// The OTLP/gRPC collector spans go to, such as
    /// `http://127.0.0.1:4317`; `None`: no span is exported.
    pub otlp_endpoint: Option<String>,
    /// The share of the traces this gateway starts that are sampled
    /// (default 1.0 with an endpoint, 0 without). A continued trace keeps
    /// the caller's sampled flag.
    pub sample_ratio: SampleRatio,
}

/// A ratio from 0 to 1, kept in millionths so that configs compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleRatio(u32);

impl SampleRatio {
    /// Every trace.
    pub const ALL: SampleRatio = SampleRatio(MILLION);

    /// The ratio as a number from 0.0 to 1.0.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(MILLION)
    }
}

/// Where access log lines go (`gateway.accessLog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// The process's standard output.
    Stdout,
    /// A file, appended to (created when missing).
    File(PathBuf),
}

/// Reads `gateway.tracing`.
pub(super) fn tracing(s: &Section<'_>) -> Result<TracingConfig, Issue> {
    let otlp_endpoint = s.get("otlpEndpoint", endpoint)?;
    let ratio = s.get("sampleRatio", sample_ratio)?;
    if ratio.is_some() && otlp_endpoint.is_none() {
        return Err(s.issue(
            "sampleRatio",
            "sampleRatio is set but otlpEndpoint is not, so no span would be exported; set otlpEndpoint to a collector such as http://127.0.0.1:4317, or remove sampleRatio",
        ));
    }
    let default = if otlp_endpoint.is_some() {
        SampleRatio::ALL
    } else {
        SampleRatio::default()
    };
    Ok(TracingConfig {
        otlp_endpoint,
        sample_ratio: ratio.unwrap_or(default),
    })
}

/// Reads `gateway.accessLog`: `stdout` or a file path (relative to the
/// config file's folder).
pub(super) fn access_log(f: &Field<'_>, base: &Path) -> Result<AccessLog, Issue> {
    let text = f.text("stdout or a file path")?;
    let text = text.trim();
    if text.is_empty() {
        return Err(f.issue("must not be empty: write stdout, or a file path such as ./access.log"));
    }
    if text == "stdout" {
        return Ok(AccessLog::Stdout);
    }
    if text.ends_with('/') {
        return Err(f.issue(format!(
            "{text:?} names a folder; give a file path such as {text}access.log"
        )));
    }
    // `.` components dropped, as for every other path of the config.
    let path: PathBuf = base.join(text).components().collect();
    Ok(AccessLog::File(path))
}

/// `http://HOST:PORT`: OTLP over gRPC, in plain text (a collector beside
/// the gateway; TLS to a collector is not supported yet).
fn endpoint(f: &Field<'_>) -> Result<String, Issue> {
    f.parse("an OTLP/gRPC endpoint such as http://127.0.0.1:4317", |text| {
        let text = text.trim();
        let uri: http::Uri = text.parse().map_err(|e| {
            format!("invalid otlpEndpoint {text:?} ({e}): write http://HOST:PORT, such as http://127.0.0.1:4317")
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{text:?}: TLS to a collector is not supported; run a collector beside the gateway and give http://HOST:PORT"
                ));
            }
            _ => {
                return Err(format!(
                    "invalid otlpEndpoint {text:?}: it needs the scheme, as in http://127.0.0.1:4317"
                ));
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("invalid otlpEndpoint {text:?}: no host"));
        };
        if authority.port_u16().is_none_or(|p| p == 0) {
            return Err(format!(
                "invalid otlpEndpoint {text:?}: give the port, such as http://{}:4317",
                authority.host()
            ));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "invalid otlpEndpoint {text:?}: OTLP/gRPC takes no path; write http://{authority}"
            ));
        }
        Ok(format!("http://{authority}"))
    })
}

/// A decimal from 0 to 1 (`0`, `0.25`, `1`).
fn sample_ratio(f: &Field<'_>) -> Result<SampleRatio, Issue> {
    f.parse("a number from 0 to 1, such as 0.25", |text| {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("invalid sampleRatio {text:?}: expected a number from 0 to 1, such as 0.25"))?;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!(
                "sampleRatio {text} is out of range: expected a number from 0 to 1 (1 samples every trace)"
            ));
        }
        // In range, so the product fits; rounding keeps 0.1 at 100000.
        let millionths = (value * f64::from(MILLION)).round();
        Ok(SampleRatio(u32::try_from(millionths as i64).unwrap_or(MILLION)))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const MINIMAL: &str =
        "cluster: east\nlocality: { region: us-east, zone: us-east-1a }\ndataDir: data\n";

    fn parse(gateway: &str) -> Result<Config, super::super::ConfigError> {
        Config::from_yaml(
            &format!("{MINIMAL}gateway:\n{gateway}"),
            Path::new("/etc/fedmesh/east.yaml"),
        )
    }

    #[test]
    fn tracing_and_access_log_are_off_by_default() {
        let c = parse("  name: gw-1\n").unwrap();
        assert_eq!(c.gateway.tracing, TracingConfig::default());
        assert_eq!(c.gateway.access_log, None);
    }

    #[test]
    fn an_endpoint_samples_every_trace_unless_told() {
        let c = parse("  tracing: { otlpEndpoint: \"http://127.0.0.1:4317\" }\n").unwrap();
        let t = &c.gateway.tracing;
        assert_eq!(t.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        assert_eq!(t.sample_ratio, SampleRatio::ALL);
        let c =
            parse("  tracing: { otlpEndpoint: \"http://collector:4317/\", sampleRatio: 0.1 }\n")
                .unwrap();
        let t = &c.gateway.tracing;
        assert_eq!(t.otlp_endpoint.as_deref(), Some("http://collector:4317"));
        assert!((t.sample_ratio.as_f64() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn bad_tracing_fields_name_the_field_and_the_fix() {
        let cases = [
            (
                "  tracing: { otlpEndpoint: \"127.0.0.1:4317\" }\n",
                "otlpEndpoint",
                "scheme",
            ),
            (
                "  tracing: { otlpEndpoint: \"https://c:4317\" }\n",
                "otlpEndpoint",
                "TLS",
            ),
            (
                "  tracing: { otlpEndpoint: \"http://c\" }\n",
                "otlpEndpoint",
                "give the port",
            ),
            (
                "  tracing: { otlpEndpoint: \"http://c:4317/v1\" }\n",
                "otlpEndpoint",
                "no path",
            ),
            (
                "  tracing: { otlpEndpoint: \"http://c:1\", sampleRatio: 1.5 }\n",
                "sampleRatio",
                "out of range",
            ),
            (
                "  tracing: { otlpEndpoint: \"http://c:1\", sampleRatio: half }\n",
                "sampleRatio",
                "expected a number",
            ),
            (
                "  tracing: { sampleRatio: 0.5 }\n",
                "sampleRatio",
                "otlpEndpoint is not",
            ),
            ("  tracing: { endpoint: x }\n", "endpoint", ""),
        ];
        for (yaml, field, says) in cases {
            let e = parse(yaml).unwrap_err();
            assert_eq!(e.field, format!("gateway.tracing.{field}"), "{yaml}: {e}");
            assert!(e.to_string().contains(says), "{yaml}: {e}");
        }
    }

    #[test]
    fn access_log_is_stdout_or_a_path_from_the_config_folder() {
        let c = parse("  accessLog: stdout\n").unwrap();
        assert_eq!(c.gateway.access_log, Some(AccessLog::Stdout));
        let c = parse("  accessLog: ./logs/access.log\n").unwrap();
        assert_eq!(
            c.gateway.access_log,
            Some(AccessLog::File("/etc/fedmesh/logs/access.log".into()))
        );
        let e = parse("  accessLog: \"\"\n").unwrap_err();
        assert_eq!(e.field, "gateway.accessLog", "{e}");
        let e = parse("  accessLog: logs/\n").unwrap_err();
        assert!(e.to_string().contains("names a folder"), "{e}");
    }
}
