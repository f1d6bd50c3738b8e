//! The slow path of a UDP query: what hickory's own UDP server does with a
//! packet, up to the encoded response, which the worker then sends.
//!
//! Responses (QR = 1) are dropped, as hickory drops them (no reflection);
//! a packet too short for a header is dropped; one hickory cannot parse is
//! answered FORMERR, and so is one whose question points into the header
//! (see `question`), before anything echoes that question; other opcodes
//! than QUERY get NOTIMP and EDNS versions above 0 get BADVERS (RFC 6891
//! §6.1.3) here, because hickory's catalog logs those at warn and a client
//! should not be able to fill the operator's log. Everything else goes to the [`ZoneRouter`], as over TCP.
//! Every line logged about a client's packet is at debug.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tracing::debug;

use crate::router::ZoneRouter;

/// RFC 1035 §4.2.1: without EDNS a UDP response is at most 512 octets.
const CLASSIC_UDP: u16 = 512;

/// hickory's response to the UDP query `packet` from `src`, encoded and
/// truncated to fit the client's buffer, or `None` when no response is
/// due.
pub(crate) async fn answer(router: &ZoneRouter, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    answer_over(router, packet, src, Protocol::Udp).await
}

/// As [`answer`], for a query that came over `protocol`: over TCP the
/// response is never truncated (RFC 7766 §8: up to 65 535 octets).
pub(crate) async fn answer_over(
    router: &ZoneRouter,
    packet: &[u8],
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let mut decoder = BinDecoder::new(packet);
    let Ok(header) = Header::read(&mut decoder) else {
        debug!(%src, len = packet.len(), "DNS packet shorter than a header; dropped");
        return None;
    };
    if header.metadata.message_type == MessageType::Response {
        debug!(%src, id = header.metadata.id, "DNS response sent as a query; dropped");
        return None;
    }
    let reply = Reply {
        stream: protocol == Protocol::Tcp,
        ..Reply::default()
    };
    match Request::from_bytes(packet.to_vec(), src, protocol) {
        Ok(request) => answer_request(router, &request, reply.clone()).await,
        Err(error) => {
            debug!(%src, id = header.metadata.id, %error, "malformed DNS query; answering FORMERR");
            let none = no_queries();
            let response = MessageResponseBuilder::new(&none, None);
            send(
                reply.clone(),
                response.error_msg(&header.metadata, ResponseCode::FormErr),
            )
            .await;
        }
    }
    reply.take()
}

async fn answer_request(router: &ZoneRouter, request: &Request, reply: Reply) {
    let metadata = &request.metadata;
    // Before NOTIMP and BADVERS, which echo the question as sent too: a
    // pointer into the header would name the response's header instead
    // (see `question`), and the response would not parse.
    if crate::question::points_into_header(request.queries.as_bytes()) {
        debug!(
            id = metadata.id,
            "question points into the header; answering FORMERR"
        );
        crate::router::formerr(request, reply).await;
        return;
    }
    if metadata.op_code != OpCode::Query {
        debug!(id = metadata.id, op = %metadata.op_code, "DNS opcode not implemented; answering NOTIMP");
        let response = MessageResponseBuilder::new(&request.queries, None);
        send(reply, response.error_msg(metadata, ResponseCode::NotImp)).await;
        return;
    }
    if let Some(edns) = request.edns.as_ref().filter(|e| e.version() > 0) {
        debug!(
            id = metadata.id,
            version = edns.version(),
            "EDNS version not supported; answering BADVERS"
        );
        let mut ours = Edns::new();
        ours.set_max_payload(edns.max_payload().max(CLASSIC_UDP));
        ours.set_dnssec_ok(edns.flags().dnssec_ok);
        let response = MessageResponseBuilder::new(&request.queries, Some(&ours));
        send(reply, response.error_msg(metadata, ResponseCode::BADVERS)).await;
        return;
    }
    router.handle_request::<_, TokioTime>(request, reply).await;
}

async fn send<'a>(
    mut reply: Reply,
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) {
    if let Err(error) = reply.send_response(response).await {
        debug!(%error, "DNS error response not encodable");
    }
}

/// An empty question section, for FORMERR to a packet without a readable
/// one.
fn no_queries() -> Queries {
    Queries::read(&mut BinDecoder::new(&[]), 0)
        .expect("reading zero questions reads no bytes, so cannot fail")
}

/// Where hickory's response lands: encoded as hickory's UDP server encodes
/// it (truncated to the client's buffer, RFC 6891 §7), to be sent by the
/// worker.
#[derive(Clone, Default)]
struct Reply {
    bytes: Arc<Mutex<Option<Vec<u8>>>>,
    /// Over TCP: no truncation.
    stream: bool,
}

impl Reply {
    fn take(&self) -> Option<Vec<u8>> {
        // Only a panic while storing bytes poisons the lock; the bytes
        // stored before are whole.
        self.bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        // RFC 1035 §4.2.1 and RFC 6891 §6.2.5, as hickory's `encode`.
        encoder.set_max_size(if self.stream {
            u16::MAX
        } else {
            response.edns().map_or(CLASSIC_UDP, Edns::max_payload)
        });
        let info = response.destructive_emit(&mut encoder)?;
        *self.bytes.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use hickory_server::proto::op::{Message, ResponseCode};

    use super::answer;
    use crate::router::ZoneRouter;
    use crate::snapshot::ZoneSnapshot;

    /// The response to `packet` over UDP from a router with an empty zone.
    async fn response_to(packet: &[u8]) -> Message {
        let snapshot = Arc::new(ZoneSnapshot {
            zone: "clusterset.local".into(),
            ttl: 5,
            services: Default::default(),
            serial: 1,
        });
        let (_tx, rx) = tokio::sync::watch::channel(snapshot);
        let router = ZoneRouter::new(rx, &[]).expect("a router without upstreams");
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 5300));
        let response = answer(&router, packet, src)
            .await
            .expect("a query gets a response");
        Message::from_vec(&response).expect("the response parses")
    }

    /// Found by the `dns_answer` fuzz target (the minimised input): an
    /// IQUERY whose second question is a pointer to offset 2 got NOTIMP
    /// with that question echoed, and the response did not parse.
    #[tokio::test]
    async fn an_iquery_pointing_into_the_header_gets_a_formerr_that_parses() {
        let packet = b"\xe9\x34\x0b\x55\x00\x02\x00\x00\x00\x00\x00\x00\
            \x00\x00\x00\x24\x02\xc0\x02\x00\x00\x00\x00";
        let message = response_to(packet).await;
        assert_eq!(message.metadata.id, 0xe934);
        assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        assert!(message.queries.is_empty(), "{message:?}");
    }

    /// The same through the BADVERS path (RFC 6891 §6.1.3), which echoes
    /// the question too.
    #[tokio::test]
    async fn an_edns_version_1_query_pointing_into_the_header_gets_a_formerr() {
        let mut packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01".to_vec();
        // `web` + pointer to offset 2 (the flags), A IN.
        packet.extend_from_slice(b"\x03web\xC0\x02\x00\x01\x00\x01");
        // OPT: root owner, type 41, payload 4096, version 1, no options.
        packet.extend_from_slice(b"\x00\x00\x29\x10\x00\x00\x01\x00\x00\x00\x00");
        let message = response_to(&packet).await;
        assert_eq!(message.metadata.id, 0x1234);
        assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        assert!(message.queries.is_empty(), "{message:?}");
    }
}
