//! This process as `/proc/self` shows it: resident memory, CPU time, open
//! file descriptors and start time, for the standard `process_*` series
//! (named as every Prometheus client library names them). Linux only; on
//! any read or parse error the series keep their last values.

use std::fs;

/// Clock ticks per second of `/proc/*/stat` times. The kernel reports
/// them in USER_HZ, 100 on every Linux architecture fedmesh builds for
/// (the Prometheus Go client's procfs assumes the same).
const USER_HZ: f64 = 100.0;

/// One reading of this process.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_s: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Start time in unix seconds.
    pub start_time_s: f64,
}

/// Reads this process's statistics, or `None` when /proc cannot be read.
pub(super) fn read() -> Option<ProcessStats> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let boot = fs::read_to_string("/proc/stat").ok()?;
    let (cpu_ticks, start_ticks) = parse_stat(&stat)?;
    let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcessStats {
        rss_bytes: parse_rss_kib(&status)? * 1024,
        cpu_s: cpu_ticks as f64 / USER_HZ,
        open_fds,
        start_time_s: parse_btime(&boot)? as f64 + start_ticks as f64 / USER_HZ,
    })
}

/// `utime + stime` and `starttime` (fields 14, 15 and 22 of proc(5)'s
/// `/proc/pid/stat`), in ticks. Fields are counted after the last `)`,
/// since the command name in field 2 may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(22)?))
}

/// `VmRSS` of `/proc/self/status`, in KiB.
fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in unix seconds.
fn parse_btime(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "42 (fed ctl) (x) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000 200";
        assert_eq!(parse_stat(stat), Some((300, 12345)));
    }

    #[test]
    fn rss_and_boot_time_are_read_from_their_lines() {
        assert_eq!(
            parse_rss_kib("Name:\tfedctl\nVmRSS:\t  2048 kB\n"),
            Some(2048)
        );
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rss_kib("Name:\tfedctl\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let p = read().expect("/proc/self readable");
        assert!(
            p.rss_bytes > 0 && p.open_fds > 0 && p.start_time_s > 1e9,
            "{p:?}"
        );
    }
}
