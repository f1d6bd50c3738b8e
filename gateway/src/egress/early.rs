//! Early data (DESIGN.md, "Wave 2 contract → Inter-gateway transport"):
//! client bytes that arrive while a peer ingress has not yet answered go
//! with the CONNECT at once, so a new connection costs one round trip, and
//! are kept until the 200: when a target refuses (503), the next one gets
//! them again. The ingress reads a stream's bytes only after it reached an
//! endpoint, and one that refused never reads them, so no byte reaches two
//! endpoints. Bounded: past [`LIMIT`] bytes the client waits for the 200.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most client bytes kept before a target answers.
pub(super) const LIMIT: usize = 64 * 1024;

/// How much one read takes.
const CHUNK: usize = 16 * 1024;

/// Client bytes read before any target took the connection.
#[derive(Debug, Default)]
pub(super) struct Early {
    kept: BytesMut,
    eof: bool,
}

impl Early {
    /// Whether nothing was read yet.
    pub(super) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Everything kept, to send to a target.
    pub(super) fn bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.kept)
    }

    /// Whether another read may be made: room left, client not done.
    pub(super) fn has_room(&self) -> bool {
        !self.eof && self.kept.len() < LIMIT
    }

    /// Reads what the client sends next, keeps it and returns it; `None`
    /// when the client closed its side (the carry stage then sees the same
    /// end of stream again and passes it on).
    ///
    /// # Errors
    /// When the client's socket fails.
    pub(super) async fn read_more<R: AsyncRead + Unpin>(
        &mut self,
        client: &mut R,
    ) -> std::io::Result<Option<Bytes>> {
        let room = (LIMIT - self.kept.len()).min(CHUNK);
        let mut chunk = BytesMut::with_capacity(room);
        if client.read_buf(&mut chunk).await? == 0 {
            self.eof = true;
            return Ok(None);
        }
        self.kept.extend_from_slice(&chunk);
        Ok(Some(chunk.freeze()))
    }

    /// A target took the bytes for good: forget them.
    pub(super) fn delivered(&mut self) {
        self.kept.clear();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn bytes_are_kept_until_delivered_and_bounded() {
        let (mut client, mut ours) = tokio::io::duplex(256 * 1024);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut early = Early::default();
        let first = early.read_more(&mut ours).await.unwrap().unwrap();
        assert_eq!(&first[..], b"GET / HTTP/1.1\r\n");
        assert_eq!(
            &early.bytes()[..],
            b"GET / HTTP/1.1\r\n",
            "kept for a replay"
        );
        client.write_all(&vec![b'x'; 2 * LIMIT]).await.unwrap();
        while early.has_room() {
            early.read_more(&mut ours).await.unwrap();
        }
        assert_eq!(early.bytes().len(), LIMIT, "never more than the limit");
        early.delivered();
        assert!(early.is_empty());
    }

    #[tokio::test]
    async fn a_client_that_closes_ends_the_reads() {
        let (client, mut ours) = tokio::io::duplex(64);
        drop(client);
        let mut early = Early::default();
        assert_eq!(early.read_more(&mut ours).await.unwrap(), None);
        assert!(!early.has_room());
    }
}
