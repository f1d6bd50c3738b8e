//! Gateway benchmark: a fedmesh gateway pair against direct TCP and against
//! an HAProxy pair doing the same mTLS, side by side in one run.
//!
//! Three release `fedctl run` clusters with their own `fedgw`: east (the
//! clients' side, us-east-1a, no endpoint of its own), west (us-east-1b,
//! the nearest exporter) and eu (eu-central-1a, the next locality). The
//! backend — a tiny HTTP/1.1 server in this process — runs in west and eu,
//! and the service is exported there. Paths measured:
//!
//! - **direct**: client → west's backend;
//! - **fedmesh**: client → east's VIP (egress) → west's ingress (mTLS) →
//!   backend;
//! - **HAProxy**: client → front HAProxy → back HAProxy in west (mTLS) →
//!   backend ([`haproxy`]).
//!
//! Measures (each path in turn, repeated `GATEWAY_BENCH_ROUNDS` times with
//! the order rotated, medians reported): latency at a fixed request rate
//! on keep-alive connections and with a new connection per request
//! ([`load`], open loop), requests and new connections per gateway
//! CPU-second, single-stream bulk throughput; then RSS with many idle
//! connections; then failover to eu when west's gateway is killed or
//! blackholed (nftables). Run it through `bench/gateway.sh`. Environment:
//! see [`Knobs`]. See docs/benchmarks.md.

mod failover;
mod haproxy;
mod http;
mod load;
mod report;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fedmesh_tests::bench::{cleanup_on_signal, cpu_time, env_num, install_signal_cleanup};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::load::{Mode, Plan};
use crate::report::{Idle, Load, Round};

/// The service port and the backends' port.
const SERVICE_PORT: u16 = 8080;
const BACKEND_PORT: u16 = 18080;
/// The back HAProxies' mTLS port.
const HAPROXY_PORT: u16 = 18443;
/// A request not answered this long failed.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long setup steps may take.
const SETUP: Duration = Duration::from_secs(60);

/// The bench's settings, from the environment (bounded).
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    /// `GATEWAY_BENCH_SECONDS` (1..=30, default 5): length of each
    /// fixed-rate run.
    pub(crate) seconds: u32,
    /// `GATEWAY_BENCH_RATE` (10..=20000, default 1000): keep-alive requests
    /// per second.
    pub(crate) rate: u32,
    /// `GATEWAY_BENCH_CONN_RATE` (10..=5000, default 300): new connections
    /// per second.
    pub(crate) conn_rate: u32,
    /// `GATEWAY_BENCH_BULK_MIB` (1..=4096, default 1024): bulk transfer size.
    pub(crate) bulk_mib: u64,
    /// `GATEWAY_BENCH_IDLE` (0..=20000, default 10000): idle connections.
    pub(crate) idle: usize,
    /// `GATEWAY_BENCH_ROUNDS` (1..=9, default 3): repetitions.
    pub(crate) rounds: usize,
    /// `GATEWAY_BENCH_FAILOVER_RATE` (10..=2000, default 200): requests per
    /// second (each on a new connection) during failover runs.
    pub(crate) failover_rate: u32,
    /// `GATEWAY_BENCH_NFT_TABLE`: the nftables table for blackholing
    /// (created and deleted here); unset: no blackhole runs.
    pub(crate) nft_table: Option<String>,
}

impl Knobs {
    fn from_env() -> Self {
        let n = |var, default, min, max| env_num(var, default, min, max);
        let u = |var, default, min, max| u32::try_from(n(var, default, min, max)).unwrap_or(1);
        Self {
            seconds: u("GATEWAY_BENCH_SECONDS", 5, 1, 30),
            rate: u("GATEWAY_BENCH_RATE", 1000, 10, 20_000),
            conn_rate: u("GATEWAY_BENCH_CONN_RATE", 300, 10, 5_000),
            bulk_mib: n("GATEWAY_BENCH_BULK_MIB", 1024, 1, 4096) as u64,
            idle: n("GATEWAY_BENCH_IDLE", 10_000, 0, 20_000),
            rounds: n("GATEWAY_BENCH_ROUNDS", 3, 1, 9),
            failover_rate: u("GATEWAY_BENCH_FAILOVER_RATE", 200, 10, 2_000),
            nft_table: std::env::var("GATEWAY_BENCH_NFT_TABLE")
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }
}

/// One way from the client to the backend.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    /// `direct`, `fedmesh` or `HAProxy`.
    pub(crate) name: &'static str,
    /// Where the client connects.
    pub(crate) addr: SocketAddr,
    /// The proxy processes on the path (their CPU and memory are counted).
    pub(crate) pids: Vec<u32>,
}

/// Everything running: the federation, its backends, the HAProxies.
struct Setup {
    fed: Federation,
    haproxy: haproxy::Pair,
    vip: SocketAddr,
    west_backend: SocketAddr,
}

impl Setup {
    fn paths(&self) -> [Path; 3] {
        let gw = |c: &str| self.fed.get(c).gateway_pid();
        [
            Path {
                name: "direct",
                addr: self.west_backend,
                pids: Vec::new(),
            },
            Path {
                name: "fedmesh",
                addr: self.vip,
                pids: [gw("east"), gw("west")].into_iter().flatten().collect(),
            },
            Path {
                name: "HAProxy",
                addr: self.haproxy.front_addr,
                pids: [self.haproxy.front.pid(), self.haproxy.west.pid()]
                    .into_iter()
                    .flatten()
                    .collect(),
            },
        ]
    }

    /// Tells the signal handler about every process and the temp folder.
    fn register_cleanup(&self, nft_table: Option<String>) {
        let mut pids: Vec<u32> = self
            .fed
            .clusters
            .iter()
            .flat_map(|c| [c.pid(), c.gateway_pid()])
            .flatten()
            .collect();
        pids.extend(self.haproxy.pids());
        cleanup_on_signal(pids, Some(self.fed.root().to_path_buf()), nft_table);
    }
}

fn main() {
    let knobs = Knobs::from_env();
    install_signal_cleanup();
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        say(&format!("cannot raise the open-file limit: {error}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut setup = start(&rt, &knobs);
    setup.register_cleanup(knobs.nft_table.clone());

    let paths = setup.paths();
    say("warming up every path (1 s each)…");
    for p in &paths {
        let _ = measure(&rt, p, plan(p.addr, knobs.rate, 1, Mode::KeepAlive));
    }
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); paths.len()];
    for r in 0..knobs.rounds {
        for k in 0..paths.len() {
            let i = (k + r) % paths.len();
            let p = &paths[i];
            say(&format!("round {}/{}: {}…", r + 1, knobs.rounds, p.name));
            rounds[i].push(round(&rt, p, &knobs));
        }
    }
    let idle: Vec<Option<Idle>> = paths
        .iter()
        .map(|p| {
            (!p.pids.is_empty() && knobs.idle > 0).then(|| {
                say(&format!("{}: {} idle connections…", p.name, knobs.idle));
                idle(&rt, p, knobs.idle)
            })
        })
        .collect();
    let failovers = failover::run_all(&rt, &mut setup, &knobs);

    report::print(&knobs, &paths, &rounds, &idle, &failovers);
    say("done; stopping everything");
    drop(setup);
    fedmesh_tests::bench::cleanup_done();
}

/// Progress on stderr, with the time since start.
fn say(msg: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    eprintln!("[{:7.1}s] {msg}", start.elapsed().as_secs_f64());
}

/// Starts the clusters, gateways, backends and HAProxies; waits until
/// every path serves from west.
fn start(rt: &Runtime, knobs: &Knobs) -> Setup {
    say("starting east, west, eu (release fedctl run) and their fedgw…");
    let mut fed = Federation::new();
    for (name, region, zone) in [
        ("east", "us-east", "us-east-1a"),
        ("west", "us-east", "us-east-1b"),
        ("eu", "eu-central", "eu-central-1a"),
    ] {
        let i = fed.add(name, region, zone, "");
        let c = &mut fed.clusters[i];
        // Room for the idle connections on one target.
        c.set_gateway_option("maxConnectionsPerTarget", "30000");
        c.start();
    }
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.wait_connected("east", "west", SETUP);
    fed.wait_connected("east", "eu", SETUP);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let bulk = knobs.bulk_mib * 1024 * 1024;
    let backend = |cluster: &str| SocketAddr::new(IpAddr::V4(fed.get(cluster).ip), BACKEND_PORT);
    let (west_backend, eu_backend) = (backend("west"), backend("eu"));
    rt.block_on(async {
        http::start_backend(west_backend, "west", bulk).await;
        http::start_backend(eu_backend, "eu", bulk).await;
    });
    for c in ["west", "eu"] {
        let ip = fed.get(c).ip.to_string();
        fed.get(c).write_manifest(
            "bench.yaml",
            &service_yaml(
                "bench",
                "http",
                "http",
                SERVICE_PORT,
                BACKEND_PORT,
                &[EXPORT],
                &[&ip],
            ),
        );
    }
    let east = fed.get("east");
    wait_until("east imports bench/http from west and eu", SETUP, || {
        east.service_clusters("bench/http") == ["eu", "west"]
    });
    let vip: IpAddr = east.service("bench/http").expect("imported")["vip"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a VIP");
    let vip = SocketAddr::new(vip, SERVICE_PORT);
    wait_until("east's VIP is served by west", SETUP, || {
        http::served_by(vip).as_deref() == Some("west")
    });

    say("starting the HAProxy pair (mTLS) and eu's backup…");
    let host = |c: &str, port| SocketAddr::new(IpAddr::V4(fed.get(c).ip), port);
    let mut haproxy = haproxy::Pair::new(
        &fed.root().join("haproxy"),
        haproxy::Addrs {
            front: host("east", BACKEND_PORT),
            west: (host("west", HAPROXY_PORT), west_backend),
            eu: (host("eu", HAPROXY_PORT), eu_backend),
        },
        knobs.idle.max(800) + 200,
    );
    haproxy.start();
    let front = haproxy.front_addr;
    wait_until("the HAProxy front is served by west", SETUP, || {
        http::served_by(front).as_deref() == Some("west")
    });
    Setup {
        fed,
        haproxy,
        vip,
        west_backend,
    }
}

/// A fixed-rate plan of `seconds` at `rate`.
fn plan(addr: SocketAddr, rate: u32, seconds: u32, mode: Mode) -> Plan {
    Plan {
        addr,
        rate,
        total: u64::from(rate) * u64::from(seconds),
        connections: if mode == Mode::KeepAlive { 32 } else { 0 },
        mode,
        timeout: TIMEOUT,
    }
}

/// Runs `plan` on `path`; latency and the proxies' CPU time.
fn measure(rt: &Runtime, path: &Path, plan: Plan) -> Load {
    let cpu = || path.pids.iter().map(|&p| cpu_time(p)).sum::<Duration>();
    let before = cpu();
    let t0 = Instant::now() + Duration::from_millis(20);
    let samples = rt.block_on(load::run(plan, t0));
    Load::new(&samples, cpu().saturating_sub(before))
}

/// One round on one path: keep-alive load, new-connection load, bulk.
fn round(rt: &Runtime, path: &Path, knobs: &Knobs) -> Round {
    let keep_alive = measure(
        rt,
        path,
        plan(path.addr, knobs.rate, knobs.seconds, Mode::KeepAlive),
    );
    let new_conn = measure(
        rt,
        path,
        plan(
            path.addr,
            knobs.conn_rate,
            knobs.seconds,
            Mode::NewConnection,
        ),
    );
    let cpu = || path.pids.iter().map(|&p| cpu_time(p)).sum::<Duration>();
    let before = cpu();
    let t = std::time::Instant::now();
    let bytes = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(120), http::get_bulk(path.addr)).await
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    Round {
        keep_alive,
        new_conn,
        bulk_bytes: bytes,
        bulk_time: t.elapsed(),
        bulk_cpu: cpu().saturating_sub(before),
    }
}

/// RSS of the path's proxies before, with `n` idle connections through
/// them, and after those closed; twice, so that memory not given back
/// after the first time shows as a leak only if it grows again.
fn idle(rt: &Runtime, path: &Path, n: usize) -> Idle {
    let rss = || {
        path.pids
            .iter()
            .map(|&p| fedmesh_tests::bench::Mem::of(p).rss_kib)
            .sum::<u64>()
    };
    let mut out = Idle {
        before_kib: rss(),
        ..Idle::default()
    };
    for cycle in 0..2 {
        let t = std::time::Instant::now();
        let deadline = Instant::now() + Duration::from_secs(120);
        let opened = rt.block_on(load::open_idle(path.addr, n, 200, deadline));
        let open_time = t.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        let during = rss();
        match opened {
            Ok(conns) => rt.block_on(async move { drop(conns) }),
            Err(e) => out.error = out.error.or(Some(e)),
        }
        std::thread::sleep(Duration::from_secs(3));
        if cycle == 0 {
            (out.during_kib, out.after_kib, out.open_time) = (during, rss(), open_time);
        } else {
            (out.during_again_kib, out.after_again_kib) = (during, rss());
        }
    }
    out
}
