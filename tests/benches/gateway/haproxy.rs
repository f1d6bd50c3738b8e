//! The reference: an HAProxy pair doing what a fedmesh gateway pair does.
//! A front HAProxy (TCP mode) on the client's side dials a back HAProxy in
//! the serving cluster over mTLS (`ssl crt … ca-file … verify required`,
//! with session reuse, HAProxy's default); the back one requires a client
//! certificate and forwards to the backend. For failover the front has the
//! other cluster's back HAProxy as a `backup` server, and checks both with
//! the same timings as fedmesh's probes (every 200 ms, 3 to fall or rise).
//! The certificates (ECDSA P-256, like fedmesh's) are made here with rcgen.
//! A second frontend on the front one (`rtt`) dials west's back HAProxy
//! through a delaying relay, for the new-connection latency across a long
//! link ([`crate::rtt`]); it has no backup and no checks.
//!
//! In [`ProxyMode::Http`] both run `mode http` (per request, keep-alive on
//! both sides, the back one reusing its backend connections), as fedmesh's
//! gateways do for a port named `http`; the mTLS between them is the same.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ProxyMode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The name the back HAProxies' certificate carries (SNI and verifyhost).
const BACK_NAME: &str = "back.bench.fedmesh";

/// One HAProxy process.
#[derive(Debug)]
pub(crate) struct Haproxy {
    /// What it is, for logs.
    pub(crate) name: String,
    config: PathBuf,
    log: PathBuf,
    listen: SocketAddr,
    child: Option<Child>,
}

impl Haproxy {
    /// Starts it and waits (bounded) until it accepts on its listener.
    ///
    /// # Panics
    /// When it exits or does not listen within 10 s.
    pub(crate) fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn haproxy (apt-get install haproxy)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.listen).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {}:\n{}",
                self.name,
                self.listen,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs it and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id, when it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The three HAProxies: `front` (client side), `west` and `eu` (back ones).
#[derive(Debug)]
pub(crate) struct Pair {
    /// Where clients connect.
    pub(crate) front_addr: SocketAddr,
    /// Client side.
    pub(crate) front: Haproxy,
    /// In front of west's backend (the primary).
    pub(crate) west: Haproxy,
    /// In front of eu's backend (the backup).
    pub(crate) eu: Haproxy,
}

/// Addresses the HAProxies use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addrs {
    /// The front's listener.
    pub(crate) front: SocketAddr,
    /// West's back HAProxy (mTLS) and west's backend.
    pub(crate) west: (SocketAddr, SocketAddr),
    /// Eu's back HAProxy (mTLS) and eu's backend.
    pub(crate) eu: (SocketAddr, SocketAddr),
    /// The front's `rtt` listener, and the relay in front of west's back
    /// HAProxy that it dials.
    pub(crate) rtt: (SocketAddr, SocketAddr),
}

impl Pair {
    /// Writes certificates and configs into `dir` (not started); each
    /// HAProxy takes up to `maxconn` connections (two descriptors each) and
    /// carries the bench service in `mode`.
    pub(crate) fn new(dir: &Path, addrs: Addrs, maxconn: usize, mode: ProxyMode) -> Self {
        std::fs::create_dir_all(dir).expect("haproxy dir");
        write_certs(dir);
        let back = |name: &str, (listen, backend): (SocketAddr, SocketAddr)| {
            let config = dir.join(format!("{name}.cfg"));
            std::fs::write(
                &config,
                back_config(dir, listen, backend, global(maxconn, mode)),
            )
            .expect("write config");
            Haproxy {
                name: format!("HAProxy {name}"),
                config,
                log: dir.join(format!("{name}.log")),
                listen,
                child: None,
            }
        };
        let west = back("west", addrs.west);
        let eu = back("eu", addrs.eu);
        let config = dir.join("front.cfg");
        std::fs::write(&config, front_config(dir, addrs, global(maxconn, mode)))
            .expect("write config");
        let front = Haproxy {
            name: "HAProxy front".into(),
            config,
            log: dir.join("front.log"),
            listen: addrs.front,
            child: None,
        };
        Self {
            front_addr: addrs.front,
            front,
            west,
            eu,
        }
    }

    /// Starts the back ones, then the front.
    pub(crate) fn start(&mut self) {
        self.west.start();
        self.eu.start();
        self.front.start();
    }

    /// The pids of every running HAProxy.
    pub(crate) fn pids(&self) -> Vec<u32> {
        [&self.front, &self.west, &self.eu]
            .iter()
            .filter_map(|h| h.pid())
            .collect()
    }
}

fn global(maxconn: usize, mode: ProxyMode) -> String {
    // Timeouts as fedmesh's gateway defaults: connect 1 s, idle 1 h.
    let mode = match mode {
        ProxyMode::Tcp => "mode tcp\n",
        // Keep-alive on both sides (HAProxy's default in http mode, said
        // here), idle server connections shared between clients, as
        // fedmesh's ingress keeps endpoint connections.
        ProxyMode::Http => {
            "mode http
    option http-keep-alive
    http-reuse always
    timeout http-request 10s
    timeout http-keep-alive 1h
"
        }
    };
    format!(
        "global
    maxconn {maxconn}
    ssl-server-verify required
defaults
    {mode}    timeout connect 1s
    timeout client 1h
    timeout server 1h
    retries 3
    option redispatch 1
"
    )
}

fn back_config(dir: &Path, listen: SocketAddr, backend: SocketAddr, global: String) -> String {
    let d = dir.display();
    format!(
        "{}frontend mtls
    bind {listen} ssl crt {d}/back.pem ca-file {d}/ca.pem verify required
    default_backend local
backend local
    server app {backend}
",
        global
    )
}

fn front_config(dir: &Path, addrs: Addrs, global: String) -> String {
    let d = dir.display();
    let tls = format!(
        "ssl crt {d}/front.pem ca-file {d}/ca.pem verify required sni str({BACK_NAME}) verifyhost {BACK_NAME}"
    );
    let check = "check inter 200ms fall 3 rise 3";
    format!(
        "{}frontend clients
    bind {}
    default_backend remote
backend remote
    server west {} {tls} {check}
    server eu {} {tls} {check} backup
frontend rtt
    bind {}
    default_backend rtt
backend rtt
    server west {} {tls}
",
        global, addrs.front, addrs.west.0, addrs.eu.0, addrs.rtt.0, addrs.rtt.1,
    )
}

/// `ca.pem`, `back.pem` (server) and `front.pem` (client): certificate and
/// key in one file, as HAProxy's `crt` wants.
fn write_certs(dir: &Path) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    let issuer = Issuer::new(ca, ca_key);
    for (file, name) in [
        ("back.pem", BACK_NAME),
        ("front.pem", "front.bench.fedmesh"),
    ] {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        std::fs::write(
            dir.join(file),
            format!("{}{}", cert.pem(), key.serialize_pem()),
        )
        .expect("write leaf pem");
    }
}
