//! The hickory [`ZoneHandler`] for the federation zone: reads the latest
//! published snapshot on every query and hands the question to
//! [`crate::answer`].
//!
//! A query clones the `Arc` of the current snapshot out of the watch channel
//! (no lock held across an await: the handler never awaits) and reuses the
//! index built for that snapshot, rebuilding it the first time a query sees
//! a new one. So an answer reflects a snapshot as soon as it is published,
//! and a snapshot is indexed at most once.

use std::sync::{Arc, Mutex, PoisonError};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RecordType, TSigResponseContext};
use hickory_server::server::{Request, RequestInfo};
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, LookupRecords,
    ZoneHandler, ZoneTransfer, ZoneType,
};
use tokio::sync::watch;
use tracing::debug;

use crate::answer::{Answer, answer};
use crate::snapshot::{ZoneIndex, ZoneSnapshot};

/// Authoritative handler for one zone, answering from the snapshots
/// published on a watch channel.
pub(crate) struct SnapshotZoneHandler {
    origin: LowerName,
    zone: Name,
    snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    index: Mutex<Arc<ZoneIndex>>,
}

impl SnapshotZoneHandler {
    /// A handler for `zone` (lowercase, fully qualified; see
    /// `snapshot::zone_name`) reading `snapshots`.
    pub(crate) fn new(zone: Name, snapshots: watch::Receiver<Arc<ZoneSnapshot>>) -> Self {
        let first = Arc::clone(&snapshots.borrow());
        let index = ZoneIndex::build(first, &zone);
        Self {
            origin: LowerName::new(&zone),
            zone,
            snapshots,
            index: Mutex::new(Arc::new(index)),
        }
    }

    /// The index of the latest published snapshot.
    fn current(&self) -> Arc<ZoneIndex> {
        // Clone the Arc and release the watch lock at once, so a publisher
        // never waits on a query.
        let latest = Arc::clone(&self.snapshots.borrow());
        // Indexing cannot panic while the lock is held (it only inserts into
        // maps), so a poisoned lock still guards a whole index.
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(index.snapshot(), &latest) {
            debug!(
                serial = latest.serial,
                services = latest.services.len(),
                "indexing new zone snapshot"
            );
            let started = std::time::Instant::now();
            // Per changed service when the snapshot follows the indexed one.
            let next = match ZoneIndex::update(&index, Arc::clone(&latest)) {
                Some((next, _)) => next,
                None => ZoneIndex::build(latest, &self.zone),
            };
            *index = Arc::new(next);
            debug!(
                index_us = started.elapsed().as_micros() as u64,
                "stage timing: dns_hickory"
            );
        }
        Arc::clone(&index)
    }

    /// Answers `qtype` for `name` (any case) from the latest snapshot.
    fn answer(&self, name: &Name, qtype: RecordType) -> LookupControlFlow<AuthLookup> {
        let result = match answer(&self.current(), name, qtype) {
            Answer::Records {
                answers,
                additionals,
            } => Ok(AuthLookup::answers(
                LookupRecords::Section(answers),
                (!additionals.is_empty()).then_some(LookupRecords::Section(additionals)),
            )),
            // The Catalog turns both into a response with the zone's SOA in
            // the authority section (RFC 2308 §2.1, §2.2) and AA set.
            Answer::NoData => Err(LookupError::NameExists),
            Answer::NxDomain => Err(LookupError::from(ResponseCode::NXDomain)),
            // Not ours: let the next handler in a chain (the forwarder) answer.
            Answer::OutOfZone => return LookupControlFlow::Skip,
        };
        LookupControlFlow::Continue(result)
    }
}

#[async_trait::async_trait]
impl ZoneHandler for SnapshotZoneHandler {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    /// Zone transfers are refused: the zone lives only in this process.
    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::Deny
    }

    fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// Used by the Catalog for the apex SOA of negative answers and the
    /// apex NS of SOA answers.
    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        _request_info: Option<&RequestInfo<'_>>,
        _lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.answer(name, rtype)
    }

    /// Answers a client's question, owning the records by the name as the
    /// client spelled it.
    async fn search(
        &self,
        request: &Request,
        _lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        let info = match request.request_info() {
            Ok(info) => info,
            // Not exactly one question: the Catalog already answers FORMERR
            // before asking a handler, so this is only defensive.
            Err(error) => return (LookupControlFlow::Break(Err(error)), None),
        };
        let query = info.query.original();
        // The zone exists in class IN only (RFC 1035 §3.2.4); other classes
        // are not ours to answer.
        if query.query_class() != DNSClass::IN {
            let refused = LookupError::from(ResponseCode::Refused);
            return (LookupControlFlow::Break(Err(refused)), None);
        }
        // RFC 1995 §2 has IXFR fall back to AXFR, which is refused (RFC
        // 5936 §2.2.1): refuse IXFR the same way rather than answer NODATA.
        if query.query_type() == RecordType::IXFR {
            let refused = LookupError::from(ResponseCode::Refused);
            return (LookupControlFlow::Break(Err(refused)), None);
        }
        (self.answer(query.name(), query.query_type()), None)
    }

    async fn nsec_records(
        &self,
        _name: &LowerName,
        _lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        // The zone is not signed; hickory only asks for NSEC records with
        // DNSSEC enabled, which this build never is (deps.md §5.7).
        LookupControlFlow::Continue(Err(LookupError::from(ResponseCode::NotImp)))
    }

    async fn zone_transfer(
        &self,
        _request: &Request,
        _lookup_options: LookupOptions,
        _now: u64,
    ) -> Option<(
        Result<ZoneTransfer, LookupError>,
        Option<TSigResponseContext>,
    )> {
        // RFC 5936 §2.2.1: a server that does not allow the transfer answers
        // REFUSED.
        Some((Err(LookupError::from(ResponseCode::Refused)), None))
    }
}
