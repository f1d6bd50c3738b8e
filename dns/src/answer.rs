//! What the zone says about a (name, type): a pure function of the indexed
//! snapshot, turned into DNS messages by [`crate::handler`].
//!
//! Negative answers carry no records here: hickory's `Catalog` adds the SOA
//! to the authority section of every NXDOMAIN and NODATA response of an
//! authoritative zone (RFC 2308 §3), by looking up the apex SOA through the
//! same function.

use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::names::{self, ZoneName};
use crate::snapshot::{ServiceEntry, ZoneIndex};

/// The zone's answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// NOERROR with records in the answer section, and possibly records for
    /// the additional section (RFC 2782: the A record of an SRV target).
    Records {
        /// Answer section.
        answers: Vec<Record>,
        /// Additional section.
        additionals: Vec<Record>,
    },
    /// NOERROR, no answers: the name exists but has no record of that type
    /// (RFC 2308 §2.2; empty non-terminals too, RFC 8020 §2).
    NoData,
    /// The name does not exist (RFC 2308 §2.1).
    NxDomain,
    /// The name is not in the zone; someone else must answer it.
    OutOfZone,
}

/// Answers `qtype` for `qname` from `index`.
///
/// `qname` may be in any case (RFC 4343); the records are owned by `qname`
/// exactly as asked, so the answer matches the question byte for byte.
/// Every record has the snapshot TTL.
pub(crate) fn answer(index: &ZoneIndex, qname: &Name, qtype: RecordType) -> Answer {
    let lower = qname.to_lowercase();
    match names::parse(&lower, index.zone()) {
        ZoneName::OutOfZone => Answer::OutOfZone,
        ZoneName::Unknown => Answer::NxDomain,
        ZoneName::Apex => apex(index, qname, qtype),
        // The parent of every service name, present even when the zone has
        // no services yet (DESIGN.md, DNS).
        ZoneName::SvcEnt => Answer::NoData,
        ZoneName::NamespaceEnt { ns } if index.has_namespace(ns) => Answer::NoData,
        ZoneName::NamespaceEnt { .. } => Answer::NxDomain,
        ZoneName::Service { ns, svc } => match index.service(ns, svc) {
            Some(service) => address(index, qname, qtype, service.vip),
            None => Answer::NxDomain,
        },
        ZoneName::Pinned { cluster, ns, svc } => match index.service(ns, svc) {
            Some(s) => match s.pinned.get(cluster) {
                Some(vip) => address(index, qname, qtype, *vip),
                // Named endpoints below, no pinned VIP (range full): an
                // empty non-terminal (RFC 8020 §2).
                None if s.endpoints.contains_key(cluster) => Answer::NoData,
                None => Answer::NxDomain,
            },
            None => Answer::NxDomain,
        },
        ZoneName::Endpoint {
            hostname,
            cluster,
            ns,
            svc,
        } => {
            let endpoint = index
                .service(ns, svc)
                .and_then(|s| s.endpoints.get(cluster)?.get(hostname));
            match endpoint {
                Some(vip) => address(index, qname, qtype, *vip),
                None => Answer::NxDomain,
            }
        }
        ZoneName::TcpEnt { ns, svc } => match index.service(ns, svc) {
            Some(service) if !service.ports.is_empty() => Answer::NoData,
            _ => Answer::NxDomain,
        },
        ZoneName::Srv { port, ns, svc } => {
            let service = index.service(ns, svc);
            match service.and_then(|s| Some((s, s.ports.get(port)?))) {
                Some((service, targets)) => srv(index, qname, qtype, service, targets),
                None => Answer::NxDomain,
            }
        }
    }
}

/// The apex holds the SOA and one NS record (RFC 1034 §4.2.1). The NS
/// target `ns.<zone>` has no address record: the zone is never delegated,
/// and clients reach this server at `dns.listen`.
fn apex(index: &ZoneIndex, owner: &Name, qtype: RecordType) -> Answer {
    let answers = match qtype {
        RecordType::SOA => vec![index.soa_record(owner.clone())],
        RecordType::NS => vec![index.ns_record(owner.clone())],
        // RFC 8482 §4.1 lets ANY return a subset; the apex is small, so
        // return all of it.
        RecordType::ANY => vec![
            index.soa_record(owner.clone()),
            index.ns_record(owner.clone()),
        ],
        _ => return Answer::NoData,
    };
    records(answers, vec![])
}

/// A name with one A record. AAAA and every other type are NODATA: VIPs
/// are IPv4 in wave 1 (DESIGN.md, DNS).
fn address(index: &ZoneIndex, owner: &Name, qtype: RecordType, vip: Ipv4Addr) -> Answer {
    match qtype {
        RecordType::A | RecordType::ANY => records(vec![a_record(index, owner, vip)], vec![]),
        _ => Answer::NoData,
    }
}

/// The SRV RRset of one port name: `0 <weight> <port> <svc>.<ns>.svc.<zone>.`
/// per port (priority 0: every port is equally preferred), with the
/// target's A record as additional data (RFC 2782, "Target"). A headless
/// service's targets are its named endpoints instead, one record per
/// endpoint and port (MCS DNS spec: SRV of a headless service names
/// `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>`).
fn srv(
    index: &ZoneIndex,
    owner: &Name,
    qtype: RecordType,
    service: &ServiceEntry,
    targets: &[(u16, u16)],
) -> Answer {
    if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
        return Answer::NoData;
    }
    let hosts: Vec<(&Name, Ipv4Addr)> = if service.endpoint_names.is_empty() {
        vec![(&service.fqdn, service.vip)]
    } else {
        service
            .endpoint_names
            .iter()
            .map(|(n, v)| (n, *v))
            .collect()
    };
    let answers = hosts
        .iter()
        .flat_map(|&(host, _)| {
            targets.iter().map(move |&(port, weight)| {
                let srv = SRV::new(0, weight, port, host.clone());
                Record::from_rdata(owner.clone(), index.ttl(), RData::SRV(srv))
            })
        })
        .collect();
    let additionals = hosts
        .iter()
        .map(|&(host, vip)| a_record(index, host, vip))
        .collect();
    records(answers, additionals)
}

fn a_record(index: &ZoneIndex, owner: &Name, vip: Ipv4Addr) -> Record {
    Record::from_rdata(owner.clone(), index.ttl(), RData::A(A(vip)))
}

fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer::Records {
        answers,
        additionals,
    }
}

#[cfg(test)]
mod tests;
