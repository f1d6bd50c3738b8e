//! The external load generators, run as child processes against a path:
//! `wrk` (Debian's, closed loop: each of its connections sends the next
//! request as soon as the answer is in) to find how many requests a proxy
//! pair carries per CPU-second at saturation, and `oha` (open loop at a
//! fixed rate, `--latency-correction` counting each request from when it was
//! due, so stalls are not hidden by coordinated omission) for the tail
//! latency. Both are bounded by their own duration and a kill deadline; their
//! output is parsed here and nothing else of theirs is trusted.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why a tool run gave no figure.
#[derive(Debug)]
pub(crate) enum ToolError {
    /// The program could not be started (or waited for).
    Spawn {
        /// The program.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It exited with an error.
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its stderr.
        stderr: String,
    },
    /// Its output did not hold the figure.
    Parse {
        /// The program.
        program: String,
        /// The figure missing.
        what: &'static str,
    },
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn { program, source } => write!(f, "cannot run {program}: {source}"),
            Self::Failed {
                program,
                status,
                stderr,
            } => write!(f, "{program} failed ({status}): {stderr}"),
            Self::Parse { program, what } => write!(f, "{program}'s output has no {what}"),
        }
    }
}

impl std::error::Error for ToolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What `wrk` reports for one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed {
    /// Requests answered (any status).
    pub(crate) requests: u64,
    /// Socket errors plus non-2xx/3xx answers.
    pub(crate) errors: u64,
    /// Length of the run, as wrk measured it.
    pub(crate) seconds: f64,
}

/// What `oha` reports for one fixed-rate run (latency corrected).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Open {
    /// Requests that got no 200 (errors or other statuses).
    pub(crate) failed: u64,
    /// Median, ms.
    pub(crate) p50_ms: f64,
    /// 99th percentile, ms.
    pub(crate) p99_ms: f64,
}

/// Runs `program` with `args`, killing it if it outlives `limit`; its
/// stdout.
fn run(program: &str, args: &[String], limit: Duration) -> Result<String, ToolError> {
    let child = Command::new("timeout")
        .arg("--signal=KILL")
        .arg(format!("{}", limit.as_secs().max(1)))
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let out = child
        .wait_with_output()
        .map_err(|source| ToolError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(ToolError::Failed {
            program: program.to_string(),
            status: out.status,
            stderr: tail,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `wrk -t1 -cN -dS`: one client thread (the machine's cores go to the
/// proxies), `connections` keep-alive connections, `seconds` long.
///
/// # Errors
/// When wrk cannot run, fails, or prints no request count.
pub(crate) fn wrk(
    program: &str,
    addr: SocketAddr,
    connections: usize,
    seconds: u32,
) -> Result<Closed, ToolError> {
    let args = [
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--timeout".into(),
        "3s".into(),
        format!("http://{addr}/"),
    ];
    let text = run(program, &args, Duration::from_secs(u64::from(seconds) + 20))?;
    parse_wrk(&text).ok_or(ToolError::Parse {
        program: program.to_string(),
        what: "request count",
    })
}

/// Reads "N requests in 5.00s", "Socket errors: connect a, read b, write c,
/// timeout d" and "Non-2xx or 3xx responses: e" from wrk's report.
fn parse_wrk(text: &str) -> Option<Closed> {
    let line = text.lines().find(|l| l.contains(" requests in "))?;
    let mut words = line.split_whitespace();
    let requests = words.next()?.parse().ok()?;
    let time = words.nth(2)?.trim_end_matches(',');
    let seconds = if let Some(m) = time.strip_suffix('m') {
        m.parse::<f64>().ok()? * 60.0
    } else if let Some(ms) = time.strip_suffix("ms") {
        ms.parse::<f64>().ok()? / 1e3
    } else {
        time.strip_suffix('s')?.parse().ok()?
    };
    let numbers = |l: &str| -> u64 {
        l.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Socket errors:") || l.contains("Non-2xx or 3xx responses:"))
        .map(|l| numbers(l.split_once(':').map_or("", |(_, v)| v)))
        .sum();
    Some(Closed {
        requests,
        errors,
        seconds,
    })
}

/// `oha` at `rate` requests per second for `seconds` on `connections`
/// keep-alive connections, latency corrected (counted from when each
/// request was due).
///
/// # Errors
/// When oha cannot run, fails, or its JSON lacks the percentiles.
pub(crate) fn oha(
    program: &str,
    addr: SocketAddr,
    rate: u32,
    connections: usize,
    seconds: u32,
) -> Result<Open, ToolError> {
    let args = [
        "--no-tui".to_string(),
        "--output-format".into(),
        "json".into(),
        "--latency-correction".into(),
        // Requests in flight at the end are waited for, not counted as
        // errors.
        "-w".into(),
        "-q".into(),
        rate.to_string(),
        "-c".into(),
        connections.to_string(),
        "-z".into(),
        format!("{seconds}s"),
        "-t".into(),
        "3s".into(),
        format!("http://{addr}/"),
    ];
    let text = run(program, &args, Duration::from_secs(u64::from(seconds) + 20))?;
    parse_oha(&text).ok_or(ToolError::Parse {
        program: program.to_string(),
        what: "latency percentiles",
    })
}

/// Reads oha's JSON report: percentiles in seconds, the status codes, the
/// errors.
fn parse_oha(text: &str) -> Option<Open> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().map(|s| s * 1e3);
    let count = |m: &serde_json::Value| -> u64 {
        m.as_object().map_or(0, |o| {
            o.values().filter_map(serde_json::Value::as_u64).sum()
        })
    };
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    let answered = count(&v["statusCodeDistribution"]);
    Some(Open {
        failed: answered - ok + count(&v["errorDistribution"]),
        p50_ms: pct("p50")?,
        p99_ms: pct("p99")?,
    })
}
