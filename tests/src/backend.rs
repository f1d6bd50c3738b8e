//! Backends and clients of the harness: a TCP backend that names itself,
//! a client that asks it through a VIP, a minimal HTTP GET, and one DNS
//! question.

use std::net::TcpListener;
use std::time::Duration;

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
