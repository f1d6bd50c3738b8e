//! The classic Prometheus text format (version 0.0.4), converted from the
//! OpenMetrics 1.0 text prometheus-client writes (it writes nothing else).
//! Scrapers that do not ask for OpenMetrics (older Prometheus servers,
//! `curl`) get this.
//!
//! The two formats share the sample lines; they differ in:
//! - the family name of a counter: OpenMetrics names the family `foo` and
//!   its sample `foo_total`; the classic format names both `foo_total`
//!   (and `info` families `foo_info`);
//! - types: `unknown` is `untyped`; `info` and `stateset` are gauges;
//! - `# UNIT` and `# EOF` lines, `_created` samples, exemplars
//!   (`# {...} v` after a value): OpenMetrics only, dropped;
//! - `# HELP` escapes: OpenMetrics escapes `\\`, `\n` and `\"`, the
//!   classic format only `\\` and `\n`, so `\"` becomes `"`;
//! - timestamps: seconds in OpenMetrics, milliseconds in the classic
//!   format (prometheus-client writes none).

/// The OpenMetrics family whose samples are being read.
struct Family {
    /// The OpenMetrics family name (samples are named from it).
    name: String,
    /// The OpenMetrics type.
    kind: String,
}

/// Converts an OpenMetrics text exposition to the classic text format.
/// Lines that are neither a known comment nor a sample are dropped.
pub(super) fn from_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<(&str, &str)> = None;
    let mut family: Option<Family> = None;
    for line in text.lines() {
        if line == "# EOF" {
            break;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (classic_name, classic_kind) = classic_family(name, kind);
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str(&format!("# HELP {classic_name} {}\n", classic_help(text)));
            }
            out.push_str(&format!("# TYPE {classic_name} {classic_kind}\n"));
            family = Some(Family {
                name: name.to_string(),
                kind: kind.to_string(),
            });
        } else if !line.starts_with('#') && !line.is_empty() {
            push_sample(&mut out, line, family.as_ref());
        }
    }
    out
}

/// The classic name and type of an OpenMetrics family.
fn classic_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_string(), "gauge"),
        "histogram" => (name.to_string(), "histogram"),
        "summary" => (name.to_string(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        "stateset" => (name.to_string(), "gauge"),
        _ => (name.to_string(), "untyped"),
    }
}

/// HELP text with OpenMetrics' `\"` unescaped; `\\` and `\n` stay.
fn classic_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            // A lone trailing backslash is not a valid escape in either
            // format: escape it.
            None => out.push_str("\\\\"),
        }
    }
    out
}

/// Appends a sample line in the classic format, or nothing for one it has
/// no place for (`_created`, or a line that is not a sample).
fn push_sample(out: &mut String, line: &str, family: Option<&Family>) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let created = family
        .is_some_and(|f| has_created(f) && name.strip_prefix(f.name.as_str()) == Some("_created"));
    if created {
        return;
    }
    let labels_end = if line[name_end..].starts_with('{') {
        match label_set_len(&line[name_end..]) {
            Some(len) => name_end + len,
            None => return,
        }
    } else {
        name_end
    };
    let mut rest = line[labels_end..].split_whitespace();
    let Some(value) = rest.next() else {
        return;
    };
    out.push_str(&line[..labels_end]);
    out.push(' ');
    out.push_str(value);
    // What follows the value: a timestamp, then maybe `# {…} v` (an
    // exemplar), which the classic format cannot carry.
    if let Some(seconds) = rest
        .next()
        .filter(|t| *t != "#")
        .and_then(|t| t.parse::<f64>().ok())
    {
        out.push_str(&format!(" {}", (seconds * 1000.0).round()));
    }
    out.push('\n');
}

/// Families whose `_created` sample is OpenMetrics' creation time (not a
/// series of its own).
fn has_created(family: &Family) -> bool {
    matches!(
        family.kind.as_str(),
        "counter" | "histogram" | "summary" | "gaugehistogram"
    )
}

/// The length of the `{…}` label set that `s` starts with, quotes and
/// escapes respected (a label value may hold `}` or `"`).
fn label_set_len(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    // Bytes, not chars: every delimiter is ASCII, and a byte of a UTF-8
    // multi-byte character is never an ASCII byte.
    for (i, c) in s.bytes().enumerate() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => quoted = false,
            (false, _, b'"') => quoted = true,
            (false, _, b'}') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_and_openmetrics_only_lines_go() {
        let om = "\
# HELP app_requests Requests \\\"served\\\" \\\\ all.
# TYPE app_requests counter
# UNIT app_requests requests
app_requests_total{code=\"200\"} 3
app_requests_created{code=\"200\"} 1700000000.5
# HELP app_up Whether it is up.
# TYPE app_up gauge
app_up 1
app_up_created 7
# EOF
";
        let want = "\
# HELP app_requests_total Requests \"served\" \\\\ all.
# TYPE app_requests_total counter
app_requests_total{code=\"200\"} 3
# HELP app_up Whether it is up.
# TYPE app_up gauge
app_up 1
app_up_created 7
";
        assert_eq!(from_openmetrics(om), want);
    }

    #[test]
    fn histograms_keep_their_series_and_lose_created() {
        let om = "\
# HELP rpc_seconds Latency.
# TYPE rpc_seconds histogram
rpc_seconds_sum 0.5
rpc_seconds_count 2
rpc_seconds_bucket{le=\"0.1\"} 1
rpc_seconds_bucket{le=\"+Inf\"} 2
rpc_seconds_created 12.0
# EOF
";
        let got = from_openmetrics(om);
        assert!(got.contains("# TYPE rpc_seconds histogram\n"), "{got}");
        assert!(got.contains("rpc_seconds_bucket{le=\"+Inf\"} 2\n"), "{got}");
        assert!(!got.contains("_created") && !got.contains("EOF"), "{got}");
    }

    #[test]
    fn exemplars_go_timestamps_become_milliseconds_and_quoted_braces_stay() {
        let om = "\
# TYPE odd counter
odd_total{path=\"/a}b # c\",q=\"x\\\"y\"} 4 1.25 # {trace=\"t\"} 1.0
odd_total{path=\"/\"} 5 # {trace=\"u\"} 1.0
# EOF
";
        let want = "\
# TYPE odd_total counter
odd_total{path=\"/a}b # c\",q=\"x\\\"y\"} 4 1250
odd_total{path=\"/\"} 5
";
        assert_eq!(from_openmetrics(om), want);
    }

    #[test]
    fn unknown_info_and_stateset_get_classic_types() {
        let om = "\
# TYPE build info
build_info{version=\"1\"} 1
# TYPE mode stateset
mode{mode=\"a\"} 1
# TYPE thing unknown
thing 2
# EOF
";
        let got = from_openmetrics(om);
        for line in [
            "# TYPE build_info gauge",
            "# TYPE mode gauge",
            "# TYPE thing untyped",
            "build_info{version=\"1\"} 1",
        ] {
            assert!(got.lines().any(|l| l == line), "no {line:?} in\n{got}");
        }
    }
}
