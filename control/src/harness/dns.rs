//! One DNS question over UDP with a real message in hickory's wire format
//! (RFC 1035 §4.1), decoded to what the demo and tests compare.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::HarnessError;

/// How long one question waits for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// A DNS answer, reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// `NoError`, `NXDomain`, `Refused`, …
    pub code: String,
    /// A records in the answer section.
    pub a: Vec<Ipv4Addr>,
    /// SRV records in the answer section: (priority, weight, port, target).
    pub srv: Vec<(u16, u16, u16, String)>,
    /// Whether the authority section holds the zone's SOA (RFC 2308 §2.2:
    /// a negative answer carries it).
    pub soa: bool,
}

/// Asks `server` for `rtype` records of `name`, with recursion desired.
///
/// # Errors
/// A name that is not one, a socket error, or no answer within 3 s.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> Result<DnsAnswer, HarnessError> {
    let dns = |source| HarnessError::Dns { server, source };
    let mut message = Message::new(4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).map_err(dns)?, rtype));
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(HarnessError::io("binding a UDP socket"))?;
    socket
        .send_to(&message.to_vec().map_err(dns)?, server)
        .await
        .map_err(HarnessError::io(format!("sending to {server}")))?;
    let mut buf = vec![0u8; 65_535];
    let len = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv(&mut buf))
        .await
        .map_err(|_| HarnessError::DnsTimeout(server))?
        .map_err(HarnessError::io(format!("reading from {server}")))?;
    let reply =
        Message::from_vec(&buf[..len]).map_err(|source| HarnessError::Decode { server, source })?;
    let mut out = DnsAnswer {
        code: format!("{:?}", reply.metadata.response_code),
        a: Vec::new(),
        srv: Vec::new(),
        soa: reply
            .authorities
            .iter()
            .any(|r| matches!(r.data, RData::SOA(_))),
    };
    for r in &reply.answers {
        match &r.data {
            RData::A(a) => out.a.push(a.0),
            RData::SRV(s) => out
                .srv
                .push((s.priority, s.weight, s.port, s.target.to_ascii())),
            _ => {}
        }
    }
    Ok(out)
}
