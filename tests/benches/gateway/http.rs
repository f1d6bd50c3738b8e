//! A tiny HTTP/1.1 backend and client, enough for the load over the TCP
//! tunnels: `GET /` answers with a [`BODY`]-byte body whose first line is
//! the backend's name (so the client sees which cluster served), `GET
//! /bulk` with the bulk size in zeros ([`start_backend`]). Keep-alive
//! unless the request says `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Chunk the bulk body is written in.
const CHUNK: usize = 256 * 1024;
/// Longest request or response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Size of the body of `GET /`: the name line, padded.
pub(crate) const BODY: usize = 1024;

/// Starts a backend on `addr` as `name`, answering `/bulk` with `bulk`
/// bytes; it runs until the runtime stops.
///
/// # Panics
/// When the address cannot be bound.
pub(crate) async fn start_backend(addr: SocketAddr, name: &str, bulk: u64) {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("backend bind {addr}: {e}"));
    let mut body = format!("{name}\n");
    body.extend(std::iter::repeat_n(
        '.',
        BODY.saturating_sub(body.len() + 1),
    ));
    body.push('\n');
    let name: Arc<str> = Arc::from(body);
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = conn.set_nodelay(true);
            tokio::spawn(serve(conn, name.clone(), bulk));
        }
    });
}

async fn serve(mut conn: TcpStream, name: Arc<str>, bulk: u64) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let Ok(Some(head_len)) = read_head(&mut conn, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
        buf.drain(..head_len);
        let close = head.contains("\r\nconnection: close");
        let ok = if head.starts_with("get /bulk ") {
            write_bulk(&mut conn, bulk).await
        } else {
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                name.len()
            );
            conn.write_all(reply.as_bytes()).await
        };
        if ok.is_err() || close {
            return;
        }
    }
}

async fn write_bulk(conn: &mut TcpStream, bytes: u64) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\n\r\n");
    conn.write_all(head.as_bytes()).await?;
    let chunk = vec![0u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        conn.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads until `buf` holds a whole head (ending in CRLF CRLF); its length,
/// or `None` on a clean close before any byte.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too long"));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Connect refused or reset.
    Connect,
    /// Reset, closed or malformed after connecting.
    Exchange,
    /// No answer in time.
    Timeout,
}

/// One `GET /` on `conn`; the body's first line (the backend's name).
/// `close` asks the server to close after it.
///
/// # Errors
/// When the exchange fails or the answer is not a 200.
pub(crate) async fn get(conn: &mut TcpStream, close: bool) -> Result<Arc<str>, Failure> {
    let request: &[u8] = if close {
        b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"
    };
    conn.write_all(request)
        .await
        .map_err(|_| Failure::Exchange)?;
    let mut buf = Vec::with_capacity(256);
    let head_len = read_head(conn, &mut buf)
        .await
        .ok()
        .flatten()
        .ok_or(Failure::Exchange)?;
    let (status_ok, length) = parse_head(&buf[..head_len]).ok_or(Failure::Exchange)?;
    let mut body = buf.split_off(head_len);
    let want = usize::try_from(length).map_err(|_| Failure::Exchange)?;
    while body.len() < want {
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.map_err(|_| Failure::Exchange)?;
        if n == 0 {
            return Err(Failure::Exchange);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if !status_ok {
        return Err(Failure::Exchange);
    }
    Ok(Arc::from(first_line(&body)))
}

/// One `GET /bulk` on a fresh connection to `addr`; the body's length.
///
/// # Errors
/// When the exchange fails.
pub(crate) async fn get_bulk(addr: SocketAddr) -> std::io::Result<u64> {
    let mut conn = TcpStream::connect(addr).await?;
    let _ = conn.set_nodelay(true);
    conn.write_all(b"GET /bulk HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    let head_len = read_head(&mut conn, &mut buf)
        .await?
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let (_, length) = parse_head(&buf[..head_len]).ok_or(std::io::ErrorKind::InvalidData)?;
    let mut got = (buf.len() - head_len) as u64;
    let mut chunk = vec![0u8; CHUNK];
    while got < length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n as u64;
    }
    Ok(got)
}

/// (status is 200, content-length) of a response head.
fn parse_head(head: &[u8]) -> Option<(bool, u64)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_ok = lines.next()?.split_whitespace().nth(1) == Some("200");
    let length = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    Some((status_ok, length))
}

/// The name of the backend that answers a `GET /` on a new connection to
/// `addr`; `None` when none does within a few seconds.
pub(crate) fn served_by(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let (ok, _) = parse_head(head.as_bytes())?;
    ok.then(|| first_line(body.as_bytes()).to_string())
}

/// The first line of a body, trimmed: the backend's name.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines().next().unwrap_or("").trim().to_string()
}
