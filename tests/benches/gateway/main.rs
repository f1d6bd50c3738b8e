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
//! A fourth cluster, **remote**, serves `bench/rtt` (west's backend as its
//! endpoint) behind a delaying relay: the new-connection latency across a
//! long link ([`rtt`]).
//!
//! Measures (each path in turn, repeated `GATEWAY_BENCH_ROUNDS` times with
//! the order rotated, medians reported): latency at a fixed request rate
//! on keep-alive connections and with a new connection per request
//! ([`load`], open loop), requests and new connections per gateway
//! CPU-second, single-stream bulk throughput, requests per CPU-second at
//! saturation (`wrk`) and the tail latency at a fixed rate (`oha`)
//! ([`tools`]); then RSS with many idle connections; then new-connection
//! latency at 10, 50 and 100 ms round trips; then failover to eu when
//! west's gateway is killed or blackholed (nftables). Run it through
//! `bench/gateway.sh`. Environment: see [`Knobs`]. See docs/benchmarks.md.
//!
//! With `GATEWAY_BENCH_MODE=http` (`bench/http.sh`) the same paths carry
//! HTTP per request instead: the service port is named `http` (fedmesh's
//! gateways balance each request over the pooled HTTP/2 transport) and
//! both HAProxies run in `mode http` with the same mTLS between them.

mod failover;
mod haproxy;
mod http;
mod load;
mod report;
mod rtt;
mod tools;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fedmesh_tests::bench::{
    cleanup_on_signal, env_num, install_signal_cleanup, tree_cpu_time, tree_rss_kib,
};
use fedmesh_tests::relay::Relay;
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::load::{Mode, Plan};
use crate::report::{Idle, Load, Round, Saturated};

/// The service port and the backends' port.
const SERVICE_PORT: u16 = 8080;
const BACKEND_PORT: u16 = 18080;
/// The gateways' ingress port (the test clusters' config).
const INGRESS_PORT: u16 = 15443;
/// The back HAProxies' mTLS port.
const HAPROXY_PORT: u16 = 18443;
/// The relays' port next to what they delay (and the front's `rtt` port).
const RELAY_PORT_OFFSET: u16 = 1;
/// Keep-alive connections of the saturation (wrk) and oha runs.
const TOOL_CONNECTIONS: usize = 16;
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
    /// `GATEWAY_BENCH_IDLE_CONCURRENCY` (1..=1000, default 200): idle
    /// connections being opened at once.
    pub(crate) idle_concurrency: usize,
    /// `GATEWAY_BENCH_ROUNDS` (1..=9, default 3): repetitions.
    pub(crate) rounds: usize,
    /// `GATEWAY_BENCH_FAILOVER_RATE` (10..=2000, default 200): requests per
    /// second (each on a new connection) during failover runs.
    pub(crate) failover_rate: u32,
    /// `GATEWAY_BENCH_NFT_TABLE`: the nftables table for blackholing
    /// (created and deleted here); unset: no blackhole runs.
    pub(crate) nft_table: Option<String>,
    /// `GATEWAY_BENCH_FAILOVER` (0 or 1, default 1): run the failovers.
    pub(crate) failover: bool,
    /// `GATEWAY_BENCH_WRK` (default `wrk`; empty: skip): the saturation
    /// runs' program.
    pub(crate) wrk: Option<String>,
    /// `GATEWAY_BENCH_OHA` (unset or empty: skip): the fixed-rate tail
    /// latency runs' program.
    pub(crate) oha: Option<String>,
    /// `GATEWAY_BENCH_RTT_MS` (default `10,50,100`, each 1..=500, at most
    /// 5; empty: skip): round trips of the new-connection latency runs.
    pub(crate) rtts_ms: Vec<u64>,
    /// `GATEWAY_BENCH_RTT_CONNECTIONS` (1..=500, default 50): connections
    /// per path and round trip.
    pub(crate) rtt_connections: usize,
    /// `GATEWAY_BENCH_MODE` (`tcp`, default, or `http`): how both proxy
    /// pairs carry the bench service.
    pub(crate) mode: ProxyMode,
}

/// How the proxies on the path carry the bench service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyMode {
    /// Bytes per connection: port `tcp`, HAProxy `mode tcp`.
    Tcp,
    /// Per request: port `http`, HAProxy `mode http`.
    Http,
}

impl ProxyMode {
    /// `GATEWAY_BENCH_MODE`.
    ///
    /// # Panics
    /// When it is set to something other than `tcp` or `http`.
    fn from_env() -> Self {
        match std::env::var("GATEWAY_BENCH_MODE").as_deref() {
            Err(_) | Ok("" | "tcp") => Self::Tcp,
            Ok("http") => Self::Http,
            Ok(other) => panic!("GATEWAY_BENCH_MODE: {other:?} is neither tcp nor http"),
        }
    }

    /// The bench service's port name, which decides how fedmesh carries it.
    pub(crate) fn port_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Http => "http",
        }
    }
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
            idle_concurrency: n("GATEWAY_BENCH_IDLE_CONCURRENCY", 200, 1, 1000),
            rounds: n("GATEWAY_BENCH_ROUNDS", 3, 1, 9),
            failover_rate: u("GATEWAY_BENCH_FAILOVER_RATE", 200, 10, 2_000),
            nft_table: std::env::var("GATEWAY_BENCH_NFT_TABLE")
                .ok()
                .filter(|t| !t.is_empty()),
            failover: n("GATEWAY_BENCH_FAILOVER", 1, 0, 1) == 1,
            wrk: program("GATEWAY_BENCH_WRK", Some("wrk")),
            oha: program("GATEWAY_BENCH_OHA", None),
            rtts_ms: rtts_ms(),
            rtt_connections: n("GATEWAY_BENCH_RTT_CONNECTIONS", 50, 1, 500),
            mode: ProxyMode::from_env(),
        }
    }
}

/// A program named by `var` (`default` when unset); `None` when empty.
fn program(var: &str, default: Option<&str>) -> Option<String> {
    std::env::var(var)
        .ok()
        .or(default.map(str::to_string))
        .filter(|p| !p.is_empty())
}

/// `GATEWAY_BENCH_RTT_MS`, bounded.
///
/// # Panics
/// When it is not a list of at most 5 numbers in 1..=500.
fn rtts_ms() -> Vec<u64> {
    let text = std::env::var("GATEWAY_BENCH_RTT_MS").unwrap_or_else(|_| "10,50,100".into());
    let rtts: Vec<u64> = text
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| match t.trim().parse::<u64>() {
            Ok(ms) if (1..=500).contains(&ms) => ms,
            _ => panic!("GATEWAY_BENCH_RTT_MS: {t:?} is not a round trip in 1..=500 ms"),
        })
        .collect();
    assert!(
        rtts.len() <= 5,
        "GATEWAY_BENCH_RTT_MS: at most 5 round trips"
    );
    rtts
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
    links: rtt::Links,
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
                idle(&rt, p, knobs.idle, knobs.idle_concurrency)
            })
        })
        .collect();
    let rtts = setup.links.run(&rt, &knobs.rtts_ms, knobs.rtt_connections);
    let failovers = if knobs.failover {
        failover::run_all(&rt, &mut setup, &knobs)
    } else {
        Vec::new()
    };

    report::print(&knobs, &paths, &rounds, &idle, &rtts, &failovers);
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

/// Starts the clusters, gateways, backends, relays and HAProxies; waits
/// until every path serves from west.
fn start(rt: &Runtime, knobs: &Knobs) -> Setup {
    say("starting east, west, eu, remote (release fedctl run) and their fedgw…");
    let mut fed = Federation::new();
    // remote's ingress is reached only through its relay, which must be
    // bound before remote advertises it.
    let remote_ip = fed.ip(3);
    let relay_at = |ip, port: u16| SocketAddr::new(IpAddr::V4(ip), port + RELAY_PORT_OFFSET);
    let ingress = SocketAddr::new(IpAddr::V4(remote_ip), INGRESS_PORT);
    let fedmesh_relay = rt
        .block_on(Relay::start_with_handshake(
            relay_at(remote_ip, INGRESS_PORT),
            ingress,
            Duration::ZERO,
        ))
        .expect("remote's relay binds");
    for (name, region, zone) in [
        ("east", "us-east", "us-east-1a"),
        ("west", "us-east", "us-east-1b"),
        ("eu", "eu-central", "eu-central-1a"),
        ("remote", "us-west", "us-west-2a"),
    ] {
        let i = fed.add(name, region, zone, "");
        let c = &mut fed.clusters[i];
        // Room for the idle connections on one target.
        c.set_gateway_option("maxConnectionsPerTarget", "30000");
        if name == "remote" {
            c.set_gateway_option("advertise", &fedmesh_relay.addr().to_string());
        }
        c.start();
    }
    for joiner in ["west", "eu", "remote"] {
        fed.join(joiner, "east");
        fed.wait_connected("east", joiner, SETUP);
    }
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
    let west_ip = fed.get("west").ip.to_string();
    // The port's name decides: `tcp` is carried per connection (compared
    // with HAProxy's tcp mode), `http` per request (with its http mode).
    // The long-link service stays TCP in both.
    let port = knobs.mode.port_name();
    for (c, name, ip, port) in [
        ("west", "http", fed.get("west").ip.to_string(), port),
        ("eu", "http", fed.get("eu").ip.to_string(), port),
        ("remote", "rtt", west_ip, "tcp"),
    ] {
        fed.get(c).write_manifest(
            &format!("bench-{name}.yaml"),
            &service_yaml(
                "bench",
                name,
                port,
                SERVICE_PORT,
                BACKEND_PORT,
                &[EXPORT],
                &[&ip],
            ),
        );
    }
    let vip = imported_vip(&fed, "bench/http", &["eu", "west"]);
    let rtt_vip = imported_vip(&fed, "bench/rtt", &["remote"]);
    let (haproxy, links) = start_haproxy(rt, &fed, knobs, west_backend, (rtt_vip, fedmesh_relay));
    Setup {
        fed,
        haproxy,
        vip,
        west_backend,
        links,
    }
}

/// Waits until east imports `service` from `clusters` and its VIP serves
/// from west; the VIP and service port.
fn imported_vip(fed: &Federation, service: &str, clusters: &[&str]) -> SocketAddr {
    let east = fed.get("east");
    wait_until(
        &format!("east imports {service} from {clusters:?}"),
        SETUP,
        || east.service_clusters(service) == clusters,
    );
    let vip: IpAddr = east.service(service).expect("imported")["vip"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a VIP");
    let vip = SocketAddr::new(vip, SERVICE_PORT);
    wait_until(
        &format!("east's VIP of {service} is served by west"),
        SETUP,
        || http::served_by(vip).as_deref() == Some("west"),
    );
    vip
}

/// Starts the HAProxy pair (mTLS), eu's backup and the relays of the
/// direct and HAProxy paths of [`rtt`]; with `fedmesh` (the VIP and relay
/// of the fedmesh path), the three paths across a long link.
fn start_haproxy(
    rt: &Runtime,
    fed: &Federation,
    knobs: &Knobs,
    west_backend: SocketAddr,
    fedmesh: (SocketAddr, Relay),
) -> (haproxy::Pair, rtt::Links) {
    say("starting the HAProxy pair (mTLS), eu's backup and the relays…");
    let host = |c: &str, port| SocketAddr::new(IpAddr::V4(fed.get(c).ip), port);
    let relay = |listen: SocketAddr, upstream| {
        rt.block_on(Relay::start_with_handshake(
            listen,
            upstream,
            Duration::ZERO,
        ))
        .unwrap_or_else(|e| panic!("relay on {listen}: {e}"))
    };
    let direct = relay(host("west", BACKEND_PORT + RELAY_PORT_OFFSET), west_backend);
    let west_tls = host("west", HAPROXY_PORT);
    let to_haproxy = relay(host("west", HAPROXY_PORT + RELAY_PORT_OFFSET), west_tls);
    let rtt_front = host("east", BACKEND_PORT + RELAY_PORT_OFFSET);
    let mut haproxy = haproxy::Pair::new(
        &fed.root().join("haproxy"),
        haproxy::Addrs {
            front: host("east", BACKEND_PORT),
            west: (west_tls, west_backend),
            eu: (host("eu", HAPROXY_PORT), host("eu", BACKEND_PORT)),
            rtt: (rtt_front, to_haproxy.addr()),
        },
        knobs.idle.max(800) + 200,
        knobs.mode,
    );
    haproxy.start();
    let front = haproxy.front_addr;
    wait_until("the HAProxy front is served by west", SETUP, || {
        http::served_by(front).as_deref() == Some("west")
    });
    let links = rtt::Links {
        paths: vec![
            ("direct", direct.addr(), direct),
            ("fedmesh", fedmesh.0, fedmesh.1),
            ("HAProxy", rtt_front, to_haproxy),
        ],
    };
    for (name, addr, _) in &links.paths {
        wait_until(
            &format!("the {name} path across the relay serves"),
            SETUP,
            || http::served_by(*addr).as_deref() == Some("west"),
        );
    }
    (haproxy, links)
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
    let before = path_cpu(path);
    let t0 = Instant::now() + Duration::from_millis(20);
    let samples = rt.block_on(load::run(plan, t0));
    Load::new(&samples, path_cpu(path).saturating_sub(before))
}

/// The CPU time of the path's proxies (whole process trees) so far.
fn path_cpu(path: &Path) -> Duration {
    path.pids.iter().map(|&p| tree_cpu_time(p)).sum()
}

/// One round on one path: keep-alive load, new-connection load, bulk,
/// saturation (wrk), fixed-rate tail latency (oha).
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
    let before = path_cpu(path);
    let t = std::time::Instant::now();
    let bytes = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(120), http::get_bulk(path.addr)).await
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let (bulk_time, bulk_cpu) = (t.elapsed(), path_cpu(path).saturating_sub(before));
    Round {
        keep_alive,
        new_conn,
        bulk_bytes: bytes,
        bulk_time,
        bulk_cpu,
        saturated: saturate(path, knobs),
        open: knobs.oha.as_deref().and_then(|oha| {
            tools::oha(oha, path.addr, knobs.rate, TOOL_CONNECTIONS, knobs.seconds)
                .map_err(|e| say(&format!("{}: oha: {e}", path.name)))
                .ok()
        }),
    }
}

/// `wrk` at saturation on `path`, with the proxies' CPU time meanwhile.
fn saturate(path: &Path, knobs: &Knobs) -> Option<Saturated> {
    let wrk = knobs.wrk.as_deref()?;
    let before = path_cpu(path);
    match tools::wrk(wrk, path.addr, TOOL_CONNECTIONS, knobs.seconds) {
        Ok(closed) => Some(Saturated {
            closed,
            cpu: path_cpu(path).saturating_sub(before),
        }),
        Err(e) => {
            say(&format!("{}: wrk: {e}", path.name));
            None
        }
    }
}

/// RSS of the path's proxies before, with `n` idle connections through
/// them, and after those closed; twice, so that memory not given back
/// after the first time shows as a leak only if it grows again.
fn idle(rt: &Runtime, path: &Path, n: usize, concurrency: usize) -> Idle {
    let rss = || path.pids.iter().map(|&p| tree_rss_kib(p)).sum::<u64>();
    let mut out = Idle {
        before_kib: rss(),
        ..Idle::default()
    };
    for cycle in 0..2 {
        let t = std::time::Instant::now();
        let deadline = Instant::now() + Duration::from_secs(120);
        let (conns, failed) = rt.block_on(load::open_idle(path.addr, n, concurrency, deadline));
        let open_time = t.elapsed();
        let opened = conns.len();
        if let Some(f) = failed {
            let e = format!("cycle {}: {opened} of {n} opened, then {f:?}", cycle + 1);
            say(&format!("{}: {e}", path.name));
            out.error = out.error.or(Some(e));
        }
        std::thread::sleep(Duration::from_secs(1));
        let during = rss();
        rt.block_on(async move { drop(conns) });
        std::thread::sleep(Duration::from_secs(3));
        if cycle == 0 {
            (out.during_kib, out.after_kib, out.open_time) = (during, rss(), open_time);
            out.opened = opened;
        } else {
            (out.during_again_kib, out.after_again_kib) = (during, rss());
            out.opened_again = opened;
        }
    }
    out
}
