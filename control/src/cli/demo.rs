//! `fedctl demo`: the quickstart. Starts three clusters on this host as
//! real `fedctl run` child processes with embedded gateways — east
//! (us-east/us-east-1a), west (us-west/us-west-2a), eu
//! (eu-central/eu-central-1a) — each on its own 127.x address with its own
//! data dir under a temp dir, plus small HTTP backends (`fedctl
//! demo-backend`, answering with their cluster's name) exported in east and
//! west. It joins the clusters with real tokens and narrates: peers, the
//! global service, a DNS answer, requests from east answered by east, east's
//! backend stopped and requests answered by west with the measured
//! switch-over time, then east restored, and a canary route in east that
//! sends 10 % of hello and every `x-canary: true` request to west, with
//! the measured split.
//!
//! Every child is killed and the temp dir removed on exit, on failure and on
//! Ctrl-C; `--keep` leaves the federation running and prints how to explore
//! and stop it. A failing step names itself, shows the relevant log lines
//! and exits non-zero.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod backend;
mod canary;
mod cluster;

use anyhow::{Context, anyhow, bail};
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use hickory_proto::rr::RecordType;
use tonic::transport::{Channel, Endpoint};

use self::cluster::DemoCluster;
use crate::harness::dns;

/// The demo's clusters: name, region, zone.
const CLUSTERS: [(&str, &str, &str); 3] = [
    ("east", "us-east", "us-east-1a"),
    ("west", "us-west", "us-west-2a"),
    ("eu", "eu-central", "eu-central-1a"),
];

/// How long any one step may take before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The global name of the demo's service.
const NAME: &str = "hello.demo.svc.clusterset.local";

/// The demo's processes and temp dir; dropping it cleans up unless kept.
struct Demo {
    clusters: Vec<DemoCluster>,
    root: PathBuf,
    keep: bool,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for c in &mut self.clusters {
            if self.keep {
                c.detach();
            } else {
                c.kill();
            }
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Runs the demo. `keep` leaves the federation running at the end.
///
/// # Errors
/// The step that failed, with the relevant log lines.
pub async fn run(keep: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the fedctl executable")?;
    let root = tempfile::Builder::new()
        .prefix("fedmesh-demo-")
        .tempdir()
        .context("cannot create a temp dir")?
        .keep();
    let block = free_block()?;
    let clusters = CLUSTERS
        .iter()
        .zip(1u8..)
        .map(|(&cluster, i)| {
            let ip = Ipv4Addr::new(127, block[0], block[1], i);
            let vips = format!("127.78.{}.{}/26", block[1], (i - 1) * 64);
            DemoCluster::new(cluster, ip, vips, root.join(cluster.0))
        })
        .collect();
    let mut demo = Demo {
        clusters,
        root,
        keep: false,
    };
    let result = tokio::select! {
        r = narrate(&mut demo, &exe) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (Ctrl-C)")),
    };
    match result {
        Ok(()) if keep => {
            demo.keep = true;
            print_keep_help(&demo);
            Ok(())
        }
        Ok(()) => {
            println!(
                "\ncleaning up: stopping the three control planes and removing {}",
                demo.root.display()
            );
            Ok(())
        }
        Err(e) => {
            println!("\ncleaning up after the failure");
            Err(e)
        }
    }
}

/// How many steps the demo narrates.
const STEPS: u32 = 9;

/// The steps, each printed as it runs.
async fn narrate(demo: &mut Demo, exe: &Path) -> anyhow::Result<()> {
    println!(
        "fedmesh demo: three clusters on this host, each a real `fedctl run` process with an embedded gateway"
    );
    println!("  working folder: {}\n", demo.root.display());
    start_clusters(demo, exe).await?;
    join_all(demo).await?;
    show_peers(demo).await?;
    let vip = export_hello(demo, exe).await?;
    step(5, "DNS: east answers for the global name");
    let answer = dns_a(demo.clusters[0].dns(), NAME).await?;
    println!("      {NAME}. A {answer}  (east's VIP for the service)");
    if answer != vip {
        bail!("step 5: DNS answered {answer}, but east's VIP is {vip}");
    }
    let target = SocketAddr::new(vip.into(), 8080);
    step(
        6,
        &format!("five requests from east to http://{NAME}:8080/ (the VIP {target})"),
    );
    let from = ask_five(target, NAME).await?;
    println!("      answered by: {}", from.join(", "));
    if from.iter().any(|f| f != "hello from east") {
        bail!("step 6: requests from east should stay in east, got {from:?}");
    }
    fail_over_and_back(demo, exe, target).await?;
    canary::run(&demo.clusters[0], target, NAME).await
}

/// Step 1.
async fn start_clusters(demo: &mut Demo, exe: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    step(1, "starting three control planes");
    for c in &mut demo.clusters {
        c.write_config()?;
        c.start(exe)?;
        println!("      {:<5} {}/{} on {}", c.name, c.region, c.zone, c.ip);
    }
    for i in 0..demo.clusters.len() {
        wait_for_admin(demo, i).await?;
    }
    done(t);
    Ok(())
}

/// Step 2.
async fn join_all(demo: &Demo) -> anyhow::Result<()> {
    let t = Instant::now();
    step(
        2,
        "joining them with single-use tokens: west → east, eu → east, eu → west",
    );
    for (joiner, issuer) in [("west", "east"), ("eu", "east"), ("eu", "west")] {
        join(demo, joiner, issuer).await?;
    }
    wait_all_connected(demo).await?;
    done(t);
    Ok(())
}

/// Step 3.
async fn show_peers(demo: &Demo) -> anyhow::Result<()> {
    step(3, "peers as east sees them (`fedctl peers`)");
    for p in &list_peers(demo, "east").await? {
        println!(
            "      {:<5} {:<9} {:<10} {:<25} heartbeat {} ms ago",
            p.name,
            p.role,
            p.state,
            locality(p.locality.as_ref()),
            crate::clock::age(p.last_heartbeat_unix_ms).as_millis()
        );
    }
    Ok(())
}

fn locality(l: Option<&v1::Locality>) -> String {
    l.map_or_else(String::new, |l| format!("{}/{}", l.region, l.zone))
}

/// Step 4: the backends of east and west, and the global service as eu
/// lists it. Returns east's VIP.
async fn export_hello(demo: &mut Demo, exe: &Path) -> anyhow::Result<Ipv4Addr> {
    let t = Instant::now();
    step(
        4,
        "exporting demo/hello (fedmesh.io/export: \"true\") in east and west; `fedctl services` on eu:",
    );
    for i in [0, 1] {
        demo.clusters[i].start_backend(exe)?;
    }
    let service = wait_service(demo, "eu", &["east", "west"]).await?;
    let vip: Ipv4Addr = wait_service(demo, "east", &["east", "west"])
        .await?
        .vip
        .parse()?;
    for c in &service.clusters {
        println!(
            "      {} from {:<5} {:<26} healthy endpoints {}  pinned VIP {}",
            service.dns_name,
            c.name,
            locality(c.locality.as_ref()),
            c.healthy_endpoints,
            c.pinned_vip
        );
    }
    println!(
        "      listed by eu and east {} ms after the manifests were written",
        t.elapsed().as_millis()
    );
    Ok(vip)
}

/// Steps 7 and 8: east's backend stops and west answers; it comes back.
async fn fail_over_and_back(demo: &mut Demo, exe: &Path, target: SocketAddr) -> anyhow::Result<()> {
    step(
        7,
        "stopping east's backend: new requests move to the next locality",
    );
    demo.clusters[0].stop_backend();
    let switched = wait_answer(target, NAME, "hello from west").await?;
    println!(
        "      first answer from west {} ms after east's backend stopped",
        switched.as_millis()
    );
    let from = ask_five(target, NAME).await?;
    println!("      next five answered by: {}", from.join(", "));
    let gateway = SocketAddr::new(demo.clusters[0].ip.into(), GATEWAY_ADMIN_PORT);
    match pooled_to_west(gateway).await {
        Some((connections, handshakes)) => println!(
            "      east's gateway carried them as streams over pooled mTLS to west: {connections} connection(s) and {handshakes} TLS handshake(s) in all, none per request"
        ),
        None => println!("      (east's gateway metrics did not answer; skipping the pool count)"),
    }

    step(8, "restoring east's backend: traffic comes home");
    demo.clusters[0].start_backend(exe)?;
    let back = wait_answer(target, NAME, "hello from east").await?;
    println!(
        "      east answers again {} ms after its backend restarted",
        back.as_millis()
    );
    Ok(())
}

/// The gateway admin port of the demo's clusters (harness config).
const GATEWAY_ADMIN_PORT: u16 = 15090;

/// (pooled connections opened, TLS handshakes) from east's gateway to
/// west's, from east's gateway metrics, once the pools have reported them
/// (every second); `None` when the metrics do not answer within 5 s.
async fn pooled_to_west(gateway: SocketAddr) -> Option<(u64, u64)> {
    let sum = |text: &str, name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("cluster=\"west\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if let Ok(text) = backend::get_path(gateway, "metrics", "/metrics").await {
            let opened = sum(
                &text,
                "fedmesh_gateway_egress_peer_connections_opened_total",
            );
            if opened > 0 {
                let handshakes = sum(&text, "fedmesh_gateway_egress_tls_handshakes_total");
                return Some((opened, handshakes));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Waits until `at` lists demo/hello from exactly `from`.
async fn wait_service(
    demo: &Demo,
    at: &str,
    from: &[&str],
) -> anyhow::Result<v1::GlobalServiceStatus> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let services = admin(cluster(demo, at))
            .await?
            .list_services(v1::ListServicesRequest {})
            .await?
            .into_inner()
            .services;
        if let Some(s) = services
            .into_iter()
            .find(|s| s.namespace == "demo" && s.name == "hello")
        {
            let mut names: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            if names == from && !s.vip.is_empty() {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            return Err(failure(
                cluster(demo, at),
                &format!("{at} never listed demo/hello from {from:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One A query over UDP.
async fn dns_a(server: SocketAddr, name: &str) -> anyhow::Result<Ipv4Addr> {
    let answer = dns::query(server, name, RecordType::A)
        .await
        .map_err(|e| anyhow!("step 5: {e}"))?;
    answer
        .a
        .first()
        .copied()
        .ok_or_else(|| anyhow!("step 5: {server} answered {} with no A record", answer.code))
}

async fn ask_five(target: SocketAddr, host: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for _ in 0..5 {
        out.push(backend::get(target, host).await?);
    }
    Ok(out)
}

/// Sends a request every 10 ms until one is answered with `want`; how long
/// that took.
async fn wait_answer(target: SocketAddr, host: &str, want: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let deadline = t + STEP_TIMEOUT;
    loop {
        if backend::get(target, host).await.is_ok_and(|a| a == want) {
            return Ok(t.elapsed());
        }
        if Instant::now() > deadline {
            bail!("no answer {want:?} through {target} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) fn step(n: u32, what: &str) {
    println!("[{n}/{STEPS}] {what}");
}

fn done(t: Instant) {
    println!("      done in {} ms", t.elapsed().as_millis());
}

async fn admin(c: &DemoCluster) -> anyhow::Result<AdminClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{}", c.admin()))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok(AdminClient::new(channel))
}

fn cluster<'a>(demo: &'a Demo, name: &str) -> &'a DemoCluster {
    demo.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or(&demo.clusters[0])
}

fn failure(c: &DemoCluster, what: &str) -> anyhow::Error {
    anyhow!(
        "{what}\nlast lines of {}'s log ({}):\n{}",
        c.name,
        c.log().display(),
        c.log_tail(15)
    )
}

async fn wait_for_admin(demo: &mut Demo, i: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let c = &mut demo.clusters[i];
        if c.exited() {
            return Err(failure(c, &format!("{} exited while starting", c.name)));
        }
        if admin(c).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failure(
                c,
                &format!("{} did not start within {STEP_TIMEOUT:?}", c.name),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(demo: &Demo, joiner: &str, issuer: &str) -> anyhow::Result<()> {
    let iss = cluster(demo, issuer);
    let token = admin(iss)
        .await?
        .create_token(v1::CreateTokenRequest { ttl_seconds: 600 })
        .await
        .map_err(|e| {
            failure(
                iss,
                &format!("token create on {issuer} failed: {}", e.message()),
            )
        })?
        .into_inner()
        .token;
    let j = cluster(demo, joiner);
    admin(j)
        .await?
        .join_peer(v1::JoinPeerRequest { token })
        .await
        .map_err(|e| {
            failure(
                j,
                &format!("{joiner} could not join {issuer}: {}", e.message()),
            )
        })?;
    println!("      {joiner} joined {issuer}");
    Ok(())
}

async fn list_peers(demo: &Demo, name: &str) -> anyhow::Result<Vec<v1::PeerStatus>> {
    Ok(admin(cluster(demo, name))
        .await?
        .list_peers(v1::ListPeersRequest {})
        .await?
        .into_inner()
        .peers)
}

async fn wait_peer_state(demo: &Demo, at: &str, peer: &str, state: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let peers = list_peers(demo, at).await.unwrap_or_default();
        if peers.iter().any(|p| p.name == peer && p.state == state) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failure(
                cluster(demo, at),
                &format!("{at} never saw {peer} {state}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_all_connected(demo: &Demo) -> anyhow::Result<()> {
    for c in &demo.clusters {
        for other in demo.clusters.iter().filter(|o| o.name != c.name) {
            wait_peer_state(demo, c.name, other.name, "connected").await?;
        }
    }
    Ok(())
}

/// A free `127.A.B.0/24` block, trying a fixed one first so `--keep`
/// output is the same from run to run.
fn free_block() -> anyhow::Result<[u8; 2]> {
    let candidates = (0u8..50).map(|i| [10u8, 10 + i]);
    for block in candidates {
        let free = (1..=3).all(|i| {
            let ip = Ipv4Addr::new(127, block[0], block[1], i);
            [15000, 15012, 15017]
                .iter()
                .all(|p| TcpListener::bind((ip, *p)).is_ok())
        });
        if free {
            return Ok(block);
        }
    }
    bail!("no free 127.10.x.0/24 block for the demo; is another demo still running (--keep)?")
}

fn print_keep_help(demo: &Demo) {
    let exe = std::env::current_exe().map_or_else(|_| "fedctl".into(), |p| p.display().to_string());
    let east = &demo.clusters[0];
    let name = NAME;
    println!("\nthe federation keeps running (--keep). Explore it:");
    println!("  dig -p 15053 @{} {name}", east.ip);
    println!("  dig -p 15053 @{} _http._tcp.{name} SRV", east.ip);
    println!("  VIP=$(dig +short -p 15053 @{} {name})", east.ip);
    // .local names may go to mDNS on a desktop: pin the name to the VIP.
    println!("  curl --resolve {name}:8080:$VIP http://{name}:8080/");
    println!("  curl -H 'x-canary: true' --resolve {name}:8080:$VIP http://{name}:8080/");
    for c in &demo.clusters {
        println!("  {exe} --admin {} peers", c.admin());
    }
    println!("  {exe} --admin {} services", east.admin());
    println!("  {exe} --admin {} check", east.admin());
    let eu = &demo.clusters[2];
    println!(
        "  {exe} --admin {} drill --cluster east --service demo/hello --cluster-admin {} --gateway-admin {}:{GATEWAY_ADMIN_PORT}",
        eu.admin(),
        east.admin(),
        eu.ip
    );
    println!("logs: {}/<cluster>/fedctl.log", demo.root.display());
    let pids: Vec<String> = demo
        .clusters
        .iter()
        .flat_map(DemoCluster::pids)
        .map(|pid| pid.to_string())
        .collect();
    println!(
        "stop it with:\n  kill {} && rm -rf {}",
        pids.join(" "),
        demo.root.display()
    );
}
