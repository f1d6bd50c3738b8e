//! Queries answered, counted by response code, for the control plane's
//! `/metrics` (`fedmesh_control_dns_queries_total{rcode}`).
//!
//! Every response the server sends is counted once, where it is sent: the
//! UDP fast path from the pre-encoded header, the UDP slow path from the
//! decoded response (so EDNS extended codes such as BADVERS are seen,
//! RFC 6891 §6.1.3), TCP from hickory's `ResponseInfo`. Each UDP worker
//! counts into a shard of its own (one cache line), so the fast path adds
//! one uncontended atomic add per query; [`QueryCounters::by_rcode`] sums
//! the shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `rcode` labels, in the order [`QueryCounters::by_rcode`] returns
/// them: the codes RFC 1035 §4.1.1 defines, BADVERS (RFC 6891), and
/// `OTHER` for any other code.
pub const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "OTHER",
];

/// One shard of counts, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard([AtomicU64; RCODES.len()]);

/// Responses sent, by response code, summed over every socket.
#[derive(Debug)]
pub struct QueryCounters {
    shards: Box<[Shard]>,
}

impl QueryCounters {
    /// Counters with `shards` shards (at least one).
    pub fn new(shards: usize) -> Arc<Self> {
        let shards = (0..shards.max(1)).map(|_| Shard::default()).collect();
        Arc::new(Self { shards })
    }

    /// Counts one response with `rcode` (the full 12-bit code) in `shard`
    /// (taken modulo the shard count).
    pub(crate) fn count(&self, shard: usize, rcode: u16) {
        let shard = &self.shards[shard % self.shards.len()];
        shard.0[index(rcode)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one encoded response by the RCODE in its header (RFC 1035
    /// §4.1.1: the low 4 bits of octet 3). Only for responses that carry
    /// no extended code (the fast path's); a packet too short is not
    /// counted.
    pub(crate) fn count_header(&self, shard: usize, response: &[u8]) {
        if let Some(octet) = response.get(3) {
            self.count(shard, u16::from(octet & 0x0f));
        }
    }

    /// Every `rcode` label of [`RCODES`] with the responses sent with it.
    pub fn by_rcode(&self) -> Vec<(&'static str, u64)> {
        RCODES
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let sum = self.shards.iter().map(|s| s.0[i].load(Ordering::Relaxed));
                (*label, sum.sum())
            })
            .collect()
    }
}

/// The [`RCODES`] index of a response code.
fn index(rcode: u16) -> usize {
    match rcode {
        0..=5 => usize::from(rcode),
        16 => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(c: &QueryCounters, label: &str) -> u64 {
        c.by_rcode()
            .into_iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| n)
    }

    #[test]
    fn every_rcode_is_listed_at_zero_from_the_start() {
        let c = QueryCounters::new(2);
        let all = c.by_rcode();
        assert_eq!(all.len(), RCODES.len());
        assert!(all.iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn shards_are_summed_and_codes_land_under_their_label() {
        let c = QueryCounters::new(2);
        c.count(0, 3);
        c.count(1, 3);
        c.count(7, 16);
        c.count(0, 9);
        assert_eq!(count_of(&c, "NXDOMAIN"), 2);
        assert_eq!(count_of(&c, "BADVERS"), 1);
        assert_eq!(count_of(&c, "OTHER"), 1);
    }

    #[test]
    fn a_header_is_counted_by_its_low_four_bits() {
        let c = QueryCounters::new(1);
        // ID, then QR|AA, then RA + RCODE 5 (REFUSED).
        c.count_header(0, &[0x12, 0x34, 0x84, 0x85, 0, 0]);
        c.count_header(0, &[0x12]);
        assert_eq!(count_of(&c, "REFUSED"), 1);
        assert_eq!(c.by_rcode().iter().map(|(_, n)| n).sum::<u64>(), 1);
    }
}
