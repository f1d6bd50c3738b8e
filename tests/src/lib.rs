//! End-to-end test harness: real `fedctl` processes on loopback.
//!
//! Each [`Federation`] gets its own `127.A.B.0/24` block (random A, B), so
//! test binaries and tests running at once never share an address, and each
//! cluster `i` in it listens on `127.A.B.(i+1)` with the standard ports.
//! Processes are killed by pid when their [`Cluster`] is dropped, also when
//! a test fails, and a failing test prints every cluster's log.
//!
//! Binaries are found next to the test executable (`target/<profile>/`),
//! or in `FEDMESH_BIN_DIR`; `cargo test --workspace` builds them.
//!
//! [`netns`] runs clusters in network namespaces of their own (root only),
//! with [`relay`] to add latency where the kernel cannot.

pub mod netns;
pub mod relay;
pub mod silent;

pub mod docs;

use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod bench;
pub mod fake_kube;

/// Installs the ring crypto provider once per test process.
pub fn init_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Path of a workspace binary (`fedctl`, `fedgw`).
///
/// # Panics
/// When the binary was not built.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("FEDMESH_BIN_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing; build it first with `cargo build --workspace` (or set FEDMESH_BIN_DIR)",
        path.display()
    );
    path
}

/// Polls `check` every 50 ms until it returns true.
///
/// # Panics
/// With `what` when `timeout` passes first.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A finished `fedctl` client command.
#[derive(Debug)]
pub struct Out {
    /// Exit success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Parses stdout as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Picks a free `127.A.B.0/24` block.
fn pick_block() -> [u8; 2] {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id()) << 32;
    let mut x = (seed as u64) | 1;
    for _ in 0..64 {
        // xorshift: cheap, and different per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = 100 + (x % 150) as u8;
        let b = (x >> 8) as u8;
        if TcpListener::bind((Ipv4Addr::new(127, a, b, 1), 15017)).is_ok() {
            return [a, b];
        }
    }
    panic!("no free 127.x.y.0/24 block found");
}

/// One cluster's control plane process.
#[derive(Debug)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// The cluster's loopback address. For a cluster in a network
    /// namespace it is that namespace's loopback, which only commands run
    /// there ([`Cluster::command`]) can reach.
    pub ip: Ipv4Addr,
    /// Its folder (config, data, log).
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// Extra environment for its `fedctl run` (e.g. `KUBECONFIG`).
    pub env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    log_offset: u64,
    gateway: Option<Child>,
    /// The network namespace its processes run in (`None`: this one).
    netns: Option<String>,
}

impl Cluster {
    /// A cluster living in `dir` (config, data, log), not started; its
    /// clients dial `ip`, its processes run in `netns` when given.
    fn new(name: &str, ip: Ipv4Addr, dir: PathBuf, netns: Option<String>) -> Self {
        std::fs::create_dir_all(&dir).expect("cluster dir");
        Self {
            name: name.to_string(),
            ip,
            config: dir.join("config.yaml"),
            log: dir.join("fedctl.log"),
            dir,
            env: Vec::new(),
            child: None,
            log_offset: 0,
            gateway: None,
            netns,
        }
    }

    /// A command running `program` where this cluster lives: directly, or
    /// through `ip netns exec NS`, which execs, so the child's pid is the
    /// program's own and killing it by pid kills the program.
    pub fn command(&self, program: &Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(program);
                cmd
            }
        }
    }

    /// Starts `fedgw` with this cluster's config and waits for its ingress.
    ///
    /// # Panics
    /// When it exits or does not come up in 20 s (its log is printed).
    pub fn start_gateway(&mut self) {
        assert!(
            self.gateway.is_none(),
            "{}'s gateway already running",
            self.name
        );
        let path = self.dir.join("fedgw.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open gateway log");
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = self
            .command(&bin("fedgw"))
            .arg("--config")
            .arg(&self.config)
            .env("FEDMESH_LOG", "info,fedmesh_gateway=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn fedgw");
        self.gateway = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text
                .get(usize::try_from(offset).unwrap_or(0)..)
                .unwrap_or("")
                .contains("gateway ingress listening on")
            {
                return;
            }
            if let Some(status) = self
                .gateway
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.gateway = None;
                panic!("{}'s gateway exited with {status}:\n{text}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{}'s gateway did not start:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The gateway's process id, when it runs.
    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(Child::id)
    }

    /// SIGKILLs the gateway.
    pub fn kill_gateway(&mut self) {
        if let Some(mut child) = self.gateway.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM to the gateway (it drains) without waiting.
    pub fn signal_gateway_term(&self) {
        if let Some(g) = &self.gateway {
            signal(g.id(), "TERM");
        }
    }

    /// Waits (bounded) for the gateway to exit; whether it exited cleanly.
    pub fn wait_gateway_exit(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.gateway.take() else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The gateway's log.
    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fedgw.log")).unwrap_or_default()
    }

    /// The gateway's ingress address.
    pub fn ingress(&self) -> String {
        format!("{}:15443", self.ip)
    }

    /// GET on the gateway's admin port; (status, body).
    ///
    /// # Panics
    /// For a cluster in a network namespace (this process cannot reach
    /// its loopback; `netns::helper::get` asks from inside).
    pub fn gateway_admin(&self, path: &str) -> (u16, String) {
        assert!(
            self.netns.is_none(),
            "{} runs in a network namespace: ask its admin port from inside it",
            self.name
        );
        http_get(&format!("{}:15090", self.ip), path)
    }
    /// Admin API address.
    pub fn admin(&self) -> String {
        format!("{}:15000", self.ip)
    }

    /// Peering address.
    pub fn peering(&self) -> String {
        format!("{}:15017", self.ip)
    }

    /// DNS address (UDP and TCP).
    pub fn dns(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((self.ip, 15053))
    }

    /// Gateway API address.
    pub fn gateway_api(&self) -> String {
        format!("{}:15012", self.ip)
    }

    /// The process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes `yaml` as the config file.
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, yaml).expect("write config");
    }

    /// Sets `gateway.<key>: <value>` in the config file, replacing the
    /// line the harness wrote for that key, if any.
    ///
    /// # Panics
    /// When the config file cannot be read or written.
    pub fn set_gateway_option(&self, key: &str, value: &str) {
        let config = std::fs::read_to_string(&self.config).expect("read config");
        let prefix = format!("  {key}:");
        let line = format!("{prefix} {value}");
        let mut lines: Vec<String> = config
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        let at = lines
            .iter()
            .position(|l| l == "gateway:")
            .map_or(lines.len(), |i| i + 1);
        if at == lines.len() && !lines.iter().any(|l| l == "gateway:") {
            lines.push("gateway:".into());
        }
        lines.insert(at.min(lines.len()), line);
        self.write_config(&(lines.join("\n") + "\n"));
    }

    /// Starts `fedctl run` and waits for its admin API.
    ///
    /// # Panics
    /// When it exits or does not come up in 20 s (its log is printed).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = self
            .command(&bin("fedctl"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env(
                "FEDMESH_LOG",
                "info,fedmesh_control=debug,hickory_server=warn",
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn fedctl run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.log_since_start().contains("admin listening on") {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs `fedctl run` expecting it to fail; returns its output.
    pub fn run_expect_failure(&self) -> Out {
        let out = self
            .command(&bin("fedctl"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .expect("run fedctl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it
    /// exited with success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the process (SIGSTOP): its sockets stay open but it says
    /// nothing, like a hung host.
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
        }
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_since_start(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(self.log_offset));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs a `fedctl` client command against this cluster.
    pub fn fedctl(&self, args: &[&str]) -> Out {
        let out = self
            .command(&bin("fedctl"))
            .args(args)
            .args(["--admin", &self.admin()])
            .env_remove("FEDCTL_ADMIN")
            .stdin(Stdio::null())
            .output()
            .expect("run fedctl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `fedctl token create` (with `--ttl` when given).
    ///
    /// # Panics
    /// When it fails.
    pub fn token(&self, ttl: Option<&str>) -> String {
        let mut args = vec!["token", "create"];
        if let Some(ttl) = ttl {
            args.extend(["--ttl", ttl]);
        }
        let out = self.fedctl(&args);
        assert!(
            out.ok,
            "token create failed on {}: {}",
            self.name, out.stderr
        );
        out.stdout.trim().to_string()
    }

    /// `fedctl peers -o json`.
    ///
    /// # Panics
    /// When it fails.
    pub fn peers(&self) -> Vec<Value> {
        let out = self.fedctl(&["peers", "-o", "json"]);
        assert!(out.ok, "peers failed on {}: {}", self.name, out.stderr);
        out.json().as_array().cloned().unwrap_or_default()
    }

    /// `fedctl services -o json`.
    ///
    /// # Panics
    /// When it fails.
    pub fn services(&self) -> Vec<Value> {
        let out = self.fedctl(&["services", "-o", "json"]);
        assert!(out.ok, "services failed on {}: {}", self.name, out.stderr);
        out.json().as_array().cloned().unwrap_or_default()
    }

    /// One global service (`ns/name`) as this cluster sees it.
    pub fn service(&self, id: &str) -> Option<Value> {
        self.services().into_iter().find(|s| {
            format!(
                "{}/{}",
                s["namespace"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or("")
            ) == id
        })
    }

    /// The clusters serving `ns/name`, as this cluster sees them.
    pub fn service_clusters(&self, id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .service(id)
            .map(|s| {
                s["clusters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The folder the static registry reads.
    pub fn services_dir(&self) -> PathBuf {
        self.dir.join("services")
    }

    /// Writes a manifest file into the services folder (atomically).
    pub fn write_manifest(&self, file: &str, yaml: &str) {
        let dir = self.services_dir();
        std::fs::create_dir_all(&dir).expect("services dir");
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, dir.join(file)).expect("rename manifest");
    }

    /// The state of peer `name` as this cluster sees it.
    pub fn peer_state(&self, name: &str) -> Option<String> {
        self.peers()
            .into_iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["state"].as_str().map(str::to_string))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.thaw();
        self.kill9();
        self.kill_gateway();
        if std::thread::panicking() {
            eprintln!("===== log of {} =====\n{}", self.name, self.log());
            let gw = self.gateway_log();
            if !gw.is_empty() {
                eprintln!("===== gateway log of {} =====\n{gw}", self.name);
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// Clusters sharing one temp folder and one address block.
#[derive(Debug)]
pub struct Federation {
    /// The clusters, in creation order.
    pub clusters: Vec<Cluster>,
    block: [u8; 2],
    root: tempfile::TempDir,
}

impl Default for Federation {
    fn default() -> Self {
        Self::new()
    }
}

impl Federation {
    /// An empty federation.
    pub fn new() -> Self {
        init_crypto();
        Self {
            clusters: Vec::new(),
            block: pick_block(),
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The federation's temp folder.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The VIP range of cluster `i`: a /26 of a /24 picked from the
    /// federation's block, away from every cluster's own addresses.
    pub fn vip_range(&self, i: usize) -> String {
        let a = 10 + self.block[0] % 90;
        let quarter = u8::try_from(i % 4).unwrap_or(0) * 64;
        format!("127.{a}.{}.{quarter}/26", self.block[1])
    }

    /// The address cluster number `i` gets.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            127,
            self.block[0],
            self.block[1],
            u8::try_from(i + 1).expect("few clusters"),
        )
    }

    /// Adds a cluster with a config from [`default_config`] (not started);
    /// `control_extra` is YAML added to its `control:` section (indented by
    /// two spaces). Returns its index.
    pub fn add(&mut self, name: &str, region: &str, zone: &str, control_extra: &str) -> usize {
        let i = self.clusters.len();
        let ip = self.ip(i);
        let cluster = Cluster::new(name, ip, self.root.path().join(name), None);
        let vips = self.vip_range(i);
        cluster.write_config(
            &default_config(name, region, zone, ip, control_extra).replace(
                "  adminListen: {ip}:15090\n"
                    .replace("{ip}", &ip.to_string())
                    .as_str(),
                &format!("  adminListen: {ip}:15090\n  vipRange: {vips}\n"),
            ),
        );
        self.clusters.push(cluster);
        i
    }

    /// Adds and starts the standard test clusters: east (us-east/us-east-1a),
    /// west (us-west/us-west-2a), eu (eu-central/eu-central-1a), the first
    /// `n` of them, with `control_extra` as in [`Federation::add`].
    pub fn standard(n: usize, control_extra: &str) -> Self {
        let mut fed = Self::new();
        let all = [
            ("east", "us-east", "us-east-1a"),
            ("west", "us-west", "us-west-2a"),
            ("eu", "eu-central", "eu-central-1a"),
        ];
        for (name, region, zone) in all.iter().take(n) {
            fed.add(name, region, zone, control_extra);
        }
        for c in &mut fed.clusters {
            c.start();
        }
        fed
    }

    /// Cluster by name.
    ///
    /// # Panics
    /// When there is none.
    pub fn get(&self, name: &str) -> &Cluster {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .expect("cluster")
    }

    /// Mutable cluster by name.
    ///
    /// # Panics
    /// When there is none.
    pub fn get_mut(&mut self, name: &str) -> &mut Cluster {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .expect("cluster")
    }

    /// `joiner` joins `issuer` with a fresh token.
    ///
    /// # Panics
    /// When the join fails.
    pub fn join(&self, joiner: &str, issuer: &str) {
        let token = self.get(issuer).token(None);
        let out = self.get(joiner).fedctl(&["join", &token]);
        assert!(out.ok, "{joiner} could not join {issuer}: {}", out.stderr);
    }

    /// Waits until `a` sees `b` connected and `b` sees `a` connected.
    pub fn wait_connected(&self, a: &str, b: &str, timeout: Duration) {
        wait_until(&format!("{a} and {b} connected both ways"), timeout, || {
            self.get(a).peer_state(b).as_deref() == Some("connected")
                && self.get(b).peer_state(a).as_deref() == Some("connected")
        });
    }
}

/// The config the harness writes for a cluster at `ip` (standard ports);
/// `control_extra` is appended to the `control:` section.
pub fn default_config(
    name: &str,
    region: &str,
    zone: &str,
    ip: Ipv4Addr,
    control_extra: &str,
) -> String {
    let advertise = format!("  advertise: {ip}:15443\n");
    fedmesh_control::harness::texts::ConfigText {
        name,
        region,
        zone,
        ip: Some(ip),
        control_extra,
        gateway_extra: &advertise,
        tail: "",
    }
    .render()
}

/// A `Service` (with an `EndpointSlice` when `endpoints` is not empty) in
/// namespace `ns`, one TCP port `port_name:port` (target `target`), with
/// `annotations` (e.g. `fedmesh.io/export: "true"`).
pub fn service_yaml(
    ns: &str,
    name: &str,
    port_name: &str,
    port: u16,
    target: u16,
    annotations: &[(&str, &str)],
    endpoints: &[&str],
) -> String {
    fedmesh_control::harness::texts::service_manifest(
        ns,
        name,
        (port_name, port, target),
        annotations,
        endpoints,
    )
}

pub use fedmesh_control::harness::texts::EXPORT;

pub use fedmesh_control::harness::dns::DnsAnswer;

/// Asks `server` one question over UDP with a real DNS message (hickory's
/// wire format) and returns the decoded answer.
///
/// # Panics
/// When no answer comes within 3 s or it does not decode; when called
/// from inside an async runtime (it runs one of its own).
pub fn dns_query(server: std::net::SocketAddr, name: &str, rtype: &str) -> DnsAnswer {
    let rtype: hickory_proto::rr::RecordType = rtype.parse().expect("record type");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for one DNS question");
    runtime
        .block_on(fedmesh_control::harness::dns::query(server, name, rtype))
        .unwrap_or_else(|e| panic!("DNS {name} {rtype} at {server}: {e}"))
}

/// A TCP backend that names itself: on every connection it first writes
/// `<name>\n`, then echoes what it reads. Stops (and frees its port) when
/// dropped.
#[derive(Debug)]
pub struct Backend {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Listens on `addr` as `name`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: std::net::SocketAddr, name: &str) -> Self {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("backend bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let name = format!("{name}\n");
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let name = name.clone();
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            if conn.write_all(name.as_bytes()).is_err() {
                                return;
                            }
                            let mut copy = conn.try_clone().expect("clone");
                            let _ = std::io::copy(&mut conn, &mut copy);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `addr` (a VIP and port) and returns the name of the backend
/// that answered, after checking that bytes echo through; `Err` says what
/// failed (refused, reset, closed, timed out).
pub fn ask_backend(addr: std::net::SocketAddr) -> Result<String, String> {
    use std::io::{BufRead, Write};
    let conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let mut name = String::new();
    match reader.read_line(&mut name) {
        Ok(0) => return Err("closed without an answer".into()),
        Ok(_) => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let mut writer = conn;
    writer
        .write_all(b"ping\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut echo = String::new();
    reader
        .read_line(&mut echo)
        .map_err(|e| format!("echo: {e}"))?;
    if echo != "ping\n" {
        return Err(format!("echo came back as {echo:?}"));
    }
    Ok(name.trim().to_string())
}

/// A minimal HTTP/1.1 GET; returns (status, body).
///
/// # Panics
/// When the server does not answer.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
