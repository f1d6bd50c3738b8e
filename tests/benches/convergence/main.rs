//! Convergence benchmark: three release `fedctl run` clusters (east, west,
//! eu) in a full mesh, each exporting `CONVERGENCE_SERVICES` (10 000)
//! distinct services from its static registry. Measures
//!
//! (a) the time from writing the manifests to every cluster's DNS answering
//!     all names (30 000 with the defaults);
//! (b) change propagation: one new service exported in one cluster at a
//!     time (rotating), until every other cluster's DNS answers it;
//! (c) control-plane memory (VmRSS, VmHWM) idle and with 30 000 services.
//!
//! Run it through `bench/convergence.sh`, which builds the release binaries
//! first (`cargo bench` does not build `fedctl`). Environment:
//! `CONVERGENCE_SERVICES` (per cluster, 1..=10000), `CONVERGENCE_CHANGES`
//! (1..=1000, default 200), `CONVERGENCE_TIMEOUT` (seconds, default 600),
//! `FEDMESH_BIN_DIR` (default: the `target/<profile>` folder of this
//! executable). See docs/benchmarks.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use fedmesh_tests::bench::{
    Mem, cleanup_done, cleanup_on_signal, env_num, install_signal_cleanup, quantile,
};
use fedmesh_tests::{Cluster, EXPORT, Federation, service_yaml};
use time::OffsetDateTime;

/// Services per manifest file (the static registry refuses a file of more
/// than 1024 YAML documents: serde-saphyr's default budget).
const PER_FILE: usize = 1_000;
/// Queries in flight per cluster while checking convergence.
const WINDOW: usize = 256;
/// Names probed before a full sweep of the missing ones.
const SAMPLE: usize = 64;
/// The pause before each change, at a random phase below it, so changes
/// do not land in step with the control plane's own timers (the static
/// registry reacts to file events, debounced by 15 ms).
const CHANGE_SPACING_MS: u64 = 250;

mod dns;
mod logs;

use dns::{answers, converge};
use logs::{exports_changed, stage_timings};

fn main() {
    let per_cluster = env_num("CONVERGENCE_SERVICES", 10_000, 1, 10_000);
    let changes = env_num("CONVERGENCE_CHANGES", 200, 1, 1_000);
    let timeout = Duration::from_secs(env_num("CONVERGENCE_TIMEOUT", 600, 10, 3_600) as u64);
    install_signal_cleanup();
    let started = Instant::now();
    let say = |msg: &str| eprintln!("[{:7.1}s] {msg}", started.elapsed().as_secs_f64());

    say("starting east, west, eu (release fedctl run)…");
    let mut fed = Federation::new();
    for (i, (name, region, zone)) in [
        ("east", "us-east", "us-east-1a"),
        ("west", "us-west", "us-west-2a"),
        ("eu", "eu-central", "eu-central-1a"),
    ]
    .into_iter()
    .enumerate()
    {
        fed.add(name, region, zone, "");
        // Debug timing lines of each stage a change goes through, read back
        // in (d).
        fed.clusters[i].env.push((
            "FEDMESH_LOG".into(),
            "info,fedmesh_control=debug,fedmesh_dns=debug,hickory_server=warn".into(),
        ));
        // Two VIPs per global service (its own and one pinned per
        // exporter): the harness's /26 holds 64. No gateway runs here, so
        // nothing binds these addresses.
        fed.clusters[i].set_gateway_option("vipRange", &format!("127.{}.0.0/16", 60 + i));
        fed.clusters[i].start();
    }
    cleanup_on_signal(
        fed.clusters.iter().filter_map(Cluster::pid).collect(),
        Some(fed.root().to_path_buf()),
        None,
    );
    say("joining them into a full mesh…");
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.join("eu", "west");
    for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
        fed.wait_connected(a, b, Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle: Vec<Mem> = fed.clusters.iter().map(mem).collect();

    // (a) Convergence: all manifests written at once, then every cluster's
    // DNS polled until it answers every name.
    let total = per_cluster * fed.clusters.len();
    say(&format!(
        "generating {per_cluster} services per cluster ({total} in all)…"
    ));
    let mut files = Vec::new();
    let mut names = Vec::new();
    for c in &fed.clusters {
        let mut file = String::new();
        for i in 1..=per_cluster {
            let (ns, name) = (
                format!("bench-{}", i % 10),
                format!("{}-svc-{i:05}", c.name),
            );
            names.push(format!("{name}.{ns}.svc.clusterset.local"));
            file.push_str("---\n");
            file.push_str(&service_yaml(
                &ns,
                &name,
                "http",
                8080,
                8080,
                &[EXPORT],
                &[],
            ));
            if i % PER_FILE == 0 || i == per_cluster {
                files.push((c, format!("bench-{:03}.yaml", (i - 1) / PER_FILE), file));
                file = String::new();
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    say(&format!(
        "writing {} manifest files and waiting for {total} names on every cluster…",
        files.len()
    ));
    let t0 = Instant::now();
    for (c, file, yaml) in &files {
        c.write_manifest(file, yaml);
    }
    let written = t0.elapsed();
    let servers: Vec<(String, SocketAddr)> = fed
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.dns()))
        .collect();
    let converged = rt.block_on(converge(&servers, &names, t0, timeout, started));
    let all_done = converged.iter().map(|c| c.upper).max().unwrap_or_default();
    let all_lower = converged.iter().map(|c| c.lower).max().unwrap_or_default();
    say(&format!(
        "all clusters answer all {total} names after {:.2} s",
        all_done.as_secs_f64()
    ));
    for c in &fed.clusters {
        let listed = c.services().len();
        assert_eq!(listed, total, "{} lists {listed} services", c.name);
    }
    std::thread::sleep(Duration::from_secs(2));
    let loaded: Vec<Mem> = fed.clusters.iter().map(mem).collect();

    // (b) Change propagation.
    say(&format!(
        "change propagation: {changes} new services, one at a time…"
    ));
    let mut rng = Rng::new();
    let mut all_others = Vec::new();
    let mut each_other = Vec::new();
    let mut marks = Vec::new(); // (exporting cluster, its export count, write time, total)
    let mut exported: HashMap<usize, usize> = HashMap::new();
    let log_offsets: Vec<usize> = fed.clusters.iter().map(|c| c.log().len()).collect();
    for i in 0..changes {
        let src = i % fed.clusters.len();
        let c = &fed.clusters[src];
        let name = format!("chg-{i:04}");
        let fqdn = format!("{name}.bench-chg.svc.clusterset.local");
        let yaml = service_yaml("bench-chg", &name, "http", 8080, 8080, &[EXPORT], &[]);
        // A random phase against the control plane's timers.
        std::thread::sleep(Duration::from_millis(rng.below(CHANGE_SPACING_MS)));
        let wall = SystemTime::now();
        let t = Instant::now();
        c.write_manifest(&format!("{name}.yaml"), &yaml);
        let mut pending: Vec<usize> = (0..fed.clusters.len()).filter(|&j| j != src).collect();
        while !pending.is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{fqdn} (exported by {}) not answered within 30 s by {:?}",
                c.name,
                pending
                    .iter()
                    .map(|&j| &fed.clusters[j].name)
                    .collect::<Vec<_>>()
            );
            pending.retain(|&j| {
                if answers(fed.clusters[j].dns(), &fqdn, Duration::from_millis(200)) {
                    each_other.push(t.elapsed());
                    false
                } else {
                    true
                }
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let took = t.elapsed();
        all_others.push(took);
        let count = exported.entry(src).or_insert(per_cluster);
        *count += 1;
        marks.push((src, *count, wall, took));
        if (i + 1) % 50 == 0 || i + 1 == changes {
            say(&format!(
                "  {}/{changes} changes, last {:.1} ms",
                i + 1,
                took.as_secs_f64() * 1e3
            ));
        }
    }
    let after_changes: Vec<Mem> = fed.clusters.iter().map(mem).collect();

    // The export-state change times, from the exporting clusters' logs.
    let seen: Vec<HashMap<usize, OffsetDateTime>> = fed
        .clusters
        .iter()
        .map(|c| exports_changed(&c.log()))
        .collect();
    let mut detect = Vec::new();
    let mut after_seen = Vec::new();
    for (src, count, wall, took) in &marks {
        if let Some(at) = seen[*src].get(count) {
            let d = (*at - OffsetDateTime::from(*wall))
                .as_seconds_f64()
                .max(0.0);
            let d = Duration::from_secs_f64(d).min(*took);
            detect.push(d);
            after_seen.push(*took - d);
        }
    }

    // Report.
    let names_of: Vec<&str> = fed.clusters.iter().map(|c| c.name.as_str()).collect();
    println!();
    println!(
        "fedmesh convergence: 3 clusters (release fedctl run), full mesh, {per_cluster} services exported per cluster, {total} global services"
    );
    println!(
        "machine: {} CPUs, loopback; checker: tokio current-thread, UDP, {WINDOW} queries in flight per cluster",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!();
    println!(
        "(a) manifests written ({} files in {:.1} ms) → DNS answers all {total} names",
        files.len(),
        written.as_secs_f64() * 1e3
    );
    println!();
    println!("| cluster | converged after (s) | not yet at (s) |");
    println!("|---------|--------------------:|---------------:|");
    for (name, c) in names_of.iter().zip(&converged) {
        println!(
            "| {name} | {:.2} | {:.2} |",
            c.upper.as_secs_f64(),
            c.lower.as_secs_f64()
        );
    }
    println!(
        "| all | {:.2} | {:.2} |",
        all_done.as_secs_f64(),
        all_lower.as_secs_f64()
    );
    println!();
    println!(
        "\"converged after\" = when the query that first got the last name was sent; \"not yet at\" = the last query still missing a name, so the true time lies between the two."
    );
    println!();
    println!(
        "(b) change propagation: {changes} changes (one new service, exporting cluster rotating), write → DNS answers (the registry reacts to file events; DNS polled every ~2 ms)"
    );
    println!();
    println!("| measure | n | p50 ms | p90 ms | p95 ms | p99 ms | max ms |");
    println!("|---------|--:|-------:|-------:|-------:|-------:|-------:|");
    row("write → every other cluster answers", &all_others);
    row("write → one other cluster answers (each pair)", &each_other);
    if !detect.is_empty() {
        row("write → exporter's \"exports changed\" log line", &detect);
        row(
            "\"exports changed\" → every other cluster answers",
            &after_seen,
        );
    }
    println!();
    println!(
        "(d) where a change's time goes: the stages' debug timing lines during (b), every cluster"
    );
    println!();
    println!("| measure | n | p50 ms | p90 ms | p95 ms | p99 ms | max ms |");
    println!("|---------|--:|-------:|-------:|-------:|-------:|-------:|");
    let logs: Vec<String> = fed
        .clusters
        .iter()
        .zip(&log_offsets)
        .map(|(c, &at)| c.log().get(at..).unwrap_or_default().to_string())
        .collect();
    for (stage, samples) in stage_timings(&logs) {
        row(&stage, &samples);
    }
    println!();
    println!("(c) control-plane memory (/proc/PID/status)");
    println!();
    println!(
        "| cluster | idle, peered, 0 services: VmRSS MiB | after (a), {total} services: VmRSS MiB | VmHWM MiB | after (b): VmRSS MiB | VmHWM MiB |"
    );
    println!("|---------|---:|---:|---:|---:|---:|");
    for (i, name) in names_of.iter().enumerate() {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            idle[i].rss_mib(),
            loaded[i].rss_mib(),
            loaded[i].hwm_mib(),
            after_changes[i].rss_mib(),
            after_changes[i].hwm_mib()
        );
    }
    say("done; stopping the clusters");
    drop(fed);
    cleanup_done();
}

fn mem(c: &Cluster) -> Mem {
    c.pid().map(Mem::of).unwrap_or_default()
}

/// Prints one percentile row.
fn row(what: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |p: f64| quantile(&ms, p).unwrap_or(0.0);
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        pick(0.50),
        pick(0.90),
        pick(0.95),
        pick(0.99),
        pick(1.0)
    );
}

/// xorshift64, seeded from the clock: enough to spread write times.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
