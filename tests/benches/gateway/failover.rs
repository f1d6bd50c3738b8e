//! Failover runs: fixed-rate load (a new connection per request) on the
//! fedmesh VIP or the HAProxy front while west's side fails — its gateway
//! (back HAProxy) SIGKILLed, or blackholed with an nftables `drop` rule on
//! its mTLS address and port, so packets vanish without a reset — and
//! traffic must move to eu. After each run the failure is undone and the
//! bench waits (bounded) until west serves again.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::load::{self, Mode, Sample};
use crate::{HAPROXY_PORT, Knobs, Setup, TIMEOUT, http, say};

/// Load before the failure.
const BEFORE: Duration = Duration::from_secs(1);
/// Load after it.
const AFTER: Duration = Duration::from_secs(4);
/// A request slower than this counts as slowed by the failover.
const SLOW: Duration = Duration::from_millis(100);
/// How long west may take to serve again after the failure is undone.
const RECOVER: Duration = Duration::from_secs(30);

/// Which side is failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Fedmesh,
    Haproxy,
}

/// How it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Kill,
    Blackhole,
}

/// One failover run's result.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    /// `fedmesh` or `HAProxy`.
    pub(crate) system: &'static str,
    /// What was done to west's side.
    pub(crate) event: &'static str,
    /// The numbers, or why there are none.
    pub(crate) result: Result<Stats, String>,
}

/// What the clients saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    /// Requests sent.
    pub(crate) total: usize,
    /// Requests that failed (error or no answer within the timeout).
    pub(crate) failed: usize,
    /// Requests slower than [`SLOW`].
    pub(crate) slow: usize,
    /// The slowest request.
    pub(crate) max_latency: Duration,
    /// From the failure to the first answer from eu.
    pub(crate) first_next: Option<Duration>,
    /// The longest stretch without a successful answer, from the failure on.
    pub(crate) gap: Duration,
    /// After the failure was undone, until west served again.
    pub(crate) recovered: Option<Duration>,
}

/// Kill and blackhole runs, fedmesh then HAProxy.
pub(crate) fn run_all(rt: &Runtime, setup: &mut Setup, knobs: &Knobs) -> Vec<Failover> {
    let mut out = Vec::new();
    for system in [System::Fedmesh, System::Haproxy] {
        for event in [Event::Kill, Event::Blackhole] {
            let result = match (&knobs.nft_table, event) {
                (None, Event::Blackhole) => {
                    Err("not measured: needs root and nftables (GATEWAY_BENCH_NFT_TABLE)".into())
                }
                (table, _) => Ok(run_one(rt, setup, knobs, system, event, table.as_deref())),
            };
            out.push(Failover {
                system: match system {
                    System::Fedmesh => "fedmesh",
                    System::Haproxy => "HAProxy",
                },
                event: match event {
                    Event::Kill => "west's gateway SIGKILLed",
                    Event::Blackhole => "west's gateway blackholed",
                },
                result,
            });
        }
    }
    out
}

fn run_one(
    rt: &Runtime,
    setup: &mut Setup,
    knobs: &Knobs,
    system: System,
    event: Event,
    table: Option<&str>,
) -> Stats {
    let (addr, west_tls) = match system {
        System::Fedmesh => (setup.vip, setup.fed.get("west").ingress()),
        System::Haproxy => (
            setup.haproxy.front_addr,
            format!("{}:{HAPROXY_PORT}", setup.fed.get("west").ip),
        ),
    };
    let west_tls: SocketAddr = west_tls.parse().expect("west's mTLS address");
    say(&format!(
        "failover: {system:?}, {event:?} of {west_tls}, {} req/s…",
        knobs.failover_rate
    ));
    let secs = (BEFORE + AFTER).as_secs_f64();
    let plan = load::Plan {
        addr,
        rate: knobs.failover_rate,
        total: (f64::from(knobs.failover_rate) * secs) as u64,
        connections: 0,
        mode: Mode::NewConnection,
        timeout: TIMEOUT,
    };
    let t0 = Instant::now() + Duration::from_millis(20);
    let running = rt.spawn(load::run(plan, t0));
    std::thread::sleep((t0 + BEFORE).saturating_duration_since(Instant::now()));
    let at = t0.elapsed();
    match (event, system) {
        (Event::Kill, System::Fedmesh) => setup.fed.get_mut("west").kill_gateway(),
        (Event::Kill, System::Haproxy) => setup.haproxy.west.kill(),
        (Event::Blackhole, _) => blackhole(table.expect("blackhole runs have a table"), west_tls),
    }
    let samples = rt.block_on(running).expect("failover load");
    let undone = std::time::Instant::now();
    match (event, system) {
        (Event::Kill, System::Fedmesh) => setup.fed.get_mut("west").start_gateway(),
        (Event::Kill, System::Haproxy) => setup.haproxy.west.start(),
        (Event::Blackhole, _) => unblackhole(table.expect("blackhole runs have a table")),
    }
    setup.register_cleanup(table.map(str::to_string));
    let recovered = wait_for_west(addr).then(|| undone.elapsed());
    analyse(&samples, at, recovered)
}

/// Polls (bounded) until a new connection to `addr` is served by west.
fn wait_for_west(addr: SocketAddr) -> bool {
    let deadline = std::time::Instant::now() + RECOVER;
    while std::time::Instant::now() < deadline {
        if http::served_by(addr).as_deref() == Some("west") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say(&format!(
        "{addr} is not served by west again within {RECOVER:?}"
    ));
    false
}

fn analyse(samples: &[Sample], at: Duration, recovered: Option<Duration>) -> Stats {
    let mut done: Vec<Duration> = samples
        .iter()
        .filter(|s| s.result.is_ok())
        .map(|s| s.done)
        .collect();
    done.sort();
    // Successful answers from just before the failure on: the gap between
    // the last one before it and the next is part of the outage.
    let from = done.iter().rposition(|d| *d < at).unwrap_or(0);
    let gap = done[from..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Stats {
        total: samples.len(),
        failed: samples.iter().filter(|s| s.result.is_err()).count(),
        slow: samples.iter().filter(|s| s.latency() > SLOW).count(),
        max_latency: samples
            .iter()
            .map(Sample::latency)
            .max()
            .unwrap_or_default(),
        first_next: samples
            .iter()
            .filter(|s| s.done >= at && s.result.as_deref().is_ok_and(|n| n == "eu"))
            .map(|s| s.done - at)
            .min(),
        gap,
        recovered,
    }
}

/// Drops every packet to and from `addr` (TCP) on this host: the gateway
/// is there but silent, as behind a dead link.
fn blackhole(table: &str, addr: SocketAddr) {
    let (ip, port) = (addr.ip(), addr.port());
    let rules = format!(
        "table inet {table} {{
  chain output {{
    type filter hook output priority -10; policy accept;
    ip daddr {ip} tcp dport {port} drop
    ip saddr {ip} tcp sport {port} drop
  }}
}}
"
    );
    nft(&["-f", "-"], Some(&rules));
}

fn unblackhole(table: &str) {
    nft(&["delete", "table", "inet", table], None);
}

fn nft(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nft (apt-get install nftables)");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.unwrap_or("").as_bytes());
    }
    let status = child.wait().expect("nft exit");
    assert!(status.success(), "nft {args:?} failed: {status}");
}
