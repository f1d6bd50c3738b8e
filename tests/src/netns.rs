//! Network namespaces for end-to-end tests that need real links: one
//! namespace per cluster, each with its own address on `198.18.0.0/24`
//! (RFC 2544's benchmarking range, used only inside these namespaces), all
//! linked by veth pairs to a Linux bridge in a fourth namespace.
//!
//! ```text
//!   ns <run>-east          ns <run>-br            ns <run>-west
//!   eth0 198.18.0.1 ── v-east ┐  br0  ┌ v-west ── eth0 198.18.0.2
//!   lo 127.0.0.1              └ v-eu ─┘           lo 127.0.0.1
//!                                 │
//!                       ns <run>-eu: eth0 198.18.0.3
//! ```
//!
//! [`Topology::create`] builds it (after [`unavailable`] said it can, and
//! after sweeping namespaces and temp folders that an earlier, dead test
//! run left behind);
//! dropping it kills whatever still runs inside and deletes every
//! namespace, which also deletes the veths and the bridge, so nothing is
//! left on the host, also when a test fails. No interface or route is ever
//! added to the namespace the tests run in. Faults are injected with
//! [`Topology::set_link`] (a link down) and [`Topology::blackhole`]
//! (nftables dropping a cluster's packets silently); latency with
//! [`mesh::Mesh::delay`] ([`delay`], at the IP layer) or a TCP
//! [`crate::relay`].
//!
//! [`mesh`] starts `fedctl` clusters inside the namespaces, [`helper`] runs
//! the test helper binary (backends, clients, DNS queries, relays, the
//! packet delayer) there.

pub mod delay;
pub mod helper;
pub mod mesh;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Out;

/// Every namespace these tests create starts with this.
pub const PREFIX: &str = "fmnetns-";

/// One cluster's namespace.
#[derive(Debug, Clone)]
pub struct Node {
    /// The cluster's name.
    pub name: String,
    /// The namespace.
    pub netns: String,
    /// Its address on the shared link.
    pub addr: Ipv4Addr,
    /// The bridge's end of its veth (in the bridge namespace).
    link: String,
}

/// The namespaces of one test, deleted on drop.
#[derive(Debug)]
pub struct Topology {
    /// The cluster namespaces, in the order given.
    pub nodes: Vec<Node>,
    bridge: String,
    created: Vec<String>,
}

/// Why namespace tests cannot run here, if they cannot: they need root,
/// `ip netns`, and the right to create a namespace. Checked once per test
/// process.
pub fn unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON.get_or_init(check_available).clone()
}

fn check_available() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid: real effective saved fs"
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        return Some("not running as root (network namespaces need root)".into());
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    let added = ip(&["netns", "add", &probe]);
    if !added.ok {
        return Some(format!(
            "`ip netns add` does not work here: {}",
            added.stderr.trim()
        ));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

/// Prints why a test is skipped, past the test harness's output capture
/// (which only takes `print!`), so it shows in every run.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping {test}: {reason}");
}

/// Runs `ip ARGS` in this namespace.
pub fn ip(args: &[&str]) -> Out {
    run(Command::new("ip").args(args))
}

/// Runs `program ARGS` inside namespace `ns`.
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Out {
    run(Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args))
}

fn run(cmd: &mut Command) -> Out {
    let what = format!("{cmd:?}");
    finished(&what, cmd.stdin(Stdio::null()).output())
}

/// A finished command as an [`Out`]; one that could not run is a failure
/// that says so.
fn finished(what: &str, output: std::io::Result<std::process::Output>) -> Out {
    match output {
        Ok(out) => Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => Out {
            ok: false,
            stdout: String::new(),
            stderr: format!("cannot run {what}: {e}"),
        },
    }
}

/// Runs `ip ARGS`, panicking with its error when it fails.
fn must(args: &[&str]) {
    let out = ip(args);
    assert!(out.ok, "ip {} failed: {}", args.join(" "), out.stderr);
}

/// A temp folder named for this process (`<PREFIX><pid>-…`), so that
/// [`sweep_stale`] can remove it if this process dies without cleaning up.
///
/// # Panics
/// When it cannot be created.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("temp dir")
}

/// Whether `name` was made by a process of these tests that is gone.
fn left_by_dead_run(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Deletes namespaces and temp folders with [`PREFIX`] whose creating
/// process is gone (a run killed before its guards could clean up), with
/// whatever still runs in those namespaces.
pub fn sweep_stale() {
    let list = ip(&["netns", "list"]);
    for line in list.stdout.lines() {
        if let Some(name) = line
            .split_whitespace()
            .next()
            .filter(|n| left_by_dead_run(n))
        {
            delete_namespace(name);
        }
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if left_by_dead_run(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Kills every process in `ns` (SIGKILL) and deletes it.
fn delete_namespace(ns: &str) {
    let pids = ip(&["netns", "pids", ns]);
    for pid in pids.stdout.split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

impl Topology {
    /// Creates the bridge namespace and one namespace per name, cluster
    /// `i` at `198.18.0.(i+1)`. Names are unique per run: the prefix, this
    /// process's id and a counter.
    ///
    /// # Panics
    /// When an `ip` command fails (what was created so far is removed).
    pub fn create(names: &[&str]) -> Self {
        static RUN: AtomicU32 = AtomicU32::new(0);
        sweep_stale();
        let run = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        );
        let bridge = format!("{run}-br");
        let mut topo = Self {
            nodes: Vec::new(),
            bridge: bridge.clone(),
            created: Vec::new(),
        };
        topo.add_namespace(&bridge);
        must(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &bridge, "link", "set", "br0", "up"]);
        for (i, name) in names.iter().enumerate() {
            let netns = format!("{run}-{name}");
            let addr = Ipv4Addr::new(198, 18, 0, u8::try_from(i + 1).expect("few clusters"));
            let link = format!("v-{name}");
            topo.add_namespace(&netns);
            // Both ends are made inside the test namespaces, never here.
            must(&[
                "-n", &bridge, "link", "add", &link, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ]);
            must(&["-n", &bridge, "link", "set", &link, "master", "br0", "up"]);
            must(&["-n", &netns, "link", "set", "lo", "up"]);
            must(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            must(&["-n", &netns, "link", "set", "eth0", "up"]);
            topo.nodes.push(Node {
                name: (*name).to_string(),
                netns,
                addr,
                link,
            });
        }
        topo
    }

    fn add_namespace(&mut self, ns: &str) {
        must(&["netns", "add", ns]);
        self.created.push(ns.to_string());
    }

    /// The node of cluster `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no namespace for {name}"))
    }

    /// Cuts (`up == false`) or restores cluster `name`'s link at the
    /// bridge, like pulling its cable: its namespace sees no carrier, the
    /// others lose it without a reset.
    ///
    /// # Panics
    /// When `ip` fails.
    pub fn set_link(&self, name: &str, up: bool) {
        let link = &self.node(name).link;
        let state = if up { "up" } else { "down" };
        must(&["-n", &self.bridge, "link", "set", link, state]);
    }

    /// Makes every other namespace drop cluster `name`'s packets silently
    /// (`on == true`), or stops it: an nftables input rule per receiving
    /// namespace, so no RST and no ICMP error ever comes back, as with a
    /// blackholed host.
    ///
    /// # Panics
    /// When `nft` fails.
    pub fn blackhole(&self, name: &str, on: bool) {
        let addr = self.node(name).addr;
        for node in self.nodes.iter().filter(|n| n.name != name) {
            let script = if on {
                format!(
                    "table inet fedmesh_blackhole {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {addr} drop\n  }}\n}}\n"
                )
            } else {
                "delete table inet fedmesh_blackhole\n".to_string()
            };
            let out = nft(&node.netns, &script);
            assert!(out.ok, "nft in {} failed: {}", node.netns, out.stderr);
        }
    }
}

/// Whether `program --version` runs: `nft` for [`Topology::blackhole`],
/// `iptables-legacy` for [`mesh::Mesh::delay`] (its `NFQUEUE` target
/// works where the kernel has no nftables `queue`).
pub fn tool_available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs an nft script (`nft -f -`) inside `ns`.
fn nft(ns: &str, script: &str) -> Out {
    use std::io::Write;
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let output = child.and_then(|mut child| {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        child.wait_with_output()
    });
    finished("nft", output)
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Cluster namespaces first, the bridge (created first) last.
        for ns in self.created.iter().rev() {
            delete_namespace(ns);
        }
    }
}
