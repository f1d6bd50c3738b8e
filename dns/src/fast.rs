//! The fast path: every answer of the zone encoded once per snapshot, so a
//! common UDP query costs one parse, one hash lookup and one copy.
//!
//! [`FastZone::build`] walks the [`ZoneIndex`] of a snapshot, asks
//! [`crate::answer`] (the same function the hickory path uses) for the
//! records of every name the zone holds, and encodes each response body
//! (answer, authority and additional sections) once. Per query,
//! [`FastZone::respond`] writes the header (the query's ID, RD and CD),
//! copies the question as sent, then the body, then an OPT echoing the DO
//! bit when the query had one. The answer records' owner is a compression
//! pointer to the question (RFC 1035 §4.1.4), so their case is the
//! client's (0x20 case randomisation survives). Names in record data are
//! written uncompressed: SRV targets must not be compressed (RFC 2782), and
//! the other bodies stay position-independent.
//!
//! Anything [`query::parse`] does not call the common case, any type
//! outside [`FAST_TYPES`], any name outside the zone and any response
//! larger than the client's buffer is left to hickory (`respond` returns
//! `false`).

pub(crate) mod publish;
pub(crate) mod query;
mod table;
mod update;

use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};
use tracing::debug;

use crate::answer::{Answer, answer};
use crate::snapshot::{ServiceEntry, ZoneIndex, ZoneSnapshot};
use query::{MAX_NAME, Query};
use table::{AnswerTable, BodyRef, Entry, Lookup};

/// Names encoded or removed since the base table was built: the bodies
/// (laid out as in the table), or `None` for a name that no longer
/// exists.
type Overlay = imbl::HashMap<Box<[u8]>, Option<Arc<[u8]>>>;

/// The query types answered here. Each is either one of the zone's record
/// types or answered NODATA/NXDOMAIN; meta types (ANY, AXFR, IXFR, OPT)
/// and the rest go to hickory.
const FAST_TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::PTR,
    RecordType::MX,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::SVCB,
    RecordType::HTTPS,
    RecordType::CAA,
];

/// The types some name of the zone has records of (`answer.rs`).
const POSITIVE_TYPES: [RecordType; 4] = [
    RecordType::A,
    RecordType::SRV,
    RecordType::SOA,
    RecordType::NS,
];

/// RFC 1035 §4.2.1: without EDNS a UDP response is at most 512 octets.
const CLASSIC_UDP: u16 = 512;
/// NXDOMAIN (RFC 1035 §4.1.1).
const NXDOMAIN: u8 = 3;

/// Every response of one snapshot's zone, pre-encoded.
#[derive(Debug)]
pub(crate) struct FastZone {
    snapshot: Arc<ZoneSnapshot>,
    /// `None` when the snapshot names no valid zone: hickory answers all.
    zone: Option<Encoded>,
}

#[derive(Debug)]
struct Encoded {
    /// The zone's name on the wire, lowercase.
    wire: Vec<u8>,
    /// Every name that exists, by its lowercase wire form: the bodies of
    /// its positive answers by type. A type not listed is NODATA. Shared
    /// by the tables updated from it (`update`).
    names: Arc<AnswerTable>,
    /// What changed since `names` was built; read first.
    overlay: Overlay,
    /// NODATA: the SOA in the authority section (RFC 2308 §2.2).
    nodata: Body,
    /// NXDOMAIN: the SOA in the authority section (RFC 2308 §2.1).
    nxdomain: Body,
}

/// A response without its header and question.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    rcode: u8,
    /// ANCOUNT, NSCOUNT, ARCOUNT.
    counts: [u16; 3],
    bytes: Box<[u8]>,
}

impl Body {
    fn as_ref(&self) -> BodyRef<'_> {
        BodyRef {
            rcode: self.rcode,
            counts: self.counts,
            bytes: &self.bytes,
        }
    }
}

impl FastZone {
    /// Encodes every answer of `index` (built from `snapshot`), or an
    /// empty table when the snapshot names no valid zone.
    pub(crate) fn build(snapshot: Arc<ZoneSnapshot>, index: Option<&ZoneIndex>) -> Self {
        let zone = index.map(Encoded::build);
        if let Some(zone) = &zone {
            debug!(
                serial = snapshot.serial,
                names = zone.names.len(),
                changed = zone.overlay.len(),
                "pre-encoded the zone's answers"
            );
        }
        Self { snapshot, zone }
    }

    /// The snapshot this table was built from.
    pub(crate) fn snapshot(&self) -> &Arc<ZoneSnapshot> {
        &self.snapshot
    }

    /// Looks up, without answering, the table entry `packet` would use.
    ///
    /// A lookup in a table larger than the caches waits on two or three
    /// cache misses in turn. Looking up a whole batch first, in a loop of
    /// independent iterations, lets the CPU overlap those misses; the
    /// answers that follow find the entries in cache.
    pub(crate) fn warm(&self, packet: &[u8]) {
        if let (Some(zone), Some(query)) = (&self.zone, query::parse(packet)) {
            std::hint::black_box(zone.body(&query));
        }
    }

    /// Writes the response to `packet` into `out` and returns `true`, or
    /// returns `false` when the query is not the common case (see the
    /// module docs) and hickory must answer it.
    pub(crate) fn respond(&self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        let (Some(zone), Some(query)) = (&self.zone, query::parse(packet)) else {
            return false;
        };
        let Some(body) = zone.body(&query) else {
            return false;
        };
        let opt_len = if query.opt.is_some() { 11 } else { 0 };
        let len = 12 + query.question.len() + body.bytes.len() + opt_len;
        // RFC 6891 §6.2.5 and hickory's rule: the larger of the client's
        // payload and 512; larger answers go to hickory, which truncates.
        let limit = query
            .opt
            .map_or(CLASSIC_UDP, |o| o.payload.max(CLASSIC_UDP));
        if len > usize::from(limit) {
            return false;
        }
        out.clear();
        out.extend_from_slice(&packet[..2]);
        // QR, AA; RD copied (RFC 1035 §4.1.1); CD copied (RFC 4035 §3.2.2).
        out.push(0x84 | (packet[2] & 0x01));
        out.push((packet[3] & 0x10) | body.rcode);
        let additionals = body.counts[2] + u16::from(query.opt.is_some());
        for count in [1, body.counts[0], body.counts[1], additionals] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(query.question);
        out.extend_from_slice(body.bytes);
        if let Some(opt) = query.opt {
            // Root owner, type OPT, our payload, RCODE 0, version 0, and
            // the query's DO bit (RFC 3225 §3), no options.
            let flags: u8 = if opt.dnssec_ok { 0x80 } else { 0 };
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&limit.to_be_bytes());
            out.extend_from_slice(&[0, 0, flags, 0, 0, 0]);
        }
        true
    }
}

impl Encoded {
    fn build(index: &ZoneIndex) -> Self {
        let (nodata, nxdomain) = negatives(index);
        let mut names = AnswerTable::default();
        for name in existing_names(index) {
            let bodies = bodies(index, &name);
            let refs: Vec<(u16, BodyRef<'_>)> =
                bodies.iter().map(|(t, b)| (*t, b.as_ref())).collect();
            if !names.insert(&wire(&name), &refs) {
                debug!(%name, "answers too large to pre-encode; hickory answers them");
            }
        }
        Self {
            wire: wire(index.zone()),
            names: Arc::new(names),
            overlay: Overlay::new(),
            nodata,
            nxdomain,
        }
    }

    /// Records, in the overlay, the positive answers of `name`, which
    /// exists in the zone. Answers too large for the layout are left to
    /// hickory: the name is marked so the base's older answers are not
    /// used either.
    fn insert(&mut self, index: &ZoneIndex, name: &Name) {
        let bodies = bodies(index, name);
        let refs: Vec<(u16, BodyRef<'_>)> = bodies.iter().map(|(t, b)| (*t, b.as_ref())).collect();
        let key: Box<[u8]> = wire(name).into();
        match table::encode_bodies(&refs) {
            Some(entry) => {
                self.overlay.insert(key, Some(entry.into()));
            }
            None => {
                debug!(%name, "answers too large to pre-encode; hickory answers them");
                self.overlay.insert(key, Some(Arc::from(TOO_LARGE)));
            }
        }
    }

    /// What the table says about `name` (lowercase wire form): the
    /// overlay first, then the base.
    fn lookup(&self, name: &[u8]) -> Lookup<'_> {
        if self.overlay.is_empty() {
            return self.names.get(name);
        }
        match self.overlay.get(name) {
            Some(Some(entry)) if **entry == *TOO_LARGE => Lookup::Ambiguous,
            Some(Some(entry)) => Lookup::Exists(Entry::new(entry)),
            Some(None) => Lookup::Absent,
            None => self.names.get(name),
        }
    }
}

/// An overlay entry that no body layout produces (its body count says one
/// body, and there is none): answers hickory must give.
const TOO_LARGE: &[u8] = &[1];

/// NODATA and NXDOMAIN of `index`: the SOA in the authority section
/// (RFC 2308 §2.2, §2.1).
fn negatives(index: &ZoneIndex) -> (Body, Body) {
    let soa = index.soa_record(index.zone().clone());
    let negative = |rcode| Body {
        rcode,
        counts: [0, 1, 0],
        bytes: record(&soa, Owner::Written).into(),
    };
    (negative(0), negative(NXDOMAIN))
}

/// The bodies of the positive answers of `name` by type.
fn bodies(index: &ZoneIndex, name: &Name) -> Vec<(u16, Body)> {
    let mut bodies = Vec::new();
    for qtype in POSITIVE_TYPES {
        if let Answer::Records {
            answers,
            additionals,
        } = answer(index, name, qtype)
        {
            bodies.push((
                u16::from(qtype),
                positive(index, qtype, &answers, &additionals),
            ));
        }
    }
    bodies
}

impl Encoded {
    /// The body answering `query`, or `None` when hickory must answer.
    fn body(&self, query: &Query<'_>) -> Option<BodyRef<'_>> {
        if !FAST_TYPES.iter().any(|t| u16::from(*t) == query.qtype) {
            return None;
        }
        let mut lower = [0u8; MAX_NAME];
        let name = &query.question[..query.name_len];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name);
        // RFC 4343: names compare case-insensitively, ASCII only.
        lower.make_ascii_lowercase();
        if !in_zone(lower, &self.wire) {
            return None;
        }
        match self.lookup(lower) {
            Lookup::Exists(entry) => Some(entry.body(query.qtype).unwrap_or(self.nodata.as_ref())),
            Lookup::Absent => Some(self.nxdomain.as_ref()),
            Lookup::Ambiguous => None,
        }
    }
}

/// Whether the wire name `name` ends, at a label boundary, with `zone`.
fn in_zone(name: &[u8], zone: &[u8]) -> bool {
    let Some(start) = name.len().checked_sub(zone.len()) else {
        return false;
    };
    // Walk the length octets up to where the zone would start: the suffix
    // only counts if a label begins there. Bounded: each turn moves past
    // one label of a name `query` checked.
    let mut at = 0;
    while at < start {
        at += 1 + usize::from(name[at]);
    }
    at == start && name[start..] == *zone
}

/// Every name that exists in the zone of `index`: the apex, the empty
/// non-terminals and the names of every service (`names.rs`), headless
/// services' named endpoints included.
fn existing_names(index: &ZoneIndex) -> Vec<Name> {
    let zone = index.zone();
    let mut names = vec![zone.clone()];
    let mut owned = Vec::new();
    let mut push = |labels: &[&[u8]], base: &Name| match prepend(labels, base) {
        Some(name) => names.push(name),
        // Too long to be asked for: a query for it cannot be sent.
        None => debug!(%base, "a name of the zone is too long for DNS; not pre-encoded"),
    };
    push(&[b"svc"], zone);
    for (ns, services) in index.namespaces() {
        if !services.is_empty() {
            push(&[ns.as_bytes(), b"svc"], zone);
        }
        for service in services.values() {
            owned.extend(service_names(service));
        }
    }
    names.extend(owned);
    names
}

/// The names one service owns, all below its own name: the service, its
/// clusters (pinned VIPs, or empty non-terminals over named endpoints),
/// its named endpoints, `_tcp` and its SRV names. A name too long for DNS
/// is left out (a query for it cannot be sent).
fn service_names(service: &ServiceEntry) -> Vec<Name> {
    let fqdn = &service.fqdn;
    let mut names = vec![fqdn.clone()];
    let mut push = |labels: &[&[u8]]| match prepend(labels, fqdn) {
        Some(name) => names.push(name),
        None => debug!(%fqdn, "a name of the zone is too long for DNS; not pre-encoded"),
    };
    for cluster in service.pinned.keys() {
        push(&[cluster.as_bytes()]);
    }
    // A cluster with named endpoints but no pinned VIP is an empty
    // non-terminal: it exists too.
    for (cluster, hosts) in &service.endpoints {
        if !service.pinned.contains_key(cluster) {
            push(&[cluster.as_bytes()]);
        }
        for host in hosts.keys() {
            push(&[host.as_bytes(), cluster.as_bytes()]);
        }
    }
    if !service.ports.is_empty() {
        push(&[b"_tcp"]);
    }
    for port in service.ports.keys() {
        let label = format!("_{port}");
        push(&[label.as_bytes(), b"_tcp"]);
    }
    names
}

/// `labels` (raw bytes, as a query carries them) prepended to `base`.
fn prepend(labels: &[&[u8]], base: &Name) -> Option<Name> {
    let mut bytes = Vec::new();
    for label in labels {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        bytes.push(len);
        bytes.extend_from_slice(label);
    }
    bytes.extend_from_slice(&wire(base));
    if bytes.len() > MAX_NAME {
        return None;
    }
    Name::from_bytes(&bytes).ok()
}

/// The body of a positive answer to `qtype`. A SOA answer carries the apex
/// NS in the authority section, as hickory's catalog adds it.
fn positive(index: &ZoneIndex, qtype: RecordType, answers: &[Record], extra: &[Record]) -> Body {
    let mut bytes = Vec::new();
    for rr in answers {
        bytes.extend_from_slice(&record(rr, Owner::Question));
    }
    let authorities = if qtype == RecordType::SOA {
        let ns = index.ns_record(index.zone().clone());
        bytes.extend_from_slice(&record(&ns, Owner::Written));
        1
    } else {
        0
    };
    for rr in extra {
        bytes.extend_from_slice(&record(rr, Owner::Written));
    }
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    Body {
        rcode: 0,
        counts: [count(answers.len()), authorities, count(extra.len())],
        bytes: bytes.into(),
    }
}

/// Where a record's owner name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A pointer to the question's name (offset 12, RFC 1035 §4.1.4): the
    /// owner in the client's case.
    Question,
    /// The owner written out.
    Written,
}

/// `rr` on the wire, its owner as `owner` says. Names in the data are never
/// compressed.
fn record(rr: &Record, owner: Owner) -> Vec<u8> {
    let mut out = match owner {
        Owner::Question => vec![0xc0, 12],
        Owner::Written => wire(&rr.name),
    };
    let mut data = Vec::new();
    let mut encoder = BinEncoder::new(&mut data);
    // Canonical form: no compression (the body moves with the question
    // length), lowercase names (the zone's names are lowercase already).
    encoder.set_canonical_form(true);
    rr.data
        .emit(&mut encoder)
        .expect("A, NS, SOA and SRV data of names of at most 255 octets fit in 64 KiB");
    out.extend_from_slice(&u16::from(rr.record_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(rr.dns_class).to_be_bytes());
    out.extend_from_slice(&rr.ttl.to_be_bytes());
    let len = u16::try_from(data.len()).expect("record data of at most 64 KiB, as above");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data);
    out
}

/// `name` on the wire, uncompressed, in its own case.
fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        let len = u8::try_from(label.len()).expect("a label of a Name is at most 63 octets");
        out.push(len);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests;
