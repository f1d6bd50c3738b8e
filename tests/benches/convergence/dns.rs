//! The bench's DNS checker: UDP queries from one socket per cluster,
//! `WINDOW` in flight, to see when a cluster's DNS answers every name.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::{SAMPLE, WINDOW};

/// When a cluster answered all names: the send time of the query that got
/// the last one (`upper`), and the last time a query still missed one
/// (`lower`), both from the manifests' write.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Converged {
    pub(super) upper: Duration,
    pub(super) lower: Duration,
}

/// Polls every cluster's DNS until each answers all `names`.
pub(super) async fn converge(
    servers: &[(String, SocketAddr)],
    names: &[String],
    t0: Instant,
    timeout: Duration,
    started: Instant,
) -> Vec<Converged> {
    let names: Vec<Name> = names.iter().map(|n| fqdn(n)).collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, (cluster, addr)) in servers.iter().enumerate() {
        let (cluster, addr, names) = (cluster.clone(), *addr, names.clone());
        set.spawn(async move {
            (
                i,
                converge_one(&cluster, addr, names, t0, timeout, started).await,
            )
        });
    }
    let mut out = vec![Converged::default(); servers.len()];
    while let Some(done) = set.join_next().await {
        let (i, c) = done.expect("convergence task");
        out[i] = c;
    }
    out
}

async fn converge_one(
    cluster: &str,
    addr: SocketAddr,
    names: Vec<Name>,
    t0: Instant,
    timeout: Duration,
    started: Instant,
) -> Converged {
    let total = names.len();
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    socket.connect(addr).await.expect("connect");
    let mut missing = names;
    let mut lower = Duration::ZERO;
    let mut upper = Duration::ZERO;
    let mut last_progress = Instant::now();
    let mut id = u16::try_from(std::process::id() % 60_000).unwrap_or(1);
    while !missing.is_empty() {
        assert!(
            t0.elapsed() < timeout,
            "{cluster}: {} of {total} names still missing after {timeout:?}, e.g. {}",
            missing.len(),
            missing[0]
        );
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "[{:7.1}s] waiting for {total} names on {cluster}… {}/{total}",
                started.elapsed().as_secs_f64(),
                total - missing.len()
            );
        }
        // Probe a sample first; sweep all missing names only once some of
        // them answer, to keep the checker's load low while nothing moves.
        let sample: Vec<Name> = missing
            .iter()
            .step_by((missing.len() / SAMPLE).max(1))
            .cloned()
            .collect();
        let probe = query_many(&socket, &sample, &mut id, t0).await;
        let batch = if sample.len() < missing.len() && probe.iter().any(|r| r.answered) {
            query_many(&socket, &missing, &mut id, t0).await
        } else {
            probe.clone()
        };
        let full = batch.len() == missing.len();
        for r in &batch {
            if r.answered {
                upper = upper.max(r.sent);
            } else {
                lower = lower.max(r.sent);
            }
        }
        if full {
            let mut i = 0;
            missing.retain(|_| {
                i += 1;
                !batch[i - 1].answered
            });
        }
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "[{:7.1}s] {cluster} answers all {total} names ({:.2} s after the write)",
        started.elapsed().as_secs_f64(),
        upper.as_secs_f64()
    );
    Converged { upper, lower }
}

/// One query's outcome: answered with an A record, and when it was sent
/// (since `t0`).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    answered: bool,
    sent: Duration,
}

/// Sends A queries for `names` on `socket` with at most [`WINDOW`] in
/// flight; a query unanswered for 500 ms counts as missing.
async fn query_many(
    socket: &tokio::net::UdpSocket,
    names: &[Name],
    id: &mut u16,
    t0: Instant,
) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = vec![
        Outcome {
            answered: false,
            sent: Duration::ZERO,
        };
        names.len()
    ];
    let mut inflight: HashMap<u16, usize> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; 4096];
    loop {
        while inflight.len() < WINDOW && next < names.len() {
            *id = id.wrapping_add(1);
            let bytes = encode(*id, &names[next]);
            out[next].sent = t0.elapsed();
            if socket.send(&bytes).await.is_ok() {
                inflight.insert(*id, next);
            }
            next += 1;
        }
        if inflight.is_empty() {
            return out;
        }
        match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            Ok(Ok(len)) => {
                let Ok(reply) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Some(i) = inflight.remove(&reply.metadata.id) {
                    out[i].answered = is_answer(&reply, &names[i]);
                }
            }
            // Refused (server not there) or silent: give up on this window.
            Ok(Err(_)) | Err(_) => inflight.clear(),
        }
    }
}

/// `name` as a fully qualified name: the question in a reply is one, and
/// hickory's `Name` equality tells `a.b.` from `a.b`.
fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).expect("name");
    name.set_fqdn(true);
    name
}

fn encode(id: u16, name: &Name) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), RecordType::A));
    message.to_vec().expect("encode query")
}

fn is_answer(reply: &Message, name: &Name) -> bool {
    reply.metadata.response_code == ResponseCode::NoError
        && reply.queries.first().is_some_and(|q| q.name() == name)
        && reply.answers.iter().any(|r| matches!(r.data, RData::A(_)))
}

/// One blocking A query: does `server` answer `name` with an address?
pub(super) fn answers(server: SocketAddr, name: &str, timeout: Duration) -> bool {
    let name = fqdn(name);
    let Ok(socket) = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let id = u16::try_from(std::process::id() % 60_000).unwrap_or(7);
    if socket.set_read_timeout(Some(timeout)).is_err()
        || socket.send_to(&encode(id, &name), server).is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Ok(len) = socket.recv(&mut buf) else {
            return false;
        };
        if let Ok(reply) = Message::from_vec(&buf[..len])
            && reply.metadata.id == id
        {
            return is_answer(&reply, &name);
        }
    }
    false
}
