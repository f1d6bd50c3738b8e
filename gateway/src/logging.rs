//! Log setup shared by `fedgw` and `fedctl`: which filter applies and
//! which line format, written to stderr.
//!
//! The filter is the first one set of: `FEDMESH_LOG`, `RUST_LOG` (both in
//! `tracing` `EnvFilter` syntax), the config's `log.level`, the binary's
//! default. A variable that is set but does not parse is an error that
//! names it, so a typo never silently hides the logs asked for.

use fedmesh_proto::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// The environment variables read for a filter, in order.
pub const FILTER_VARS: [&str; 2] = ["FEDMESH_LOG", "RUST_LOG"];

/// A log filter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// `FEDMESH_LOG` or `RUST_LOG` holds something else than a filter.
    #[error(
        "{var}={value:?} is not a log filter ({reason}); use a level (error, warn, info, debug, trace) or targets such as info,fedmesh_gateway=debug"
    )]
    BadFilter {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What the parser said.
        reason: String,
    },
}

/// The filter text to use: from the environment (`env` looks a variable
/// up), else `config`'s level, else `default`.
///
/// # Errors
/// When the variable that applies does not parse.
pub fn filter_text(
    env: impl Fn(&str) -> Option<String>,
    config: Option<&LogConfig>,
    default: &str,
) -> Result<String, LogError> {
    for var in FILTER_VARS {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            return match EnvFilter::try_new(&value) {
                Ok(_) => Ok(value),
                Err(e) => Err(LogError::BadFilter {
                    var,
                    value,
                    reason: e.to_string(),
                }),
            };
        }
    }
    Ok(config
        .and_then(|c| c.level.clone())
        .unwrap_or_else(|| default.to_string()))
}

/// Installs the process's log subscriber (once; later calls do nothing).
///
/// # Errors
/// When `FEDMESH_LOG` or `RUST_LOG` is set and does not parse.
pub fn init(config: Option<&LogConfig>, default: &str) -> Result<(), LogError> {
    let text = filter_text(|v| std::env::var(v).ok(), config, default)?;
    // Checked above (or by the config), so only a default could fail here.
    let filter = EnvFilter::try_new(&text).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.map(|c| c.format).unwrap_or_default() {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn fedmesh_log_then_rust_log_then_the_config_then_the_default() {
        let config = LogConfig {
            level: Some("debug".into()),
            ..Default::default()
        };
        let both = [("FEDMESH_LOG", "trace"), ("RUST_LOG", "warn")];
        assert_eq!(
            filter_text(env(&both), Some(&config), "info"),
            Ok("trace".into())
        );
        let rust = [("RUST_LOG", "warn,fedmesh_gateway=debug")];
        assert_eq!(
            filter_text(env(&rust), Some(&config), "info"),
            Ok("warn,fedmesh_gateway=debug".into())
        );
        assert_eq!(
            filter_text(env(&[]), Some(&config), "info"),
            Ok("debug".into())
        );
        assert_eq!(filter_text(env(&[]), None, "info"), Ok("info".into()));
    }

    #[test]
    fn a_bad_rust_log_is_an_error_naming_the_variable() {
        let bad = [("RUST_LOG", "info,fedmesh_gateway=loud")];
        let e = filter_text(env(&bad), None, "info")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("RUST_LOG=\"info,fedmesh_gateway=loud\" is not a log filter"),
            "{e}"
        );
    }
}
