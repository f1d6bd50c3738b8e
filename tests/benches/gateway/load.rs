//! Open-loop load at a fixed request rate (wrk2's model): request `i` is
//! due at `t0 + i / rate` whatever happened to the ones before it, and its
//! latency is counted from when it was due, not from when a worker got to
//! send it, so a stall shows up in the percentiles instead of hiding in a
//! lower request rate (coordinated omission). Only the timer's own
//! lateness (tokio's timer wakes up to 1 ms late) is not counted: a request
//! sent less than [`TIMER_SLACK`] after it was due counts from its send.
//!
//! Keep-alive load runs on a fixed set of connections (a request waits for
//! a free one, as with wrk2); new-connection load starts every request in
//! its own task at its due time, so requests stuck in a failing path never
//! hold back the ones after them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::http::{self, Failure};

/// How late the timer may wake a request without it counting as queued.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// How requests use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Each worker keeps one connection open (reopened after a failure).
    KeepAlive,
    /// Every request on a new connection (`Connection: close`).
    NewConnection,
}

/// One run of fixed-rate load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Where requests go.
    pub(crate) addr: SocketAddr,
    /// Requests per second.
    pub(crate) rate: u32,
    /// How many requests in all.
    pub(crate) total: u64,
    /// Connections in keep-alive mode.
    pub(crate) connections: usize,
    /// How requests use connections.
    pub(crate) mode: Mode,
    /// A request not answered this long after it was sent failed.
    pub(crate) timeout: Duration,
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When it was due, since the run's start.
    pub(crate) due: Duration,
    /// When it was sent.
    pub(crate) sent: Duration,
    /// When it finished, since the run's start.
    pub(crate) done: Duration,
    /// The backend that answered, or why it failed.
    pub(crate) result: Result<Arc<str>, Failure>,
}

impl Sample {
    /// Latency from when the request was due (from when it was sent when
    /// that was only the timer's lateness).
    pub(crate) fn latency(&self) -> Duration {
        let start = if self.sent <= self.due + TIMER_SLACK {
            self.sent
        } else {
            self.due
        };
        self.done.saturating_sub(start)
    }
}

/// Runs `plan` from `t0`; every sample, in no particular order. Bounded:
/// `plan.total` requests, each at most `plan.timeout` after it was sent.
pub(crate) async fn run(plan: Plan, t0: Instant) -> Vec<Sample> {
    let interval = 1.0 / f64::from(plan.rate.max(1));
    let due = move |i: u64| Duration::from_secs_f64(i as f64 * interval);
    let mut tasks = tokio::task::JoinSet::new();
    match plan.mode {
        Mode::KeepAlive => {
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..plan.connections.max(1) {
                let next = next.clone();
                tasks.spawn(async move {
                    let mut samples = Vec::new();
                    let mut conn: Option<TcpStream> = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= plan.total {
                            return samples;
                        }
                        tokio::time::sleep_until(t0 + due(i)).await;
                        let sent = t0.elapsed();
                        let result = keep_alive(&plan, &mut conn).await;
                        samples.push(Sample {
                            due: due(i),
                            sent,
                            done: t0.elapsed(),
                            result,
                        });
                    }
                });
            }
        }
        Mode::NewConnection => {
            for i in 0..plan.total {
                tokio::time::sleep_until(t0 + due(i)).await;
                tasks.spawn(async move {
                    let sent = t0.elapsed();
                    let result = new_connection(&plan).await;
                    vec![Sample {
                        due: due(i),
                        sent,
                        done: t0.elapsed(),
                        result,
                    }]
                });
            }
        }
    }
    let mut all = Vec::with_capacity(usize::try_from(plan.total).unwrap_or(0));
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("load worker"));
    }
    all
}

async fn keep_alive(plan: &Plan, conn: &mut Option<TcpStream>) -> Result<Arc<str>, Failure> {
    let deadline = Instant::now() + plan.timeout;
    if conn.is_none() {
        *conn = Some(connect(plan.addr, deadline).await?);
    }
    let stream = conn.as_mut().expect("connected just above");
    let result = tokio::time::timeout_at(deadline, http::get(stream, false))
        .await
        .unwrap_or(Err(Failure::Timeout));
    if result.is_err() {
        *conn = None;
    }
    result
}

async fn new_connection(plan: &Plan) -> Result<Arc<str>, Failure> {
    let deadline = Instant::now() + plan.timeout;
    let mut stream = connect(plan.addr, deadline).await?;
    tokio::time::timeout_at(deadline, http::get(&mut stream, true))
        .await
        .unwrap_or(Err(Failure::Timeout))
}

async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Failure> {
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|_| Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens `n` connections to `addr`, at most `concurrency` at once, each
/// carrying one `GET /` (so the whole path is set up), and returns those
/// that opened, still open, with the first failure if any. Bounded by
/// `deadline`.
pub(crate) async fn open_idle(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    deadline: Instant,
) -> (Vec<TcpStream>, Option<Failure>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let mut stream = connect(addr, deadline).await?;
            tokio::time::timeout_at(deadline, http::get(&mut stream, false))
                .await
                .unwrap_or(Err(Failure::Timeout))?;
            Ok::<_, Failure>(stream)
        });
    }
    let mut open = Vec::with_capacity(n);
    let mut failed = None;
    while let Some(done) = tasks.join_next().await {
        match done.expect("idle connection task") {
            Ok(s) => open.push(s),
            Err(f) => failed = failed.or(Some(f)),
        }
    }
    (open, failed)
}
