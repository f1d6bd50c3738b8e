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
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant, SystemTime};

use fedmesh_tests::bench::{
    Mem, cleanup_done, cleanup_on_signal, env_num, install_signal_cleanup, quantile,
};
use fedmesh_tests::{Cluster, EXPORT, Federation, service_yaml};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// When a cluster answered all names: the send time of the query that got
/// the last one (`upper`), and the last time a query still missed one
/// (`lower`), both from the manifests' write.
#[derive(Debug, Default, Clone, Copy)]
struct Converged {
    upper: Duration,
    lower: Duration,
}

/// Polls every cluster's DNS until each answers all `names`.
async fn converge(
    servers: &[(String, SocketAddr)],
    names: &[String],
    t0: Instant,
    timeout: Duration,
    started: Instant,
) -> Vec<Converged> {
    let names: Vec<Name> = names.iter().map(|n| fqdn(n)).collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, (cluster, addr)) in servers.iter().enumerate() {
        let (cluster, addr, names) = (cluster.clone(), *addr, names.clone());
        set.spawn(async move {
            (
                i,
                converge_one(&cluster, addr, names, t0, timeout, started).await,
            )
        });
    }
    let mut out = vec![Converged::default(); servers.len()];
    while let Some(done) = set.join_next().await {
        let (i, c) = done.expect("convergence task");
        out[i] = c;
    }
    out
}

async fn converge_one(
    cluster: &str,
    addr: SocketAddr,
    names: Vec<Name>,
    t0: Instant,
    timeout: Duration,
    started: Instant,
) -> Converged {
    let total = names.len();
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    socket.connect(addr).await.expect("connect");
    let mut missing = names;
    let mut lower = Duration::ZERO;
    let mut upper = Duration::ZERO;
    let mut last_progress = Instant::now();
    let mut id = u16::try_from(std::process::id() % 60_000).unwrap_or(1);
    while !missing.is_empty() {
        assert!(
            t0.elapsed() < timeout,
            "{cluster}: {} of {total} names still missing after {timeout:?}, e.g. {}",
            missing.len(),
            missing[0]
        );
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "[{:7.1}s] waiting for {total} names on {cluster}… {}/{total}",
                started.elapsed().as_secs_f64(),
                total - missing.len()
            );
        }
        // Probe a sample first; sweep all missing names only once some of
        // them answer, to keep the checker's load low while nothing moves.
        let sample: Vec<Name> = missing
            .iter()
            .step_by((missing.len() / SAMPLE).max(1))
            .cloned()
            .collect();
        let probe = query_many(&socket, &sample, &mut id, t0).await;
        let batch = if sample.len() < missing.len() && probe.iter().any(|r| r.answered) {
            query_many(&socket, &missing, &mut id, t0).await
        } else {
            probe.clone()
        };
        let full = batch.len() == missing.len();
        for r in &batch {
            if r.answered {
                upper = upper.max(r.sent);
            } else {
                lower = lower.max(r.sent);
            }
        }
        if full {
            let mut i = 0;
            missing.retain(|_| {
                i += 1;
                !batch[i - 1].answered
            });
        }
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "[{:7.1}s] {cluster} answers all {total} names ({:.2} s after the write)",
        started.elapsed().as_secs_f64(),
        upper.as_secs_f64()
    );
    Converged { upper, lower }
}

/// One query's outcome: answered with an A record, and when it was sent
/// (since `t0`).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    answered: bool,
    sent: Duration,
}

/// Sends A queries for `names` on `socket` with at most [`WINDOW`] in
/// flight; a query unanswered for 500 ms counts as missing.
async fn query_many(
    socket: &tokio::net::UdpSocket,
    names: &[Name],
    id: &mut u16,
    t0: Instant,
) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = vec![
        Outcome {
            answered: false,
            sent: Duration::ZERO,
        };
        names.len()
    ];
    let mut inflight: HashMap<u16, usize> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; 4096];
    loop {
        while inflight.len() < WINDOW && next < names.len() {
            *id = id.wrapping_add(1);
            let bytes = encode(*id, &names[next]);
            out[next].sent = t0.elapsed();
            if socket.send(&bytes).await.is_ok() {
                inflight.insert(*id, next);
            }
            next += 1;
        }
        if inflight.is_empty() {
            return out;
        }
        match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            Ok(Ok(len)) => {
                let Ok(reply) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Some(i) = inflight.remove(&reply.metadata.id) {
                    out[i].answered = is_answer(&reply, &names[i]);
                }
            }
            // Refused (server not there) or silent: give up on this window.
            Ok(Err(_)) | Err(_) => inflight.clear(),
        }
    }
}

/// `name` as a fully qualified name: the question in a reply is one, and
/// hickory's `Name` equality tells `a.b.` from `a.b`.
fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).expect("name");
    name.set_fqdn(true);
    name
}

fn encode(id: u16, name: &Name) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), RecordType::A));
    message.to_vec().expect("encode query")
}

fn is_answer(reply: &Message, name: &Name) -> bool {
    reply.metadata.response_code == ResponseCode::NoError
        && reply.queries.first().is_some_and(|q| q.name() == name)
        && reply.answers.iter().any(|r| matches!(r.data, RData::A(_)))
}

/// One blocking A query: does `server` answer `name` with an address?
fn answers(server: SocketAddr, name: &str, timeout: Duration) -> bool {
    let name = fqdn(name);
    let Ok(socket) = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let id = u16::try_from(std::process::id() % 60_000).unwrap_or(7);
    if socket.set_read_timeout(Some(timeout)).is_err()
        || socket.send_to(&encode(id, &name), server).is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Ok(len) = socket.recv(&mut buf) else {
            return false;
        };
        if let Ok(reply) = Message::from_vec(&buf[..len])
            && reply.metadata.id == id
        {
            return is_answer(&reply, &name);
        }
    }
    false
}

/// "exports changed" log lines: export count → time of the first line
/// with that count.
fn exports_changed(log: &str) -> HashMap<usize, OffsetDateTime> {
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
fn stage_timings(logs: &[String]) -> Vec<(String, Vec<Duration>)> {
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
