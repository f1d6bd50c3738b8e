//! One cluster of `fedctl demo`: its config and folder, its `fedctl run`
//! child and its HTTP backend, both run through the shared harness.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::harness::process::Process;
use crate::harness::texts::{ConfigText, EXPORT, service_manifest};

/// One demo cluster.
pub(super) struct DemoCluster {
    pub name: &'static str,
    pub region: &'static str,
    pub zone: &'static str,
    pub ip: Ipv4Addr,
    pub vip_range: String,
    pub dir: PathBuf,
    child: Option<Process>,
    backend: Option<Process>,
}

impl DemoCluster {
    /// A cluster not started yet.
    pub(super) fn new(
        (name, region, zone): (&'static str, &'static str, &'static str),
        ip: Ipv4Addr,
        vip_range: String,
        dir: PathBuf,
    ) -> Self {
        Self {
            name,
            region,
            zone,
            ip,
            vip_range,
            dir,
            child: None,
            backend: None,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    /// Its `fedctl run` log.
    pub(super) fn log(&self) -> PathBuf {
        self.dir.join("fedctl.log")
    }

    /// Its admin address.
    pub(super) fn admin(&self) -> String {
        format!("{}:15000", self.ip)
    }

    /// Its DNS server.
    pub(super) fn dns(&self) -> SocketAddr {
        (self.ip, 15053).into()
    }

    fn backend_addr(&self) -> SocketAddr {
        (self.ip, 18080).into()
    }

    /// Writes `config.yaml`: an embedded gateway, fast heartbeats and
    /// probes, its own VIP range, manifests in `./services`.
    pub(super) fn write_config(&self) -> anyhow::Result<()> {
        let gateway = format!(
            "  embedded: true\n  vipRange: {}\n  probeInterval: 100ms\n",
            self.vip_range
        );
        let text = ConfigText {
            name: self.name,
            region: self.region,
            zone: self.zone,
            ip: Some(self.ip),
            control_extra: "  heartbeatInterval: 250ms\n  peerDeadAfter: 1s\n",
            gateway_extra: &gateway,
            tail: "registry:\n  path: ./services\n",
        }
        .render();
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.config(), text)?;
        Ok(())
    }

    /// Starts `fedctl run` with its output in the log.
    pub(super) fn start(&mut self, exe: &Path) -> anyhow::Result<()> {
        let config = self.config().display().to_string();
        let child = Process::spawn_logged(exe, &["run", "--config", &config], &self.log())
            .with_context(|| format!("cannot start {}", exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Stops its processes.
    pub(super) fn kill(&mut self) {
        self.child = None;
        self.backend = None;
    }

    /// Leaves its processes running (`--keep`).
    pub(super) fn detach(&mut self) {
        for p in [self.child.take(), self.backend.take()]
            .into_iter()
            .flatten()
        {
            p.detach();
        }
    }

    /// Starts the cluster's HTTP backend and exports it as demo/hello.
    pub(super) fn start_backend(&mut self, exe: &Path) -> anyhow::Result<()> {
        let listen = self.backend_addr().to_string();
        let args = ["demo-backend", "--listen", &listen, "--name", self.name];
        let child = Process::spawn_quiet(exe, &args).context("cannot start the demo backend")?;
        self.backend = Some(child);
        let ip = self.ip.to_string();
        let manifest = service_manifest("demo", "hello", ("http", 8080, 18080), &[EXPORT], &[&ip]);
        let dir = self.dir.join("services");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("hello.yaml"), manifest)?;
        Ok(())
    }

    /// Writes `text` into the cluster's registry folder as `file`.
    pub(super) fn write_manifest(&self, file: &str, text: &str) -> anyhow::Result<()> {
        let dir = self.dir.join("services");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(file), text).with_context(|| format!("cannot write {file}"))
    }

    /// Stops the backend (its manifest stays: the endpoint stops answering).
    pub(super) fn stop_backend(&mut self) {
        self.backend = None;
    }

    /// Whether `fedctl run` exited.
    pub(super) fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(Process::exited)
    }

    /// The last lines of its log.
    pub(super) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Pids of its processes.
    pub(super) fn pids(&self) -> Vec<u32> {
        [self.child.as_ref(), self.backend.as_ref()]
            .into_iter()
            .flatten()
            .map(Process::id)
            .collect()
    }
}
