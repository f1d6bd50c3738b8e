//! The `log` section: how `fedctl run` and `fedgw` write their logs.
//!
//! ```yaml
//! log:
//!   format: text        # text | json (one JSON object per line)
//!   level: info         # a tracing EnvFilter: info, or info,fedmesh_gateway=debug
//! ```
//!
//! `FEDMESH_LOG`, then `RUST_LOG`, override `level` when set.

use super::yaml::{Field, Issue, Section};

/// The section's fields.
pub(super) const LOG: &[&str] = &["format", "level"];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `log` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// The filter when neither `FEDMESH_LOG` nor `RUST_LOG` is set; `None`:
    /// the binary's default (`info`).
    pub level: Option<String>,
}

/// Reads the `log` section.
pub(super) fn log(s: &Section<'_>) -> Result<LogConfig, Issue> {
    Ok(LogConfig {
        format: s.get("format", format)?.unwrap_or_default(),
        level: s.get("level", level)?,
    })
}

fn format(f: &Field<'_>) -> Result<LogFormat, Issue> {
    match f.text("text or json")?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(f.issue(format!(
            "unknown log format {other:?}: expected text or json"
        ))),
    }
}

fn level(f: &Field<'_>) -> Result<String, Issue> {
    let text = f.text("a log filter such as info or info,fedmesh_gateway=debug")?;
    match tracing_subscriber::EnvFilter::try_new(&text) {
        Ok(_) => Ok(text),
        Err(e) => Err(f.issue(format!(
            "{text:?} is not a log filter ({e}); use a level (error, warn, info, debug, trace) or targets such as info,fedmesh_gateway=debug"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const MINIMAL: &str =
        "cluster: east\nlocality: { region: us-east, zone: us-east-1a }\ndataDir: data\n";

    fn parse(extra: &str) -> Result<Config, super::super::ConfigError> {
        Config::from_yaml(&format!("{MINIMAL}{extra}"), Path::new("east.yaml"))
    }

    #[test]
    fn log_defaults_to_text_and_the_binary_level() {
        assert_eq!(parse("").unwrap().log, LogConfig::default());
    }

    #[test]
    fn log_format_json_and_a_level_are_read() {
        let c = parse("log: { format: json, level: \"info,fedmesh_gateway=debug\" }\n").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level.as_deref(), Some("info,fedmesh_gateway=debug"));
    }

    #[test]
    fn a_bad_log_format_or_level_names_the_field() {
        let e = parse("log: { format: xml }\n").unwrap_err();
        assert_eq!(e.field, "log.format", "{e}");
        assert!(e.to_string().contains("expected text or json"), "{e}");
        let e = parse("log:\n  level: \"info,x=loud\"\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("log.level", Some(5)), "{e}");
        assert!(e.to_string().contains("is not a log filter"), "{e}");
    }
}
