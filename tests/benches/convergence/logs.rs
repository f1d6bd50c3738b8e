//! What the bench reads from the clusters' logs: when each change was
//! seen by its exporter, and the per-stage debug timings.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// "exports changed" log lines: export count → time of the first line
/// with that count.
pub(super) fn exports_changed(log: &str) -> HashMap<usize, OffsetDateTime> {
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("exports changed")) {
        let Some(at) = line
            .split_whitespace()
            .next()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        else {
            continue;
        };
        let Some(count) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("exports="))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        out.entry(count).or_insert(at);
    }
    out
}

/// The `<field>_us=N` values of "stage timing: <stage>" log lines, by
/// `<stage>.<field>`, in name order.
pub(super) fn stage_timings(logs: &[String]) -> Vec<(String, Vec<Duration>)> {
    let mut out: std::collections::BTreeMap<String, Vec<Duration>> = Default::default();
    for line in logs.iter().flat_map(|l| l.lines()) {
        let Some((_, rest)) = line.split_once("stage timing: ") else {
            continue;
        };
        let stage = rest.split_whitespace().next().unwrap_or("?");
        for word in line.split_whitespace() {
            let Some((field, value)) = word.split_once("_us=") else {
                continue;
            };
            if let Ok(us) = value.parse::<u64>() {
                out.entry(format!("{stage}.{field}"))
                    .or_default()
                    .push(Duration::from_micros(us));
            }
        }
    }
    out.into_iter().collect()
}
