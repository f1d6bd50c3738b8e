//! One cluster of the harness: its `fedctl run` (and `fedgw`) processes,
//! config and manifest files, and the client commands run against it.
//! Processes are killed by pid when a [`Cluster`] is dropped.

use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::http_get;
use crate::bin;

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
    pub(crate) fn new(name: &str, ip: Ipv4Addr, dir: PathBuf, netns: Option<String>) -> Self {
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
