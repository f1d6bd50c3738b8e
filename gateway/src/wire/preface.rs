//! The first-wave tunnel's status preface (DESIGN.md, Gateway: Health):
//! after the mTLS handshake the ingress connects to a local endpoint and
//! answers with two bytes before any client byte flows, so the egress
//! counts a remote hop as connected only once an endpoint was reached.
//! Kept so that gateways of the previous release, which speak only this
//! tunnel, still reach this one.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Refusal;

/// First byte of every preface (a version marker).
const MARKER: u8 = 0xFE;

fn code(answer: Result<(), Refusal>) -> u8 {
    match answer {
        Ok(()) => 0,
        Err(Refusal::UnknownService) => 1,
        Err(Refusal::NotExportedToYou) => 2,
        Err(Refusal::NoHealthyEndpoint) => 3,
        Err(Refusal::EndpointFailed) => 4,
        Err(Refusal::BadRequest) => 5,
    }
}

fn from_code(code: u8) -> Option<Result<(), Refusal>> {
    Some(match code {
        0 => Ok(()),
        1 => Err(Refusal::UnknownService),
        2 => Err(Refusal::NotExportedToYou),
        3 => Err(Refusal::NoHealthyEndpoint),
        4 => Err(Refusal::EndpointFailed),
        5 => Err(Refusal::BadRequest),
        _ => return None,
    })
}

/// Writes the ingress's answer: connected, or why not.
///
/// # Errors
/// When the stream fails.
pub async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    answer: Result<(), Refusal>,
) -> std::io::Result<()> {
    stream.write_all(&[MARKER, code(answer)]).await?;
    stream.flush().await
}

/// Reads the ingress's answer.
///
/// # Errors
/// When the stream fails or what arrives is not a preface.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Result<(), Refusal>> {
    let mut buf = [0u8; 2];
    stream.read_exact(&mut buf).await?;
    match (buf[0], from_code(buf[1])) {
        (MARKER, Some(answer)) => Ok(answer),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("peer ingress sent {buf:02x?}, not a status preface"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_answer_round_trips_and_garbage_is_refused() {
        let answers = std::iter::once(Ok(())).chain(Refusal::ALL.into_iter().map(Err));
        for answer in answers {
            let (mut a, mut b) = tokio::io::duplex(8);
            write(&mut a, answer).await.unwrap();
            assert_eq!(read(&mut b).await.unwrap(), answer);
        }
        let (mut a, mut b) = tokio::io::duplex(8);
        a.write_all(b"GE").await.unwrap();
        assert!(read(&mut b).await.is_err());
    }
}
