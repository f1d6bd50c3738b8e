//! The test helper binary (`fedmesh-netns-helper`) run inside a namespace:
//! what the test process cannot do from its own namespace — listen as a
//! backend, connect to a VIP, ask a DNS server or a gateway admin port
//! there, or relay with a delay.
//!
//! Long-running uses are a [`Helper`]: a child process whose output goes
//! to a log file, killed by pid on drop (its log printed when the test
//! fails). One-shot uses ([`ask`], [`dns`], [`get`]) run it and decode its
//! output. The binary's own file says what each subcommand prints.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{DnsAnswer, bin};

/// The helper binary's name.
pub const HELPER: &str = "fedmesh-netns-helper";

/// A helper process running inside a namespace.
#[derive(Debug)]
pub struct Helper {
    what: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Helper {
    /// Starts `fedmesh-netns-helper ARGS` inside `ns`, its output in
    /// `dir/<what>.log`.
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn spawn(ns: &str, dir: &Path, what: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("{what}.log"));
        let file = std::fs::File::create(&log).expect("create helper log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin(HELPER))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("helper log"))
            .stderr(file)
            .spawn()
            .expect("spawn the netns helper");
        Self {
            what: what.to_string(),
            log,
            child: Some(child),
        }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its output contains `text`.
    ///
    /// # Panics
    /// When it exits first or `timeout` passes (its output is shown).
    pub fn wait_for(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(text) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "{} exited ({exited:?}) before printing {text:?}:\n{}",
                self.what,
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "{} did not print {text:?} within {timeout:?}:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits (bounded) for it to exit by itself; whether it exited with
    /// success.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "===== output of {} =====\n{}",
                self.what,
                self.log()
            );
        }
    }
}

/// Runs the helper once inside `ns`; its stdout.
///
/// # Panics
/// When it fails.
fn once(ns: &str, args: &[&str]) -> String {
    let out = super::run_in(ns, &bin(HELPER).to_string_lossy(), args);
    assert!(
        out.ok,
        "{HELPER} {} in {ns} failed: {}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Decodes `ask` output: one result per line, the backend's name or why
/// the connection failed.
pub fn answers(text: &str) -> Vec<Result<String, String>> {
    text.lines()
        .filter_map(|l| {
            if let Some(name) = l.strip_prefix("ok ") {
                Some(Ok(name.to_string()))
            } else {
                l.strip_prefix("err ").map(|e| Err(e.to_string()))
            }
        })
        .collect()
}

/// `count` connections from inside `ns` to `addr`, one after another
/// (see [`crate::ask_backend`]).
pub fn ask(ns: &str, addr: SocketAddr, count: usize) -> Vec<Result<String, String>> {
    answers(&once(
        ns,
        &["ask", &addr.to_string(), &count.to_string(), "0"],
    ))
}

/// One DNS question from inside `ns` (see [`crate::dns_query`]): the
/// response code, the A records and whether the SOA came (SRV records are
/// not carried).
///
/// # Panics
/// When no answer comes or it cannot be decoded.
pub fn dns(ns: &str, server: SocketAddr, name: &str, rtype: &str) -> DnsAnswer {
    let text = once(ns, &["dns", &server.to_string(), name, rtype]);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("helper dns output is not JSON ({e}): {text}"));
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    DnsAnswer {
        code: v["code"].as_str().unwrap_or("").to_string(),
        a: strings("a").iter().filter_map(|a| a.parse().ok()).collect(),
        srv: Vec::new(),
        soa: v["soa"].as_bool().unwrap_or(false),
    }
}

/// An HTTP GET from inside `ns`; (status, body).
pub fn get(ns: &str, addr: &str, path: &str) -> (u16, String) {
    let text = once(ns, &["get", addr, path]);
    let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// The last `relay accepted N` count in a relay helper's output.
pub fn relay_accepted(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("relay accepted ")?.trim().parse().ok())
        .unwrap_or(0)
}
