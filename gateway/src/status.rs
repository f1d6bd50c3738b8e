//! The ingress status preface (DESIGN.md, Gateway: Health): after the mTLS
//! handshake, the ingress connects to a local endpoint and answers with a
//! two-byte status before any client byte flows, so the egress counts a
//! remote hop as connected only once an endpoint was reached, and tries the
//! next target on any failure status.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// First byte of every status message (a version marker).
const MARKER: u8 = 0xFE;

/// What the ingress says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An endpoint was reached; bytes may flow.
    Connected,
    /// No such service or port is exported here.
    UnknownService,
    /// The service is not exported to the caller's cluster (`export-to`).
    NotExportedToYou,
    /// No endpoint is ready.
    NoHealthyEndpoint,
    /// Every ready endpoint refused or timed out.
    EndpointFailed,
    /// The request (SNI) was malformed.
    BadRequest,
}

impl Status {
    fn code(self) -> u8 {
        match self {
            Status::Connected => 0,
            Status::UnknownService => 1,
            Status::NotExportedToYou => 2,
            Status::NoHealthyEndpoint => 3,
            Status::EndpointFailed => 4,
            Status::BadRequest => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Status::Connected,
            1 => Status::UnknownService,
            2 => Status::NotExportedToYou,
            3 => Status::NoHealthyEndpoint,
            4 => Status::EndpointFailed,
            5 => Status::BadRequest,
            _ => return None,
        })
    }

    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "connected",
            Status::UnknownService => "unknown_service",
            Status::NotExportedToYou => "not_exported_to_peer",
            Status::NoHealthyEndpoint => "no_healthy_endpoint",
            Status::EndpointFailed => "endpoint_failed",
            Status::BadRequest => "bad_request",
        }
    }
}

/// Writes a status.
///
/// # Errors
/// When the stream fails.
pub async fn write<S: AsyncWrite + Unpin>(stream: &mut S, status: Status) -> std::io::Result<()> {
    stream.write_all(&[MARKER, status.code()]).await?;
    stream.flush().await
}

/// Reads a status.
///
/// # Errors
/// When the stream fails or what arrives is not a status.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Status> {
    let mut buf = [0u8; 2];
    stream.read_exact(&mut buf).await?;
    match (buf[0], Status::from_code(buf[1])) {
        (MARKER, Some(s)) => Ok(s),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("peer ingress sent {buf:02x?}, not a status"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_status_round_trips_and_garbage_is_refused() {
        for s in [
            Status::Connected,
            Status::UnknownService,
            Status::NotExportedToYou,
            Status::NoHealthyEndpoint,
            Status::EndpointFailed,
            Status::BadRequest,
        ] {
            let (mut a, mut b) = tokio::io::duplex(8);
            write(&mut a, s).await.unwrap();
            assert_eq!(read(&mut b).await.unwrap(), s);
        }
        let (mut a, mut b) = tokio::io::duplex(8);
        a.write_all(b"GE").await.unwrap();
        assert!(read(&mut b).await.is_err());
    }
}
