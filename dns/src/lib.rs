//! The DNS server for the federation zone (`clusterset.local` by default),
//! run inside the control plane (`fedctl run`).
//!
//! It owns the DNS names of global services (DESIGN.md, DNS): the VIP of
//! `<svc>.<ns>.svc.<zone>`, the pinned VIPs of
//! `<cluster>.<svc>.<ns>.svc.<zone>`, SRV records for named ports, and the
//! negative answers around them. Names outside the zone are forwarded to
//! `dns.upstreams`, or refused when there are none.
//!
//! Data flow: the control plane's table owner converts the global service
//! table into a [`ZoneSnapshot`] and publishes it on a
//! `tokio::sync::watch` channel. [`DnsServer::start`] binds one UDP socket
//! per core and a TCP listener (`server`).
//!
//! - The fast path (`fast`): a task indexes each snapshot (`snapshot`) and
//!   encodes every response of the zone once, off the query path. The UDP
//!   workers (`udp`) answer the common query (one question, class IN, in
//!   the zone, plain EDNS) from that table by copying bytes.
//! - Everything else — TCP, forwarding, unusual EDNS, errors, transfers,
//!   names outside the zone — goes to the `router`, which opens a tracing
//!   span and picks the hickory `Catalog` for the zone the latest snapshot
//!   names: the federation zone's `handler`, and hickory's forwarder at the
//!   root. The handler reads the latest snapshot, classifies the name
//!   (`names`, pure) and builds the answer (`answer`, pure). hickory encodes
//!   the response, sets AA, adds the SOA to negative answers and truncates
//!   UDP answers that do not fit (TC).
//!
//! Both paths build their records with `answer::answer`, and a
//! differential test (`fast/tests.rs`) checks that they agree message for
//! message.
//!
//! Every response sent is counted by response code (`counters`), read by
//! the control plane's `/metrics` through [`DnsServer::query_counters`].
//!
//! Start reading at `answer.rs`: it is the whole zone in one match, with
//! the rules and their RFCs. `router.rs` shows how it is wired into
//! hickory; `fast.rs` how the answers are pre-encoded.

mod answer;
mod counters;
mod error;
mod fast;
mod handler;
mod names;
pub mod offline;
mod question;
mod router;
mod server;
mod snapshot;
mod tcp_guard;
mod udp;

pub use counters::{QueryCounters, RCODES};
pub use error::DnsError;
pub use server::{DnsConfig, DnsServer};
pub use snapshot::{
    ClusterRecord, EndpointRecord, PortRecord, ServiceRecord, ServiceRecords, ZoneSnapshot,
    service_records,
};
