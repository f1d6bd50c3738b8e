//! HTTP-aware services: ports whose protocol is HTTP, h2c or gRPC
//! ([`fedmesh_proto::app_protocol::AppProtocol`]) are handled per request
//! instead of per connection (DESIGN.md, "Wave 2 contract → HTTP-aware
//! services").
//!
//! Data flow, client side first:
//!
//! 1. [`Dispatch`] sits in the egress stack after admission: a TCP port
//!    goes on to the byte path; an HTTP port's connection is sniffed
//!    ([`sniff`]): a first request that asks for `Upgrade` or `CONNECT`
//!    goes to the byte path too (for the whole connection), anything else
//!    is served by hyper, HTTP/1.1 or HTTP/2 with prior knowledge (told
//!    apart by the h2 preface, RFC 9113 §3.3).
//! 2. Each request goes down [`egress`]: its body is kept for a replay
//!    while it is small ([`body::RequestBody`], [`tee`]), its targets are
//!    chosen by the same selection as a connection's (locality, affinity,
//!    weights, spill-over), and it is tried on them in order: a local
//!    endpoint through the endpoint pool ([`endpoints`]), or a peer
//!    cluster's ingress as an ordinary HTTP/2 request stream over the
//!    pooled transport ([`remote`]) naming the service port in
//!    [`crate::wire::SERVICE_HEADER`]. Before the targets are chosen, the
//!    service's routes ([`policy`]) pick the rule: its backend (by weight),
//!    fault ([`fault`]), header filters, timeouts and retries within a
//!    budget ([`retry`]); gRPC statuses are counted on the way back
//!    ([`grpc`]).
//! 3. The peer's ingress authorizes the stream exactly as a CONNECT
//!    ([`crate::ingress`]) and hands it to [`ingress::forward`], which
//!    sends it to one of its endpoints over pooled endpoint connections
//!    (HTTP/1.1, or h2c for h2c and gRPC ports), or answers 503 with a
//!    `fedmesh-reason` when it has none.
//!    An idempotent request's response is held for a moment before the
//!    client sees it ([`settle`]), so that a reset right after the head
//!    still lets the request go to the next target.
//! 4. The response flows back the same way, streamed frame by frame with
//!    HTTP/2 flow control ([`body`]); trailers (gRPC status) included.
//!
//! Start reading at [`egress`].

mod attempts;
mod body;
mod deadline;
mod dispatch;
mod egress;
mod endpoints;
mod fault;
mod grpc;
mod headers;
mod ingress;
mod observed;
mod policy;
mod remote;
mod reply;
mod retry;
mod settle;
mod sniff;
mod tee;

pub use dispatch::Dispatch;
pub use endpoints::Endpoints;
pub(crate) use ingress::forward;
pub use retry::RetryBudgets;

use bytes::Bytes;

/// The error of a body on its way through a gateway.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body as gateways pass it on: boxed, so that every stage names one
/// type (STYLE.md §5).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// The most of a request body kept for a replay on the next target: a body
/// is sent again only while no more than this of it has gone.
pub const REPLAY_LIMIT: usize = 64 << 10;
