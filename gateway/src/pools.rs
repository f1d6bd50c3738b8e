//! The pools of pooled connections to peer gateways, one per peer gateway
//! address ([`crate::transport::PeerPool`]), shared by egress (streams)
//! and the prober (PINGs). A pool is made on first use with TLS for its
//! cluster (ALPN `h2`; a renewed certificate is used by its next
//! connection) and closed (GOAWAY) once no import names its gateway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::ServerName;

use crate::metrics::{Metrics, PoolCounts};
use crate::tls::GatewayTls;
use crate::transport::{PeerPool, PoolConfig, PoolStats, TransportError};

/// The name peer gateways are dialed as: their identity is checked by
/// SPIFFE ID (DESIGN.md, Identity and trust), not by this name, and the
/// ingress routes by `:authority`, not by SNI.
const SERVER_NAME: &str = "gateway.fedmesh";

/// Streams one pooled connection carries; a peer ingress announces as
/// many (SETTINGS_MAX_CONCURRENT_STREAMS, [`crate::transport::ServerConfig`]).
pub const STREAMS_PER_CONNECTION: usize = 1000;

/// Connections a pool may open whatever the stream count, so that a few
/// busy streams spread over more than one connection (and TLS task).
const MIN_CONNECTIONS: usize = 4;

/// The longest wait between dials of a peer gateway that failed.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Every peer gateway's pool.
#[derive(Debug)]
pub struct Pools {
    tls: GatewayTls,
    config: PoolConfig,
    pools: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    cluster: String,
    pool: Arc<PeerPool>,
}

impl Pools {
    /// No pool yet; `tls` must offer ALPN `h2`; connections are dialed
    /// within `connect_timeout`; a peer gateway carries up to
    /// `max_per_target` client connections (`gateway.maxConnectionsPerTarget`).
    pub fn new(tls: GatewayTls, connect_timeout: Duration, max_per_target: u32) -> Self {
        let wanted = usize::try_from(max_per_target).unwrap_or(usize::MAX);
        let config = PoolConfig {
            connect_timeout,
            // Enough connections for maxConnectionsPerTarget streams, each
            // within what a peer ingress allows on one connection.
            max_streams_per_connection: STREAMS_PER_CONNECTION,
            max_connections: wanted.div_ceil(STREAMS_PER_CONNECTION).max(MIN_CONNECTIONS),
            // A peer gateway that comes back is dialed again within this,
            // so failback is not held up by a long backoff; meanwhile
            // opens fail at once and egress moves on.
            backoff_max: BACKOFF_MAX,
            ..PoolConfig::default()
        };
        Self {
            tls,
            config,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool of `cluster`'s gateway at `addr`, made on first use.
    pub fn get(&self, cluster: &str, addr: &str) -> Arc<PeerPool> {
        let mut pools = self.lock();
        if let Some(e) = pools.get(addr).filter(|e| e.cluster == cluster) {
            return e.pool.clone();
        }
        let tls = self.tls.clone();
        let for_cluster = cluster.to_string();
        let source: crate::transport::TlsSource = Arc::new(move || {
            tls.client(&for_cluster)
                .map_err(|e| TransportError::TlsConfig {
                    source: Box::new(e),
                })
        });
        let name = ServerName::try_from(SERVER_NAME).expect("a fixed, valid DNS name");
        let pool = PeerPool::new(addr.to_string(), name, source, self.config.clone());
        if let Some(old) = pools.insert(
            addr.to_string(),
            Entry {
                cluster: cluster.to_string(),
                pool: pool.clone(),
            },
        ) {
            // The address now belongs to another cluster: the old one's
            // connections must not carry its streams.
            old.pool.close();
        }
        pool
    }

    /// Closes the pools of gateways not in `keep`.
    pub fn retain(&self, keep: &HashSet<String>) {
        self.lock().retain(|addr, e| {
            let kept = keep.contains(addr);
            if !kept {
                e.pool.close();
            }
            kept
        });
    }

    /// Every pool's counters, by cluster and gateway address.
    pub fn stats(&self) -> Vec<(String, String, PoolStats)> {
        self.lock()
            .iter()
            .map(|(addr, e)| (e.cluster.clone(), addr.clone(), e.pool.stats()))
            .collect()
    }

    /// Reports every pool's counters to `metrics` every `every`, forever
    /// (counters by difference, so they only ever go up).
    pub async fn report(self: Arc<Self>, metrics: Arc<Metrics>, every: Duration) {
        let mut last: HashMap<String, PoolStats> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let mut by_cluster: BTreeMap<String, (PoolCounts, usize, usize)> = BTreeMap::new();
            let stats = self.stats();
            for (cluster, addr, now) in &stats {
                let before = last.get(addr).copied().unwrap_or_default();
                let entry = by_cluster.entry(cluster.clone()).or_default();
                entry.0.connects += now.tcp_connects.saturating_sub(before.tcp_connects);
                entry.0.full += now.tls_full.saturating_sub(before.tls_full);
                entry.0.resumed += now.tls_resumed.saturating_sub(before.tls_resumed);
                entry.1 += now.live_connections;
                entry.2 += now.open_streams;
            }
            last = stats.into_iter().map(|(_, addr, s)| (addr, s)).collect();
            for (cluster, (counts, live, streams)) in by_cluster {
                metrics.peer_pool(&cluster, counts, live, streams);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A map of handles: a poisoned lock is still consistent.
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}
