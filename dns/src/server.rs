//! Binding the sockets, starting the UDP workers (`udp`), the TCP server
//! (`tcp_guard`: bounded under unauthenticated load), and the task that pre-encodes each snapshot
//! (`fast::publish`), all around one [`ZoneRouter`]; and stopping them.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::counters::QueryCounters;
use crate::error::DnsError;
use crate::fast::publish::{self, FastReader};
use crate::router::ZoneRouter;
use crate::snapshot::ZoneSnapshot;
use crate::{tcp_guard, udp};

/// Where the DNS server listens and where it forwards names outside the
/// zone (`dns` in the cluster config).
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP address; port 0 picks a free port, the same for both.
    pub listen: SocketAddr,
    /// Resolvers for names outside the zone; none means REFUSED for them.
    pub upstreams: Vec<SocketAddr>,
}

/// Tries to find a port free for both UDP and TCP when `listen` has port 0.
const BIND_ATTEMPTS: usize = 8;

/// A running server; dropping it or calling [`DnsServer::shutdown`] stops it.
pub struct DnsServer {
    local_addr: SocketAddr,
    /// The UDP worker threads; dropping one stops it.
    workers: Vec<udp::Worker>,
    /// The encoding task and the TCP server; dropping the set aborts them.
    tasks: JoinSet<()>,
    /// Responses sent, by rcode: a shard per UDP worker, the last for TCP.
    counts: Arc<QueryCounters>,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen` and starts answering from
    /// `snapshots`. With port 0, UDP gets a free port and TCP binds the same
    /// one, retrying with another port a few times if TCP finds it taken.
    ///
    /// Every query reads the latest snapshot, zone included, so answers
    /// change as soon as one is published. Until a snapshot names a valid
    /// zone (e.g. while the channel still holds `ZoneSnapshot::default()`),
    /// only names outside any zone are answered: forwarded, or REFUSED.
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`DnsError::Forwarder`] when the upstream resolver cannot be built;
    /// [`DnsError::Bind`] when a socket cannot be bound.
    pub async fn start(
        config: DnsConfig,
        snapshots: watch::Receiver<Arc<ZoneSnapshot>>,
    ) -> Result<DnsServer, DnsError> {
        let router = Arc::new(ZoneRouter::new(snapshots.clone(), &config.upstreams)?);
        let workers = udp::workers();
        let (udp, tcp, local_addr) = bind(config.listen, workers).await?;
        let mut tasks = JoinSet::new();
        let tables = publish::spawn(snapshots.clone(), &mut tasks);
        let runtime = Handle::current();
        let counts = QueryCounters::new(udp.len() + 1);
        let tcp_shard = udp.len();
        let mut threads = Vec::with_capacity(udp.len());
        for (shard, socket) in udp.into_iter().enumerate() {
            let reader = FastReader::new(snapshots.clone(), tables.clone());
            let counting = (Arc::clone(&counts), shard);
            let worker = udp::Worker::spawn(
                socket,
                reader,
                Arc::clone(&router),
                runtime.clone(),
                counting,
            )
            .map_err(|source| DnsError::Bind {
                proto: "udp",
                addr: local_addr,
                source,
            })?;
            threads.push(worker);
        }
        tasks.spawn(tcp_guard::serve(
            tcp,
            router,
            (Arc::clone(&counts), tcp_shard),
        ));
        info!(
            listen = %local_addr,
            upstreams = ?config.upstreams,
            udp_workers = workers,
            "DNS server listening"
        );
        Ok(DnsServer {
            local_addr,
            workers: threads,
            tasks,
            counts,
        })
    }

    /// The bound address (the same port for UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Responses sent so far, by response code (UDP and TCP), for metrics.
    pub fn query_counters(&self) -> Arc<QueryCounters> {
        Arc::clone(&self.counts)
    }

    /// Stops accepting queries and waits for the socket tasks to end.
    pub async fn shutdown(mut self) {
        for worker in self.workers.drain(..) {
            worker.stop().await;
        }
        self.tasks.shutdown().await;
        info!(listen = %self.local_addr, "DNS server stopped");
    }
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Binds `workers` UDP sockets on `listen`, then TCP on their address.
async fn bind(
    listen: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), DnsError> {
    let udp_error = |source| DnsError::Bind {
        proto: "udp",
        addr: listen,
        source,
    };
    let mut attempt = 1;
    loop {
        let (udp, addr) = udp::bind(listen, workers).map_err(udp_error)?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            // The OS picked a UDP port whose TCP twin is taken: drop the UDP
            // sockets and let it pick another.
            Err(error)
                if listen.port() == 0
                    && error.kind() == io::ErrorKind::AddrInUse
                    && attempt < BIND_ATTEMPTS =>
            {
                debug!(%addr, attempt, "TCP port taken; binding another UDP port");
                attempt += 1;
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    proto: "tcp",
                    addr,
                    source,
                });
            }
        }
    }
}
