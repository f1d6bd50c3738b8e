//! The demo's backend: a tiny HTTP/1.1 server that answers every request
//! with its cluster's name (`fedctl demo-backend`, hidden), and the client
//! the demo uses to ask it through a VIP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `hello from <name>` on `listen` until killed.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(listen: SocketAddr, name: String) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let body = format!("hello from {name}\n");
    loop {
        let (mut conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let body = body.clone();
        tokio::spawn(async move {
            // Read the request head; the body of a GET is empty.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

/// GET / on `addr` with `host` as the Host header; the response body.
///
/// # Errors
/// When the connection is refused, reset or times out, or the answer is
/// not a 200.
pub async fn get(addr: SocketAddr, host: &str) -> anyhow::Result<String> {
    get_path(addr, host, "/").await
}

/// GET `path` on `addr` with `host` as the Host header; the response body.
///
/// # Errors
/// As [`get`].
pub async fn get_path(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<String> {
    get_with(addr, host, path, &[]).await
}

/// GET `path` on `addr` with `host` as the Host header and `headers`
/// (name, value) besides; the response body.
///
/// # Errors
/// As [`get`].
pub async fn get_with(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<String> {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .map_err(|_| anyhow!("no answer from {addr} within 3 s"))??;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP answer from {addr}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(anyhow!(
            "{addr} answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.trim().to_string())
}
