//! `fedctl demo`: the quickstart. Starts three clusters on this host as
//! real `fedctl run` child processes — east (us-east/us-east-1a), west
//! (us-west/us-west-2a), eu (eu-central/eu-central-1a) — each on its own
//! 127.x address with its own data dir under a temp dir, joins them with
//! real tokens, and narrates what happens with measured times.
//!
//! Every child is killed and the temp dir removed on exit, on failure and on
//! Ctrl-C; `--keep` leaves the federation running and prints how to explore
//! and stop it. A failing step names itself, shows the relevant log lines
//! and exits non-zero.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use tonic::transport::{Channel, Endpoint};

/// The demo's clusters: name, region, zone.
const CLUSTERS: [(&str, &str, &str); 3] = [
    ("east", "us-east", "us-east-1a"),
    ("west", "us-west", "us-west-2a"),
    ("eu", "eu-central", "eu-central-1a"),
];

/// How long any one step may take before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// One running demo cluster.
struct DemoCluster {
    name: &'static str,
    region: &'static str,
    zone: &'static str,
    ip: Ipv4Addr,
    dir: PathBuf,
    child: Option<Child>,
}

impl DemoCluster {
    fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("fedctl.log")
    }

    fn admin(&self) -> String {
        format!("{}:15000", self.ip)
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let ip = self.ip;
        let text = format!(
            "cluster: {name}
locality: {{ region: {region}, zone: {zone} }}
dataDir: ./data
control:
  peeringListen: {ip}:15017
  adminListen: {ip}:15000
  gatewayListen: {ip}:15012
  heartbeatInterval: 250ms
  peerDeadAfter: 1s
dns:
  listen: {ip}:15053
gateway:
  ingressListen: {ip}:15443
  adminListen: {ip}:15090
",
            name = self.name,
            region = self.region,
            zone = self.zone,
        );
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.config(), text)?;
        Ok(())
    }

    fn start(&mut self, exe: &Path) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: Ctrl-C in the terminal reaches the demo,
            // which then stops the clusters itself (or keeps them, --keep).
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The demo's processes and temp dir; dropping it cleans up unless kept.
struct Demo {
    clusters: Vec<DemoCluster>,
    root: PathBuf,
    keep: bool,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for c in &mut self.clusters {
            c.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
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
        .map(|(&(name, region, zone), i)| DemoCluster {
            name,
            region,
            zone,
            ip: Ipv4Addr::new(127, block[0], block[1], i),
            dir: root.join(name),
            child: None,
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

async fn narrate(demo: &mut Demo, exe: &Path) -> anyhow::Result<()> {
    println!("fedmesh demo: three clusters on this host, each a real `fedctl run` process");
    println!("  working folder: {}\n", demo.root.display());

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

    step(3, "peers as east sees them (`fedctl peers`)");
    let peers = list_peers(demo, "east").await?;
    for p in &peers {
        let locality = p
            .locality
            .as_ref()
            .map_or_else(String::new, |l| format!("{}/{}", l.region, l.zone));
        println!(
            "      {:<5} {:<9} {:<10} {:<25} heartbeat {} ms ago",
            p.name,
            p.role,
            p.state,
            locality,
            crate::clock::age(p.last_heartbeat_unix_ms).as_millis()
        );
    }

    step(4, "health check on every cluster (`fedctl check`)");
    for c in &demo.clusters {
        let results = admin(c)
            .await?
            .check(v1::CheckRequest {})
            .await?
            .into_inner()
            .results;
        let failed: Vec<_> = results.iter().filter(|r| !r.ok).collect();
        if !failed.is_empty() {
            bail!("step 4: {} fails its checks: {failed:?}", c.name);
        }
        println!("      {:<5} {} checks ok", c.name, results.len());
    }

    step(5, "losing a cluster: kill -9 west");
    let t = Instant::now();
    demo.clusters[1].kill();
    wait_peer_state(demo, "east", "west", "stale").await?;
    println!(
        "      east marked west stale after {} ms",
        t.elapsed().as_millis()
    );

    step(6, "west restarts from its state store: no new join needed");
    let t = Instant::now();
    demo.clusters[1].start(exe)?;
    wait_for_admin(demo, 1).await?;
    wait_all_connected(demo).await?;
    println!(
        "      all six links connected again {} ms after the restart",
        t.elapsed().as_millis()
    );

    println!("\nnot shown yet: service export, clusterset DNS, gateway traffic and failover —");
    println!("they are being built and will join this demo as they land.");
    Ok(())
}

fn step(n: u32, what: &str) {
    println!("[{n}/6] {what}");
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
    println!("\nthe federation keeps running (--keep). Explore it:");
    for c in &demo.clusters {
        println!("  {exe} --admin {} peers", c.admin());
    }
    println!("  {exe} --admin {} check", demo.clusters[0].admin());
    println!("  {exe} --admin {} token create", demo.clusters[0].admin());
    println!("logs: {}/<cluster>/fedctl.log", demo.root.display());
    let pids: Vec<String> = demo
        .clusters
        .iter()
        .filter_map(|c| c.child.as_ref().map(|ch| ch.id().to_string()))
        .collect();
    println!(
        "stop it with:\n  kill {} && rm -rf {}",
        pids.join(" "),
        demo.root.display()
    );
}
