//! What `fedctl demo` and the end-to-end tests share: running a `fedctl`
//! child with its log in a file ([`process`]), the config and manifest
//! texts of a cluster on one loopback address ([`texts`]), and one real
//! DNS question over UDP ([`dns`]).
//!
//! Nothing here is used by `fedctl run`; it exists so the demo is only its
//! narration, and so the tests crate can drop its own copies of these.

pub mod dns;
pub mod process;
pub mod texts;

/// Why a harness step failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A local socket, file or process call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A DNS message could not be built or read.
    #[error("DNS message to {server}: {source}")]
    Dns {
        /// The server asked.
        server: std::net::SocketAddr,
        /// The encoding error.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// The answer does not decode.
    #[error("DNS answer from {server}: {source}")]
    Decode {
        /// The server asked.
        server: std::net::SocketAddr,
        /// The decoding error.
        #[source]
        source: hickory_proto::serialize::binary::DecodeError,
    },
    /// No answer in time.
    #[error("no DNS answer from {0} within 3 s")]
    DnsTimeout(std::net::SocketAddr),
}

impl HarnessError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
