//! Helpers shared by the benches under `tests/benches/` (run through the
//! `bench/*.sh` scripts): bounded environment knobs, cleanup when a signal
//! ends the bench, and what `/proc` says about a process or its whole tree
//! (CPU time, RSS).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// What the signal handler must clean up.
#[derive(Debug, Default)]
struct Cleanup {
    pids: Vec<u32>,
    root: Option<PathBuf>,
    nft_table: Option<String>,
}

static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

/// Reads a bounded number from the environment.
///
/// # Panics
/// When the variable is set but not a number in `min..=max`.
pub fn env_num(var: &str, default: usize, min: usize, max: usize) -> usize {
    match std::env::var(var) {
        Err(_) => default,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => panic!("{var} must be a number in {min}..={max}, got {v:?}"),
        },
    }
}

/// Sets what a SIGINT / SIGTERM must clean up: these processes (killed by
/// pid), this folder (removed), and an nftables table (`inet`, deleted).
/// Replaces what was set before; call it again whenever the set changes.
pub fn cleanup_on_signal(pids: Vec<u32>, root: Option<PathBuf>, nft_table: Option<String>) {
    *lock() = Some(Cleanup {
        pids,
        root,
        nft_table,
    });
}

/// Forgets what [`cleanup_on_signal`] set (the bench cleaned up itself).
pub fn cleanup_done() {
    *lock() = None;
}

fn lock() -> std::sync::MutexGuard<'static, Option<Cleanup>> {
    // Plain data: a poisoned lock is still consistent.
    CLEANUP.lock().unwrap_or_else(|e| e.into_inner())
}

/// On SIGINT / SIGTERM: cleans up what [`cleanup_on_signal`] set and exits
/// (Drop does not run when a signal ends the process).
///
/// # Panics
/// When the signal handlers cannot be installed.
pub fn install_signal_cleanup() {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        let code = rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            }
        });
        if let Some(state) = lock().take() {
            for pid in state.pids {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            if let Some(table) = state.nft_table {
                let _ = std::process::Command::new("nft")
                    .args(["delete", "table", "inet", &table])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(200));
            if let Some(root) = state.root {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        eprintln!("interrupted; processes stopped");
        std::process::exit(code);
    });
}

/// CPU time (user + system, all threads) a process has used so far; zero
/// when it is gone.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which may hold spaces and parentheses.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // proc(5): utime and stime are fields 14 and 15, in clock ticks; the
    // rest starts at field 3.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let total = ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0);
    Duration::from_secs_f64(total as f64 / clock_ticks_per_second())
}

/// `pid` and every process below it (children, their children, …), from
/// the parent pid of every process in `/proc`; just `pid` when it has none.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, parent_pid(p)?)))
        .collect();
    let mut tree = vec![pid];
    // Each pass adds the children of what is in the tree; a tree is at
    // most as deep as there are processes.
    for _ in 0..parents.len() {
        let more: Vec<u32> = parents
            .iter()
            .filter(|(p, parent)| tree.contains(parent) && !tree.contains(p))
            .map(|(p, _)| *p)
            .collect();
        if more.is_empty() {
            break;
        }
        tree.extend(more);
    }
    tree
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of `pid` and every process below it ([`process_tree`]).
pub fn tree_cpu_time(pid: u32) -> Duration {
    process_tree(pid).into_iter().map(cpu_time).sum()
}

/// VmRSS of `pid` and every process below it, KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| Mem::of(p).rss_kib)
        .sum()
}

/// USER_HZ, from `getconf CLK_TCK` (100 on every Linux this runs on).
fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|hz| *hz > 0.0)
            .unwrap_or(100.0)
    })
}

/// Memory of one process from `/proc/PID/status`, in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// VmRSS.
    pub rss_kib: u64,
    /// VmHWM (peak RSS).
    pub hwm_kib: u64,
}

impl Mem {
    /// Reads `pid`'s memory; zeros when it is gone.
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Mem {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// VmRSS in MiB.
    pub fn rss_mib(self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    /// VmHWM in MiB.
    pub fn hwm_mib(self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// The `p`-quantile (0..=1) of sorted samples, nearest rank; `None` when
/// there are none.
pub fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// The median of `values` (the lower middle one for an even count); `None`
/// when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}
