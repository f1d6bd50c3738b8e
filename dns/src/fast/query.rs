//! The part of a UDP query the fast path reads: the header, one question
//! and an optional plain OPT record, checked to be the common case. Any
//! other shape returns `None`, and the query goes to hickory unchanged.

/// `OPT` (RFC 6891 §6.1.1).
const TYPE_OPT: u16 = 41;
/// Class `IN` (RFC 1035 §3.2.4).
const CLASS_IN: u16 = 1;
/// RFC 1035 §4.1.1: QR, Opcode (4 bits), AA, TC in the first flags byte.
const QR: u8 = 0x80;
const OPCODE: u8 = 0x78;
const TC: u8 = 0x02;
/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire.
pub(crate) const MAX_NAME: usize = 255;
/// RFC 1035 §2.3.4: a label is at most 63 octets.
const MAX_LABEL: u8 = 63;
/// RFC 3225 §3: the DO bit is the top bit of the OPT TTL's flags.
const DO_BIT: u16 = 0x8000;

/// A query of the common shape, borrowing from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    /// The question section as sent: name (in the client's case), type,
    /// class. Copied into the response as it is (0x20 case randomisation).
    pub(crate) question: &'a [u8],
    /// The length of the name on the wire, the root label included.
    pub(crate) name_len: usize,
    /// QTYPE.
    pub(crate) qtype: u16,
    /// The query's OPT record, if any.
    pub(crate) opt: Option<Opt>,
}

/// What a plain OPT record says (RFC 6891 §6.1.2–6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt {
    /// The requestor's UDP payload size.
    pub(crate) payload: u16,
    /// DNSSEC OK (RFC 3225 §3).
    pub(crate) dnssec_ok: bool,
}

/// Reads `packet` if it is a standard query (RFC 1035 §4.1) with one
/// question of class IN and at most one additional record, a plain OPT
/// (version 0, no options), and nothing after it.
pub(crate) fn parse(packet: &[u8]) -> Option<Query<'_>> {
    let header = packet.get(..12)?;
    // QR = 0 (a query), opcode QUERY, not truncated.
    if header[2] & (QR | OPCODE | TC) != 0 {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let name_len = name_len(packet.get(12..)?)?;
    let end = 12 + name_len + 4;
    let fixed = packet.get(12 + name_len..end)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    if u16::from_be_bytes([fixed[2], fixed[3]]) != CLASS_IN {
        return None;
    }
    let opt = match count(10) {
        0 if packet.len() == end => None,
        1 => Some(opt(&packet[end..])?),
        _ => return None,
    };
    Some(Query {
        question: &packet[12..end],
        name_len,
        qtype,
        opt,
    })
}

/// The wire length of the uncompressed name at the start of `bytes`, or
/// `None` for a compression pointer, a reserved label type, an
/// over-long name, or a name cut short.
fn name_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    // Bounded: every turn consumes at least one byte of a 255-byte window.
    while at < MAX_NAME {
        let len = *bytes.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        // 0xC0 is a pointer, 0x40 and 0x80 reserved (RFC 6891 §5): not
        // the common case.
        if len > MAX_LABEL {
            return None;
        }
        at += 1 + usize::from(len);
    }
    None
}

/// A plain OPT record making up the whole of `rr`: root owner, version 0,
/// extended RCODE 0, no options (RFC 6891 §6.1.2).
fn opt(rr: &[u8]) -> Option<Opt> {
    let [0, t0, t1, c0, c1, rcode, version, f0, f1, 0, 0] = *rr else {
        return None;
    };
    if u16::from_be_bytes([t0, t1]) != TYPE_OPT || rcode != 0 || version != 0 {
        return None;
    }
    Some(Opt {
        payload: u16::from_be_bytes([c0, c1]),
        dnssec_ok: u16::from_be_bytes([f0, f1]) & DO_BIT != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `web.prod.svc.clusterset.local. A IN`, RD set, with `tail` appended
    /// and ARCOUNT `ar`.
    fn packet(ar: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, ar];
        for label in ["web", "prod", "svc", "clusterset", "local"] {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        p.extend_from_slice(tail);
        p
    }

    const OPT_DO: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];

    #[test]
    fn a_plain_query_is_the_common_case() {
        let p = packet(0, &[]);
        let q = parse(&p).expect("common case");
        assert_eq!(q.name_len, 31);
        assert_eq!(q.qtype, 1);
        assert_eq!(q.opt, None);
        assert_eq!(q.question, &p[12..]);
    }

    #[test]
    fn a_plain_opt_with_do_is_read() {
        let p = packet(1, &OPT_DO);
        let opt = parse(&p).and_then(|q| q.opt).expect("opt");
        assert_eq!(
            opt,
            Opt {
                payload: 1232,
                dnssec_ok: true
            }
        );
    }

    #[test]
    fn opt_with_options_or_a_later_version_is_not_common() {
        let mut with_option = OPT_DO;
        with_option[10] = 4;
        let mut option = with_option.to_vec();
        option.extend_from_slice(&[0, 10, 0, 0]);
        assert_eq!(parse(&packet(1, &option)), None);
        let mut version = OPT_DO;
        version[6] = 1;
        assert_eq!(parse(&packet(1, &version)), None);
    }

    #[test]
    fn responses_other_opcodes_and_extra_bytes_are_not_common() {
        let mut response = packet(0, &[]);
        response[2] |= 0x80;
        assert_eq!(parse(&response), None);
        let mut notify = packet(0, &[]);
        notify[2] |= 4 << 3;
        assert_eq!(parse(&notify), None);
        assert_eq!(parse(&packet(0, &[0])), None);
        assert_eq!(parse(&packet(1, &[])), None);
    }

    #[test]
    fn chaos_class_and_pointers_are_not_common() {
        let mut chaos = packet(0, &[]);
        let last = chaos.len() - 1;
        chaos[last] = 3;
        assert_eq!(parse(&chaos), None);
        let pointer = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&pointer), None);
    }

    #[test]
    fn short_packets_are_not_common() {
        let p = packet(0, &[]);
        for len in 0..p.len() {
            assert_eq!(parse(&p[..len]), None, "cut at {len}");
        }
    }
}
