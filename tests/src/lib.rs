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
//! with [`relay`] to add latency where the kernel cannot. [`otlp`] is a real
//! OTLP/gRPC receiver that keeps the spans gateways export;
//! [`header_backend`] an HTTP backend that keeps the headers it was sent.

pub mod netns;
pub mod relay;
pub mod silent;

pub mod docs;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

pub mod backend;
pub mod bench;
pub mod cluster;
pub mod fake_kube;
pub mod federation;
pub mod grpc_backend;
pub mod header_backend;
pub mod hostile;
pub mod http_backend;
pub mod http_script;
pub mod otlp;
pub mod serve;

pub use backend::{Backend, DnsAnswer, ask_backend, dns_query, http_get};
pub use cluster::{Cluster, Out};
pub use federation::{EXPORT, Federation, default_config, service_yaml};
pub use grpc_backend::GrpcBackend;
pub use http_backend::{Flavor, HttpBackend, KeepAliveClient};
pub use http_script::{Answer, HeaderClient, ScriptedBackend};

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
