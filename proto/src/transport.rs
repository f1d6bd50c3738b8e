//! TLS under tonic: identity is the SPIFFE ID checked by our own rustls
//! verifiers, which tonic's built-in TLS settings cannot express, so the
//! server is fed already-handshaken streams (`serve_with_incoming`) and the
//! client dials through a custom connector.
//!
//! Every accepted connection is limited until it authenticates (handshake
//! deadline, idle deadline, a cap on how many are open: `guard.rs`), so
//! load from anyone who reaches the port cannot take the listener out.

mod guard;

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

pub use self::guard::handshakes::{HandshakeLimits, Handshakes};
pub use self::guard::requests::{MarkRequests, MarkRequestsLayer, guarded_tcp};
pub use self::guard::{Full, Guarded, ListenerLimits, Unauthenticated};

/// The SNI name sent to peers. Verifiers ignore it: identity is the SPIFFE
/// ID in the certificate, not a host name.
const PEER_SERVER_NAME: &str = "peer.fedmesh";

/// What `tls_incoming` yields: a handshaken TLS stream under the limits.
pub type IncomingTls = Guarded<TlsStream<TcpStream>>;

/// Accepts TCP connections and completes TLS handshakes off the accept
/// loop under [`ListenerLimits::default`]; yields finished TLS streams for
/// tonic's `serve_with_incoming`. See [`tls_incoming_limited`].
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    what: &'static str,
) -> ReceiverStream<Result<IncomingTls, std::io::Error>> {
    let guard = Unauthenticated::new(ListenerLimits::default());
    tls_incoming_limited(listener, tls, what, guard)
}

/// Like [`tls_incoming`], with the registry of unauthenticated connections
/// given by the caller (who may lift the limits from a connection whose
/// token it accepted). A connection that presented a client certificate
/// (already verified by `tls`'s verifier) is authenticated; any other one
/// is limited by `guard`. Failed handshakes are logged with the remote
/// address and dropped.
pub fn tls_incoming_limited(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    what: &'static str,
    guard: Unauthenticated,
) -> ReceiverStream<Result<IncomingTls, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    // Handshakes cost CPU: a bounded number at once, a bounded queue.
    let handshakes = Handshakes::new(HandshakeLimits {
        deadline: guard.limits().handshake_timeout,
        ..HandshakeLimits::default()
    });
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
            let Some(queued) = handshakes.enqueue() else {
                debug!(listener = what, %remote, "too many TLS handshakes waiting; closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handshake = handshake(acceptor.clone(), guard.clone(), queued, tcp, remote, what);
            let ready = tx.clone();
            tokio::spawn(async move {
                if let Some(stream) = handshake.await {
                    let _ = ready.send(Ok(stream)).await;
                }
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// One TLS handshake within the deadline, then admission under `guard`.
async fn handshake(
    acceptor: TlsAcceptor,
    guard: Unauthenticated,
    queued: guard::handshakes::Queued,
    tcp: TcpStream,
    remote: std::net::SocketAddr,
    what: &'static str,
) -> Option<IncomingTls> {
    let deadline = guard.limits().handshake_timeout;
    let accept = async {
        let _turn = queued.turn().await;
        acceptor.accept(tcp).await
    };
    let stream = match tokio::time::timeout(deadline, accept).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            info!(listener = what, %remote, error = %error_chain(&error), "TLS handshake refused");
            return None;
        }
        Err(_) => {
            debug!(listener = what, %remote, "TLS handshake timed out");
            return None;
        }
    };
    let has_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    match guard.admit(stream, remote, has_cert) {
        Ok(guarded) => Some(guarded),
        Err(Full) => {
            debug!(listener = what, %remote, "too many unauthenticated connections; closed");
            None
        }
    }
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
