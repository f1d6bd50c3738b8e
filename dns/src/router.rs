//! The request handler hickory's `Server` calls: one tracing span per query
//! (STYLE.md item 13), then the hickory `Catalog` for the zone of the
//! latest snapshot.
//!
//! The catalog holds two zones, and hickory routes each question to the
//! longest zone that contains its name (`Catalog::find`):
//!
//! - the federation zone → [`SnapshotZoneHandler`] (authoritative);
//! - the root `.` → hickory's `ForwardZoneHandler` to `dns.upstreams`, only
//!   when there are upstreams. Without it a name outside the zone finds no
//!   zone and hickory answers REFUSED (RFC 1035 §4.1.1: refused for policy
//!   reasons).
//!
//! This is the "zone handler chained before the forwarder" of STYLE.md item
//! 6, with the catalog doing the chaining: a literal chain (both handlers
//! under `.`) would make the zone handler's origin the root, and the
//! catalog looks up the SOA of negative answers at the handler's origin.
//!
//! A zone handler has one origin, so when a snapshot names another zone the
//! catalog is rebuilt (cheap: two map entries); until a snapshot names a
//! valid zone, only the forwarder answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{LowerName, Name, Record};
use hickory_server::proto::serialize::binary::BinDecoder;
use hickory_server::resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use hickory_server::zone_handler::{
    Catalog, MessageResponse, MessageResponseBuilder, Queries, ZoneHandler,
};
use tokio::sync::watch;
use tracing::{Instrument, debug, field, info, info_span, warn};

use crate::error::DnsError;
use crate::handler::SnapshotZoneHandler;
use crate::snapshot::{ZoneSnapshot, zone_name};

/// Routes each query to the catalog of the current zone.
pub(crate) struct ZoneRouter {
    snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    forwarder: Option<Arc<dyn ZoneHandler>>,
    current: Mutex<ZoneCatalog>,
}

/// The catalog built for one zone, as published.
struct ZoneCatalog {
    zone: String,
    catalog: Arc<Catalog>,
}

impl ZoneRouter {
    /// A router for `snapshots`, forwarding to `upstreams` if any.
    ///
    /// # Errors
    ///
    /// [`DnsError::Forwarder`] when hickory cannot build the forwarder.
    pub(crate) fn new(
        snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
        upstreams: &[SocketAddr],
    ) -> Result<Self, DnsError> {
        let forwarder = forwarder(upstreams)?;
        let zone = snapshots.borrow().zone.clone();
        let catalog = catalog(&zone, &snapshots, forwarder.as_ref());
        Ok(Self {
            snapshots,
            forwarder,
            current: Mutex::new(ZoneCatalog { zone, catalog }),
        })
    }

    /// The catalog for the zone of the latest snapshot.
    fn catalog(&self) -> Arc<Catalog> {
        let latest = Arc::clone(&self.snapshots.borrow());
        // Building a catalog cannot panic, so a poisoned lock still guards
        // a whole catalog.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.zone != latest.zone {
            let catalog = catalog(&latest.zone, &self.snapshots, self.forwarder.as_ref());
            *current = ZoneCatalog {
                zone: latest.zone.clone(),
                catalog,
            };
        }
        Arc::clone(&current.catalog)
    }
}

#[async_trait::async_trait]
impl RequestHandler for ZoneRouter {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let span = info_span!(
            "dns_query",
            id = request.metadata.id,
            src = %request.src(),
            proto = %request.protocol(),
            qname = field::Empty,
            qtype = field::Empty,
        );
        if let Some(query) = request.queries.queries().first() {
            span.record("qname", field::display(query.name()));
            span.record("qtype", field::display(query.query_type()));
        }
        if crate::question::points_into_header(request.queries.as_bytes()) {
            debug!(
                id = request.metadata.id,
                "question points into the header; answering FORMERR"
            );
            return formerr(request, response_handle).await;
        }
        let catalog = self.catalog();
        let response_handle = Compliant {
            inner: response_handle,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        };
        catalog
            .handle_request::<_, T>(request, response_handle)
            .instrument(span)
            .await
    }
}

/// FORMERR with an empty question section: the question as sent cannot
/// be echoed (see `question`).
pub(crate) async fn formerr<R: ResponseHandler>(
    request: &Request,
    mut response_handle: R,
) -> ResponseInfo {
    let none = Queries::read(&mut BinDecoder::new(&[]), 0)
        .expect("reading zero questions reads no bytes, so cannot fail");
    let response = MessageResponseBuilder::new(&none, None)
        .error_msg(&request.metadata, ResponseCode::FormErr);
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            debug!(%error, "DNS error response not sent");
            let mut metadata =
                Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::FormErr;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

/// Fixes hickory's responses where they break an RFC, on their way out:
///
/// - the OPT record echoes the query's DO bit (RFC 3225 §3: "the DO bit of
///   the query MUST be copied in the response"); hickory copies it only
///   when built with DNSSEC;
/// - REFUSED is not authoritative: hickory's catalog sets AA on every
///   answer of a zone handler, refusals included, but a server refusing a
///   question asserts no data (RFC 1035 §4.1.1, AA "specifies that the
///   responding name server is an authority for the domain name in
///   question").
#[derive(Clone)]
struct Compliant<R> {
    inner: R,
    dnssec_ok: bool,
}

#[async_trait::async_trait]
impl<R: ResponseHandler> ResponseHandler for Compliant<R> {
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
        let edns = response.edns().map(|edns| {
            let mut edns = edns.clone();
            edns.set_dnssec_ok(self.dnssec_ok);
            edns
        });
        // A shorter borrow of the question and OPT (the type is covariant),
        // so the OPT can be our copy.
        let mut response = response;
        if let Some(edns) = &edns {
            response.set_edns(edns);
        }
        if response.metadata().response_code == ResponseCode::Refused {
            response.metadata_mut().authoritative = false;
        }
        self.inner.send_response(response).await
    }
}

/// A catalog serving `zone` from `snapshots`, with the forwarder at the
/// root. An unusable zone is logged and left out: only the forwarder (or
/// REFUSED) answers until a snapshot names a valid zone.
fn catalog(
    zone: &str,
    snapshots: &watch::Receiver<Arc<ZoneSnapshot>>,
    forwarder: Option<&Arc<dyn ZoneHandler>>,
) -> Arc<Catalog> {
    let mut catalog = Catalog::new();
    match zone_name(zone) {
        Ok(name) => {
            info!(zone = %name, "serving DNS zone");
            let handler = SnapshotZoneHandler::new(name.clone(), snapshots.clone());
            catalog.upsert(LowerName::new(&name), vec![Arc::new(handler)]);
        }
        // The control plane may start the server before its first snapshot.
        Err(_) if zone.is_empty() => {
            info!("no DNS zone published yet; answering only names outside it");
        }
        Err(error) => warn!(
            zone,
            %error,
            "zone snapshot names no valid DNS zone (dns.zone); answering only names outside it"
        ),
    }
    if let Some(forwarder) = forwarder {
        catalog.upsert(LowerName::new(&Name::root()), vec![Arc::clone(forwarder)]);
    }
    Arc::new(catalog)
}

/// hickory's forwarder to `upstreams` over UDP (and TCP for truncated
/// answers), or `None` without upstreams.
fn forwarder(upstreams: &[SocketAddr]) -> Result<Option<Arc<dyn ZoneHandler>>, DnsError> {
    if upstreams.is_empty() {
        return Ok(None);
    }
    let name_servers = upstreams
        .iter()
        .map(|upstream| {
            let mut udp = ConnectionConfig::udp();
            udp.port = upstream.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = upstream.port();
            NameServerConfig::new(upstream.ip(), true, vec![udp, tcp])
        })
        .collect();
    let config = ForwardConfig {
        name_servers,
        options: Some(ResolverOpts::default()),
    };
    let forwarder = ForwardZoneHandler::builder_tokio(config)
        .build()
        .map_err(|reason| DnsError::Forwarder {
            upstreams: upstreams.to_vec(),
            reason,
        })?;
    Ok(Some(Arc::new(forwarder)))
}
