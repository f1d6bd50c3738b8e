//! The pre-encoded answers of every name, laid out for few cache misses.
//!
//! A lookup of a random name in a table of 100 000 names misses the CPU
//! caches at every pointer it follows, so the table follows few: a map
//! from the name's 64-bit hash to an offset, and one arena in which each
//! name's entry (the name, then the bodies of its positive answers) lies
//! in one piece. A query costs the map's probe and one or two cache lines
//! of the arena.
//!
//! Entry layout: name length (1 octet), name (lowercase wire form), body
//! count (1 octet), then per body: QTYPE (2), RCODE (1), ANCOUNT, NSCOUNT,
//! ARCOUNT (2 each), length (2), the bytes.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use foldhash::fast::RandomState;

/// A response without its header and question, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyRef<'a> {
    /// RCODE.
    pub(super) rcode: u8,
    /// ANCOUNT, NSCOUNT, ARCOUNT.
    pub(super) counts: [u16; 3],
    /// Answer, authority and additional sections.
    pub(super) bytes: &'a [u8],
}

/// What the table says about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup<'a> {
    /// The name exists; its positive answers are in the entry.
    Exists(Entry<'a>),
    /// The name does not exist.
    Absent,
    /// Two names share a hash (about once in 10^9 zones of 100 000
    /// names): hickory answers them.
    Ambiguous,
}

/// One name's bodies in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'a>(&'a [u8]);

/// Offset marking a hash two names share.
const AMBIGUOUS: u32 = u32::MAX;

/// The table of one snapshot.
#[derive(Debug, Default)]
pub(super) struct AnswerTable {
    offsets: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    arena: Vec<u8>,
    hasher: RandomState,
}

impl AnswerTable {
    /// How many names the table holds.
    pub(super) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Adds `name` (lowercase wire form) with its positive `bodies`
    /// (QTYPE, body). Returns `false`, adding nothing, when the entry does
    /// not fit the layout (a body over 64 KiB, an arena over 4 GiB).
    pub(super) fn insert(&mut self, name: &[u8], bodies: &[(u16, BodyRef<'_>)]) -> bool {
        let (Ok(name_len), Ok(count), Ok(offset)) = (
            u8::try_from(name.len()),
            u8::try_from(bodies.len()),
            u32::try_from(self.arena.len()),
        ) else {
            return false;
        };
        if offset == AMBIGUOUS {
            return false;
        }
        let Some(entry) = encode_bodies(bodies) else {
            return false;
        };
        debug_assert_eq!(usize::from(entry[0]), usize::from(count));
        self.arena.push(name_len);
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(&entry);
        let hash = self.hasher.hash_one(name);
        self.offsets
            .entry(hash)
            .and_modify(|o| *o = AMBIGUOUS)
            .or_insert(offset);
        true
    }

    /// Looks up `name` (lowercase wire form).
    pub(super) fn get(&self, name: &[u8]) -> Lookup<'_> {
        let Some(&offset) = self.offsets.get(&self.hasher.hash_one(name)) else {
            return Lookup::Absent;
        };
        if offset == AMBIGUOUS {
            return Lookup::Ambiguous;
        }
        let entry = &self.arena[offset as usize..];
        let len = usize::from(entry[0]);
        // The one name with this hash is another: this one is not here.
        if entry.get(1..1 + len) != Some(name) {
            return Lookup::Absent;
        }
        Lookup::Exists(Entry(&entry[1 + len..]))
    }
}

/// One name's bodies laid out as in the arena after the name (body
/// count, then each body), or `None` when they do not fit the layout (more
/// than 255 bodies, a body over 64 KiB).
pub(super) fn encode_bodies(bodies: &[(u16, BodyRef<'_>)]) -> Option<Vec<u8>> {
    let count = u8::try_from(bodies.len()).ok()?;
    let mut out = vec![count];
    for (qtype, body) in bodies {
        let len = u16::try_from(body.bytes.len()).ok()?;
        out.extend_from_slice(&qtype.to_be_bytes());
        out.push(body.rcode);
        for value in body.counts.into_iter().chain([len]) {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.extend_from_slice(body.bytes);
    }
    Some(out)
}

impl<'a> Entry<'a> {
    /// An entry over bodies laid out by [`encode_bodies`].
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The body answering `qtype`, or `None` for NODATA.
    pub(super) fn body(self, qtype: u16) -> Option<BodyRef<'a>> {
        let read = |at: usize| u16::from_be_bytes([self.0[at], self.0[at + 1]]);
        let mut at = 1;
        // Bounded by the body count of the entry.
        for _ in 0..self.0[0] {
            let len = usize::from(read(at + 9));
            if read(at) == qtype {
                return Some(BodyRef {
                    rcode: self.0[at + 2],
                    counts: [read(at + 3), read(at + 5), read(at + 7)],
                    bytes: &self.0[at + 11..at + 11 + len],
                });
            }
            at += 11 + len;
        }
        None
    }
}

/// The map's keys are foldhash values already: pass them through.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for u64 keys; fold anything else in.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(rcode: u8, bytes: &[u8]) -> BodyRef<'_> {
        BodyRef {
            rcode,
            counts: [1, 0, 2],
            bytes,
        }
    }

    #[test]
    fn entries_round_trip_and_unknown_types_are_nodata() {
        let mut table = AnswerTable::default();
        assert!(table.insert(b"\x01a\x00", &[(1, body(0, b"A")), (33, body(0, b"SRV!"))]));
        assert!(table.insert(b"\x01b\x00", &[]));
        let Lookup::Exists(a) = table.get(b"\x01a\x00") else {
            panic!("a exists");
        };
        assert_eq!(a.body(1), Some(body(0, b"A")));
        assert_eq!(a.body(33), Some(body(0, b"SRV!")));
        assert_eq!(a.body(28), None);
        let Lookup::Exists(b) = table.get(b"\x01b\x00") else {
            panic!("b exists");
        };
        assert_eq!(b.body(1), None);
        assert_eq!(table.get(b"\x01c\x00"), Lookup::Absent);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_hash_two_names_share_is_left_to_hickory() {
        let mut table = AnswerTable::default();
        assert!(table.insert(b"\x01a\x00", &[]));
        // The same name twice stands in for two names with one hash.
        assert!(table.insert(b"\x01a\x00", &[]));
        assert_eq!(table.get(b"\x01a\x00"), Lookup::Ambiguous);
    }
}
