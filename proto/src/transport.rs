//! TLS under tonic: identity is the SPIFFE ID checked by our own rustls
//! verifiers, which tonic's built-in TLS settings cannot express, so the
//! server is fed already-handshaken streams (`serve_with_incoming`) and the
//! client dials through a custom connector.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{debug, info};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SNI name sent to peers. Verifiers ignore it: identity is the SPIFFE
/// ID in the certificate, not a host name.
const PEER_SERVER_NAME: &str = "peer.fedmesh";

/// Accepts TCP connections and completes TLS handshakes off the accept
/// loop; yields finished TLS streams for tonic's `serve_with_incoming`.
/// Failed handshakes (untrusted or spoofed certificates) are logged with the
/// remote address and dropped.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    what: &'static str,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    // EMFILE and the like: back off instead of spinning.
                    info!(listener = what, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let ready = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        info!(listener = what, %remote, error = %error_chain(&error), "TLS handshake refused");
                    }
                    Err(_) => debug!(listener = what, %remote, "TLS handshake timed out"),
                }
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Dials `endpoint` (host:port) over TLS with `tls` and returns a tonic
/// channel on that one connection.
///
/// # Errors
/// When the address does not resolve, the TCP connect or the TLS handshake
/// fails (for instance the peer's certificate is refused), or HTTP/2 setup
/// fails. [`error_chain`] renders the whole cause.
pub async fn connect(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let endpoint_owned = endpoint.to_string();
    let connector = TlsConnector::from(tls);
    let connect = tower::service_fn(move |_: Uri| {
        let endpoint = endpoint_owned.clone();
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(&endpoint).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(PEER_SERVER_NAME)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://peer.fedmesh")
        .connect_timeout(timeout)
        .connect_with_connector(connect)
        .await
}

/// Renders an error and its sources as one line, skipping repeats
/// ("transport error: tls handshake: invalid peer certificate: …").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}
