//! Which way an HTTP port's connection goes, from its first bytes (peeked,
//! not read, so either way gets them all): the HTTP/2 connection preface
//! (RFC 9113 §3.4) or an ordinary HTTP/1.1 request is served per request;
//! a first request that is `CONNECT` or asks for a protocol `Upgrade`
//! (RFC 9110 §7.8: WebSocket and the like) takes the byte path for the
//! whole connection, as before. So do bytes that are not HTTP at all (a
//! first line that is no HTTP/1.x request line, RFC 9112 §3), and a
//! client that sends nothing
//! within [`FIRST_BYTES`]: HTTP clients speak first, so a silent one runs
//! a server-first protocol on a port named as HTTP, which keeps working
//! as bytes (the same fallback other meshes' protocol detection makes).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sniffed {
    /// Served per request.
    Http,
    /// Carried as bytes.
    Tunnel,
    /// The client closed.
    Gone,
}

/// The HTTP/2 client preface's first line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// How long a client may take to send its first bytes before its
/// connection is taken for a server-first protocol and carried as bytes.
pub(super) const FIRST_BYTES: Duration = Duration::from_millis(50);

/// Most bytes looked at: a request head longer than this is served per
/// request (hyper bounds heads itself).
const SNIFF_BYTES: usize = 8 << 10;

/// How long to wait for more of a head that arrived in parts, per round.
const PEEK_WAIT: Duration = Duration::from_millis(5);

/// Rounds of waiting for more of a head.
const MAX_ROUNDS: usize = 200;

/// Peeks at `client`'s first request: a first byte within `first`, the
/// rest of the head within `wait`.
pub(super) async fn first_request(client: &TcpStream, first: Duration, wait: Duration) -> Sniffed {
    let mut buf = vec![0u8; SNIFF_BYTES];
    // peek waits for the first bytes only; after that it returns at once.
    match tokio::time::timeout(first, client.peek(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => return Sniffed::Gone,
        Ok(Ok(_)) => {}
        // Silent: the server speaks first.
        Err(_) => return Sniffed::Tunnel,
    }
    let deadline = Instant::now() + wait;
    for _ in 0..MAX_ROUNDS {
        let n = match tokio::time::timeout_at(deadline, client.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Sniffed::Gone,
            Ok(Ok(n)) => n,
        };
        if let Some(verdict) = classify(&buf[..n]) {
            return verdict;
        }
        if n == buf.len() {
            return Sniffed::Http;
        }
        // peek returns at once while bytes wait: pace the rounds.
        tokio::time::sleep(PEEK_WAIT).await;
    }
    Sniffed::Http
}

/// The verdict on `bytes`, or `None` when more are needed.
pub(super) fn classify(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(bytes) {
        return None;
    }
    if bytes.starts_with(H2_PREFACE) {
        return Some(Sniffed::Http);
    }
    if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"CONNECT ") {
        return Some(Sniffed::Tunnel);
    }
    let line_end = bytes.iter().position(|b| *b == b'\n')?;
    if !is_request_line(&bytes[..line_end]) {
        return Some(Sniffed::Tunnel);
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let upgrade = bytes[..end]
        .split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|line| line.split(|b| *b == b':').next())
        .any(|name| name.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    Some(if upgrade {
        Sniffed::Tunnel
    } else {
        Sniffed::Http
    })
}

/// `method SP target SP HTTP/1.x` (RFC 9112 §3), the method a token.
fn is_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    !method.is_empty()
        && method.iter().all(token)
        && !target.is_empty()
        && version.starts_with(b"HTTP/1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_requests_and_the_h2_preface_are_served_per_request() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(classify(get), Some(Sniffed::Http));
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Sniffed::Http)
        );
        assert_eq!(classify(b"PRI * HT"), None, "a preface in parts waits");
        assert_eq!(classify(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn upgrades_and_connect_keep_the_byte_path() {
        let ws =
            b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUPGRADE: websocket\r\n\r\n";
        assert_eq!(classify(ws), Some(Sniffed::Tunnel));
        assert_eq!(
            classify(b"CONNECT a:443 HTTP/1.1\r\n"),
            Some(Sniffed::Tunnel)
        );
        // Not HTTP at all: a client-first protocol on a port named http.
        assert_eq!(classify(b"ping\n"), Some(Sniffed::Tunnel));
        assert_eq!(classify(b"early bytes\n"), Some(Sniffed::Tunnel));
        assert_eq!(classify(b"GET /\r\n"), Some(Sniffed::Tunnel));
        // A header merely mentioning upgrade in its value is not one.
        let not = b"GET / HTTP/1.1\r\nX-Note: upgrade later\r\n\r\n";
        assert_eq!(classify(not), Some(Sniffed::Http));
    }

    #[tokio::test]
    async fn a_silent_client_is_carried_as_bytes_and_a_closed_one_is_gone() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let wait = Duration::from_secs(5);
        let got = first_request(&server, Duration::from_millis(20), wait).await;
        assert_eq!(got, Sniffed::Tunnel);
        drop(client);
        let got = first_request(&server, Duration::from_secs(5), wait).await;
        assert_eq!(got, Sniffed::Gone);
    }
}
