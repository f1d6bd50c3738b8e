//! The DNS fast path (`dns/src/fast/query.rs` and the pre-encoded table):
//! every UDP packet a client sends reaches this parser first.
//!
//! Rules checked: any packet is answered or left to hickory, never a
//! panic; an answer echoes the query's ID and question, has QR set, fits
//! the client's buffer (at least 512 octets, RFC 6891 §6.2.5), and
//! parses as a DNS message with hickory's own decoder.

use hickory_proto::op::Message;

use crate::zone::zone;

/// The least UDP payload a client can be held to (RFC 1035 §4.2.1).
const CLASSIC_UDP: usize = 512;

/// Answers `data` on the fast path.
pub fn run(data: &[u8]) {
    let Some(out) = zone().fast(data) else {
        return;
    };
    assert!(out.len() >= 12, "answer shorter than a header");
    assert_eq!(out[..2], data[..2], "answer ID");
    assert_eq!(out[2] & 0x80, 0x80, "QR bit");
    if let Ok(query) = Message::from_vec(data) {
        let payload = query
            .edns
            .map_or(CLASSIC_UDP, |e| usize::from(e.max_payload()))
            .max(CLASSIC_UDP);
        assert!(out.len() <= payload, "{} octets > {payload}", out.len());
    }
    if let Err(error) = Message::from_vec(&out) {
        panic!("fast answer does not parse: {error}");
    }
}
