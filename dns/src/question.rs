//! Whether a query's question section can be echoed as it was sent.
//!
//! hickory answers with the question section's original bytes (so the
//! client sees its own letter case), at the same offset, 12, right after
//! the header. A compression pointer in those bytes that points into the
//! header (offset < 12) then points at the *response's* header, whose bytes
//! differ: the response names a different name, or carries a reserved
//! label type and does not parse. Such a pointer is malformed anyway: RFC
//! 1035 §4.1.4 has a pointer name "a prior occurance of the same name",
//! and the header holds no name. The router answers FORMERR to it.

/// The header's length (RFC 1035 §4.1.1): where the question starts.
const HEADER_LEN: usize = 12;

/// Whether the question section `question` (as it followed the header,
/// any number of questions) holds a compression pointer into the header,
/// or cannot be walked at all.
pub(crate) fn points_into_header(question: &[u8]) -> bool {
    let mut at = 0;
    // Every step moves `at` forward by at least one byte: bounded.
    while at < question.len() {
        let Some(end) = name_end(question, at) else {
            return true;
        };
        // QTYPE and QCLASS (RFC 1035 §4.1.2).
        at = end + 4;
    }
    false
}

/// The offset after the name at `at`, or `None` for a pointer into the
/// header, a reserved label type or a name cut short.
fn name_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            // RFC 1035 §4.1.4: two octets, the offset in the low 14 bits;
            // a pointer ends the name.
            0xC0 => {
                let low = *bytes.get(at + 1)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                return (target >= HEADER_LEN).then_some(at + 2);
            }
            // 0x40 and 0x80: reserved (RFC 6891 §5 retired 0x40).
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `web.prod` A IN, uncompressed.
    const PLAIN: &[u8] = b"\x03web\x04prod\x00\x00\x01\x00\x01";

    #[test]
    fn an_uncompressed_question_can_be_echoed() {
        assert!(!points_into_header(PLAIN));
        assert!(!points_into_header(b""));
    }

    #[test]
    fn a_pointer_into_the_header_cannot() {
        // The name ends in a pointer to offset 2 (the flags).
        assert!(points_into_header(b"\x03web\xC0\x02\x00\x01\x00\x01"));
    }

    #[test]
    fn a_second_question_may_point_into_the_first() {
        let mut two = PLAIN.to_vec();
        // `www` + pointer to `prod` of the first question (offset 12 + 4).
        two.extend_from_slice(b"\x03www\xC0\x10\x00\x01\x00\x01");
        assert!(!points_into_header(&two));
    }

    /// Found by the `dns_answer` fuzz target: a name ending in a pointer to
    /// offset 2 was echoed as is, and the response (flags 0x81 there) did
    /// not parse.
    #[tokio::test]
    async fn a_query_pointing_into_the_header_gets_a_formerr_that_parses() {
        use std::net::{Ipv4Addr, SocketAddr};
        use std::sync::Arc;

        use hickory_proto::op::{Message, ResponseCode};

        use crate::router::ZoneRouter;
        use crate::snapshot::ZoneSnapshot;
        use crate::udp::hickory_answer;

        let snapshot = Arc::new(ZoneSnapshot {
            zone: "clusterset.local".into(),
            ttl: 5,
            services: Default::default(),
            serial: 1,
        });
        let (_tx, rx) = tokio::sync::watch::channel(snapshot);
        let router = ZoneRouter::new(rx, &[]).expect("a router without upstreams");
        let mut packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00".to_vec();
        packet.extend_from_slice(b"\x03web\xC0\x02\x00\x01\x00\x01");
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 5300));
        let response = hickory_answer(&router, &packet, src)
            .await
            .expect("a query gets a response");
        let message = Message::from_vec(&response).expect("the response parses");
        assert_eq!(message.metadata.id, 0x1234);
        assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        assert!(message.queries.is_empty(), "{message:?}");
    }

    #[test]
    fn reserved_label_types_and_cut_names_cannot() {
        assert!(points_into_header(b"\x83web\x00\x00\x01\x00\x01"));
        assert!(points_into_header(b"\x03we"));
        assert!(points_into_header(b"\x03web\xC0"));
    }
}
