//! The numbers of each run and the tables printed at the end: medians over
//! the rounds, fedmesh and HAProxy side by side with direct TCP, ratios.

use std::time::Duration;

use fedmesh_tests::bench::{median, quantile};

use crate::failover::Failover;
use crate::load::Sample;
use crate::rtt::RttResult;
use crate::tools::{Closed, Open};
use crate::{Knobs, Path, ProxyMode, TOOL_CONNECTIONS};

/// One fixed-rate run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Requests sent.
    pub(crate) total: usize,
    /// Requests that failed.
    pub(crate) failed: usize,
    /// Latency percentiles, ms.
    pub(crate) p50_ms: f64,
    /// 99th percentile, ms.
    pub(crate) p99_ms: f64,
    /// The proxies' CPU time during the run.
    pub(crate) cpu: Duration,
}

impl Load {
    /// Summarises a run's samples.
    pub(crate) fn new(samples: &[Sample], cpu: Duration) -> Self {
        let mut ms: Vec<f64> = samples
            .iter()
            .filter(|s| s.result.is_ok())
            .map(|s| s.latency().as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        Self {
            total: samples.len(),
            failed: samples.iter().filter(|s| s.result.is_err()).count(),
            p50_ms: quantile(&ms, 0.50).unwrap_or(f64::NAN),
            p99_ms: quantile(&ms, 0.99).unwrap_or(f64::NAN),
            cpu,
        }
    }

    /// Successful requests per proxy CPU-second.
    fn per_cpu_second(&self) -> f64 {
        per_second((self.total - self.failed) as f64, self.cpu)
    }
}

/// One round on one path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Round {
    /// Keep-alive connections at a fixed rate.
    pub(crate) keep_alive: Load,
    /// A new connection per request at a fixed rate.
    pub(crate) new_conn: Load,
    /// Bytes of the single-stream bulk transfer (0: it failed).
    pub(crate) bulk_bytes: u64,
    /// How long it took.
    pub(crate) bulk_time: Duration,
    /// The proxies' CPU time during it.
    pub(crate) bulk_cpu: Duration,
    /// Keep-alive at saturation (wrk), when it ran.
    pub(crate) saturated: Option<Saturated>,
    /// Keep-alive at a fixed rate (oha, latency corrected), when it ran.
    pub(crate) open: Option<Open>,
}

/// A saturation run and the proxies' CPU time during it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Saturated {
    /// What wrk counted.
    pub(crate) closed: Closed,
    /// The proxies' CPU time.
    pub(crate) cpu: Duration,
}

impl Saturated {
    /// Requests answered per second.
    fn rate(&self) -> f64 {
        self.closed.requests as f64 / self.closed.seconds
    }

    /// Good answers per proxy CPU-second.
    fn per_cpu_second(&self) -> f64 {
        let good = self.closed.requests.saturating_sub(self.closed.errors);
        per_second(good as f64, self.cpu)
    }
}

/// Memory with idle connections through a path's proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Idle {
    /// Sum of the proxies' VmRSS before, KiB.
    pub(crate) before_kib: u64,
    /// With the connections open.
    pub(crate) during_kib: u64,
    /// 3 s after they were closed.
    pub(crate) after_kib: u64,
    /// With as many open again.
    pub(crate) during_again_kib: u64,
    /// 3 s after those were closed.
    pub(crate) after_again_kib: u64,
    /// How many opened the first time.
    pub(crate) opened: usize,
    /// How many opened the second time.
    pub(crate) opened_again: usize,
    /// How long opening them took.
    pub(crate) open_time: Duration,
    /// Why not all opened, if so.
    pub(crate) error: Option<String>,
}

fn per_second(count: f64, time: Duration) -> f64 {
    if time.is_zero() {
        f64::NAN
    } else {
        count / time.as_secs_f64()
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A cell: NaN (nothing to measure) prints as a dash.
fn cell(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

/// `a / b` as a ratio cell.
fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b != 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

/// Prints every table (stdout, Markdown).
pub(crate) fn print(
    knobs: &Knobs,
    paths: &[Path],
    rounds: &[Vec<Round>],
    idle: &[Option<Idle>],
    rtts: &[RttResult],
    failovers: &[Failover],
) {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!();
    let mode = match knobs.mode {
        ProxyMode::Tcp => "TCP port (HAProxy mode tcp)",
        ProxyMode::Http => "HTTP port, per request (HAProxy mode http)",
    };
    println!(
        "fedmesh gateway pair vs direct TCP vs HAProxy pair (mTLS), {mode}, {} rounds, medians",
        knobs.rounds
    );
    println!(
        "machine: {cpus} CPUs, loopback, shared; clients, load and backend in one process; CPU and RSS of the two proxies on the path (fedmesh: east's and west's fedgw; HAProxy: front and west's back)"
    );
    println!(
        "load: open loop (latency from each request's due time), {} s per run; keep-alive: {} req/s on 32 connections; new connection per request: {} req/s; 1 KB responses",
        knobs.seconds, knobs.rate, knobs.conn_rate
    );
    println!(
        "saturation: wrk -t1 -c{TOOL_CONNECTIONS} (closed loop); oha: {} req/s on {TOOL_CONNECTIONS} connections, --latency-correction (open loop); {} s each",
        knobs.rate, knobs.seconds
    );
    println!();
    main_table(knobs, rounds);
    idle_table(knobs, paths, idle);
    rtt_table(rtts);
    if !failovers.is_empty() {
        failover_table(knobs, failovers);
    }
    raw_rounds(paths, rounds);
}

fn main_table(knobs: &Knobs, rounds: &[Vec<Round>]) {
    // Median of one figure over a path's rounds.
    let med = |i: usize, f: &dyn Fn(&Round) -> f64| -> f64 {
        let v: Vec<f64> = rounds[i].iter().map(f).filter(|v| v.is_finite()).collect();
        median(&v).unwrap_or(f64::NAN)
    };
    println!("| measure | direct | fedmesh | HAProxy | fedmesh ÷ HAProxy |");
    println!("|---|--:|--:|--:|--:|");
    let line = |what: &str, f: &dyn Fn(&Round) -> f64, decimals: usize| {
        let (d, m, h) = (med(0, f), med(1, f), med(2, f));
        println!(
            "| {what} | {} | {} | {} | {} |",
            cell(d, decimals),
            cell(m, decimals),
            cell(h, decimals),
            ratio(m, h)
        );
        (d, m, h)
    };
    let added = |what: &str, (d, m, h): (f64, f64, f64)| {
        println!(
            "| {what} | | {} | {} | {} |",
            cell(m - d, 3),
            cell(h - d, 3),
            ratio(m - d, h - d)
        );
    };
    let ka = format!("keep-alive, {} req/s", knobs.rate);
    let p50 = line(&format!("{ka}: p50 ms"), &|r| r.keep_alive.p50_ms, 3);
    let p99 = line(&format!("{ka}: p99 ms"), &|r| r.keep_alive.p99_ms, 3);
    added(&format!("{ka}: added p50 ms (vs direct)"), p50);
    added(&format!("{ka}: added p99 ms (vs direct)"), p99);
    line(
        &format!("{ka}: requests per proxy CPU-second"),
        &|r| r.keep_alive.per_cpu_second(),
        0,
    );
    let sat = format!("saturation, wrk -c{TOOL_CONNECTIONS}");
    let nan = f64::NAN;
    line(
        &format!("{sat}: requests/s"),
        &|r| r.saturated.map_or(nan, |s| s.rate()),
        0,
    );
    line(
        &format!("{sat}: requests per proxy CPU-second"),
        &|r| r.saturated.map_or(nan, |s| s.per_cpu_second()),
        0,
    );
    let oha = format!("oha, {} req/s", knobs.rate);
    let p50 = line(
        &format!("{oha}: p50 ms"),
        &|r| r.open.map_or(nan, |o| o.p50_ms),
        3,
    );
    let p99 = line(
        &format!("{oha}: p99 ms"),
        &|r| r.open.map_or(nan, |o| o.p99_ms),
        3,
    );
    added(&format!("{oha}: added p50 ms (vs direct)"), p50);
    added(&format!("{oha}: added p99 ms (vs direct)"), p99);
    let nc = format!("new connection per request, {} req/s", knobs.conn_rate);
    let p50 = line(&format!("{nc}: p50 ms"), &|r| r.new_conn.p50_ms, 3);
    let p99 = line(&format!("{nc}: p99 ms"), &|r| r.new_conn.p99_ms, 3);
    added(&format!("{nc}: added p50 ms (vs direct)"), p50);
    added(&format!("{nc}: added p99 ms (vs direct)"), p99);
    line(
        &format!("{nc}: new mTLS connections per proxy CPU-second"),
        &|r| r.new_conn.per_cpu_second(),
        0,
    );
    let bulk = format!("bulk, {} MiB on one connection", knobs.bulk_mib);
    let (d, m, h) = line(
        &format!("{bulk}: MB/s"),
        &|r| {
            if r.bulk_bytes == 0 {
                f64::NAN
            } else {
                per_second(mb(r.bulk_bytes), r.bulk_time)
            }
        },
        0,
    );
    println!(
        "| {bulk}: share of direct | 1.00× | {} | {} | |",
        ratio(m, d),
        ratio(h, d)
    );
    line(
        &format!("{bulk}: MB per proxy CPU-second"),
        &|r| per_second(mb(r.bulk_bytes), r.bulk_cpu),
        0,
    );
    let failed = |i: usize| {
        rounds[i]
            .iter()
            .map(|r| {
                let tools =
                    r.saturated.map_or(0, |s| s.closed.errors) + r.open.map_or(0, |o| o.failed);
                r.keep_alive.failed
                    + r.new_conn.failed
                    + usize::from(r.bulk_bytes == 0)
                    + usize::try_from(tools).unwrap_or(usize::MAX)
            })
            .sum::<usize>()
    };
    println!(
        "| failed requests (all rounds) | {} | {} | {} | |",
        failed(0),
        failed(1),
        failed(2)
    );
    println!();
}

fn idle_table(knobs: &Knobs, paths: &[Path], idle: &[Option<Idle>]) {
    let get = |name: &str| {
        paths
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| idle[i].clone())
    };
    let (Some(m), Some(h)) = (get("fedmesh"), get("HAProxy")) else {
        println!("(idle connections: not measured, GATEWAY_BENCH_IDLE=0)\n");
        return;
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    // Per connection that actually opened (a path may carry fewer).
    let per_conn = |i: &Idle| (i.during_kib as f64 - i.before_kib as f64) / i.opened as f64;
    let per_conn_again =
        |i: &Idle| (i.during_again_kib as f64 - i.before_kib as f64) / i.opened_again as f64;
    println!(
        "{} idle connections through the proxies (each carried one request first); RSS = sum of the two proxies' VmRSS",
        knobs.idle
    );
    println!();
    println!("| measure | fedmesh | HAProxy | fedmesh ÷ HAProxy |");
    println!("|---|--:|--:|--:|");
    let row = |what: &str, a: f64, b: f64, decimals: usize| {
        println!(
            "| {what} | {} | {} | {} |",
            cell(a, decimals),
            cell(b, decimals),
            ratio(a, b)
        );
    };
    row("RSS before, MiB", mib(m.before_kib), mib(h.before_kib), 1);
    row(
        &format!("RSS with {} open, MiB", knobs.idle),
        mib(m.during_kib),
        mib(h.during_kib),
        1,
    );
    row(
        "connections open (first time)",
        m.opened as f64,
        h.opened as f64,
        0,
    );
    row(
        "added KiB per open connection",
        per_conn(&m),
        per_conn(&h),
        2,
    );
    row(
        "RSS 3 s after they closed, MiB",
        mib(m.after_kib),
        mib(h.after_kib),
        1,
    );
    row(
        &format!("RSS with {} open again, MiB", knobs.idle),
        mib(m.during_again_kib),
        mib(h.during_again_kib),
        1,
    );
    row(
        "connections open (second time)",
        m.opened_again as f64,
        h.opened_again as f64,
        0,
    );
    row(
        "KiB per open connection, second time (over RSS before)",
        per_conn_again(&m),
        per_conn_again(&h),
        2,
    );
    row(
        "RSS 3 s after those closed, MiB",
        mib(m.after_again_kib),
        mib(h.after_again_kib),
        1,
    );
    row(
        &format!(
            "time to open them the first time ({} at a time), s",
            knobs.idle_concurrency
        ),
        m.open_time.as_secs_f64(),
        h.open_time.as_secs_f64(),
        2,
    );
    for (name, i) in [("fedmesh", &m), ("HAProxy", &h)] {
        if let Some(e) = &i.error {
            println!("\n{name}: {e}");
        }
    }
    println!();
}

fn rtt_table(rtts: &[RttResult]) {
    if rtts.is_empty() {
        println!(
            "(new connections across a long link: not measured, GATEWAY_BENCH_RTT_MS empty)\n"
        );
        return;
    }
    println!(
        "new connection across a long link: connect() to the first response byte of a GET sent at once, one connection at a time, paths interleaved; the relay adds the round trip (half each way, plus one for the TCP handshake); fedmesh's pool is warm, HAProxy dials (TCP + resumed TLS) per client connection"
    );
    println!();
    println!(
        "| round trip | path | connections | failed | p50 ms | p50 RTTs | p99 ms | p99 RTTs | TCP connections at the relay |"
    );
    println!("|--:|---|--:|--:|--:|--:|--:|--:|--:|");
    for r in rtts {
        let rtts = |ms: f64| cell(ms / r.rtt_ms as f64, 2);
        println!(
            "| {} ms | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.rtt_ms,
            r.path,
            r.total,
            r.failed,
            cell(r.p50_ms, 1),
            rtts(r.p50_ms),
            cell(r.p99_ms, 1),
            rtts(r.p99_ms),
            r.relay_connections
        );
    }
    println!();
    println!(
        "| round trip | fedmesh ÷ HAProxy, p50 | fedmesh ÷ HAProxy, p99 | fedmesh ÷ direct, p50 |"
    );
    println!("|--:|--:|--:|--:|");
    let mut ms: Vec<u64> = rtts.iter().map(|r| r.rtt_ms).collect();
    ms.dedup();
    for rtt in ms {
        let get = |p: &str| rtts.iter().find(|r| r.rtt_ms == rtt && r.path == p);
        if let (Some(d), Some(m), Some(h)) = (get("direct"), get("fedmesh"), get("HAProxy")) {
            println!(
                "| {rtt} ms | {} | {} | {} |",
                ratio(m.p50_ms, h.p50_ms),
                ratio(m.p99_ms, h.p99_ms),
                ratio(m.p50_ms, d.p50_ms)
            );
        }
    }
    println!();
}

fn failover_table(knobs: &Knobs, failovers: &[Failover]) {
    println!(
        "failover: {} req/s, each on a new connection, 1 s before and 4 s after the failure; west (us-east-1b) serves, eu (eu-central-1a) is next",
        knobs.failover_rate
    );
    println!();
    println!(
        "| system | failure | requests | failed | first answer from eu after, ms | longest gap without an answer, ms | slower than 100 ms | slowest, ms | west serves again after undoing, s |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|");
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    for f in failovers {
        match &f.result {
            Ok(s) => println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.system,
                f.event,
                s.total,
                s.failed,
                s.first_next.map_or("never".into(), ms),
                ms(s.gap),
                s.slow,
                ms(s.max_latency),
                s.recovered
                    .map_or("no".into(), |d| format!("{:.1}", d.as_secs_f64())),
            ),
            Err(why) => println!("| {} | {} | {why} | | | | | | |", f.system, f.event),
        }
    }
    println!();
}

/// Every round's figures, for judging the noise behind the medians.
fn raw_rounds(paths: &[Path], rounds: &[Vec<Round>]) {
    println!(
        "every round: keep-alive p50/p99 ms, req/CPU-s | new-conn p50/p99 ms, conn/CPU-s | bulk MB/s | wrk req/s, req/CPU-s | oha p50/p99 ms"
    );
    println!();
    for (p, rs) in paths.iter().zip(rounds) {
        for (i, r) in rs.iter().enumerate() {
            println!(
                "- {} round {}: {} / {}, {} | {} / {}, {} | {} | {}, {} | {} / {}",
                p.name,
                i + 1,
                cell(r.keep_alive.p50_ms, 3),
                cell(r.keep_alive.p99_ms, 3),
                cell(r.keep_alive.per_cpu_second(), 0),
                cell(r.new_conn.p50_ms, 3),
                cell(r.new_conn.p99_ms, 3),
                cell(r.new_conn.per_cpu_second(), 0),
                cell(per_second(mb(r.bulk_bytes), r.bulk_time), 0),
                cell(r.saturated.map_or(f64::NAN, |s| s.rate()), 0),
                cell(r.saturated.map_or(f64::NAN, |s| s.per_cpu_second()), 0),
                cell(r.open.map_or(f64::NAN, |o| o.p50_ms), 3),
                cell(r.open.map_or(f64::NAN, |o| o.p99_ms), 3),
            );
        }
    }
}
