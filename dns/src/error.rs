//! Why the DNS server could not start.

use std::io;
use std::net::SocketAddr;

/// Why [`crate::DnsServer::start`] failed. Once started, the server logs bad
/// queries and keeps serving; nothing fails later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A socket could not be bound on `dns.listen`.
    #[error(
        "cannot bind the DNS {proto} socket on {addr} (dns.listen); \
         is another DNS server using it? pick a free address or port for dns.listen"
    )]
    Bind {
        /// `"udp"` or `"tcp"`.
        proto: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The forwarder to `dns.upstreams` could not be built.
    #[error("cannot forward DNS to {upstreams:?} (dns.upstreams): {reason}")]
    Forwarder {
        /// The configured upstreams.
        upstreams: Vec<SocketAddr>,
        /// hickory's reason (it reports a string).
        reason: String,
    },
}
