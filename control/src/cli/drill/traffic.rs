//! The drill's traffic: new TCP connections to the VIP at a fixed rate,
//! each one judged on its own.
//!
//! A connection **succeeds** when it connects, its line ([`LINE`]) is
//! written, and at least one byte comes back within
//! [`REPLY_TIMEOUT`] (a greeting, an answer, or an error page: the drill
//! tests the path, not the backend). It **fails** when it is refused,
//! reset, times out, or is closed with no byte. Connections run
//! concurrently, at most [`MAX_IN_FLIGHT`] at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// What each connection writes: a line, then an empty line, so that a
/// server that speaks first (a greeting), an echo server and an HTTP/1
/// server (which answers an unknown request line, often with a 400) all
/// send something back.
pub(super) const LINE: &[u8] = b"fedmesh drill\r\n\r\n";

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the first answer byte may take after the line is written.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections open at once; the sender waits when it is reached.
const MAX_IN_FLIGHT: u32 = 512;
/// How many failure reasons are kept for the report.
const KEPT_ERRORS: usize = 5;

/// What the traffic did so far; shared with the progress line.
#[derive(Debug, Default)]
pub(super) struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    /// Connections started.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Connections that failed.
    pub(super) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The first few failure reasons.
    pub(super) fn errors(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.lock();
        if errors.len() < KEPT_ERRORS {
            errors.push(why);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A list of strings: a poisoned lock is still consistent.
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens `rate` connections a second to `target` until `until`, then waits
/// (at most [`CONNECT_TIMEOUT`] + [`REPLY_TIMEOUT`]) for the last ones.
pub(super) async fn send(target: SocketAddr, rate: u32, until: Instant, tally: Arc<Tally>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Bounded by `until`: one connection per tick.
    while Instant::now() < until {
        tick.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let tally = tally.clone();
        tokio::spawn(async move {
            if let Err(why) = one(target).await {
                tally.fail(why);
            }
            drop(slot);
        });
    }
    let last = slots.acquire_many(MAX_IN_FLIGHT);
    let _ = tokio::time::timeout(CONNECT_TIMEOUT + REPLY_TIMEOUT, last).await;
}

/// One connection; `Err` says what failed.
pub(super) async fn one(target: SocketAddr) -> Result<(), String> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target))
        .await
        .map_err(|_| format!("connect to {target} timed out"))?
        .map_err(|e| format!("connect to {target}: {e}"))?;
    conn.write_all(LINE)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(REPLY_TIMEOUT, conn.read(&mut byte)).await {
        Err(_) => Err(format!("no answer within {}s", REPLY_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Ok(Ok(0)) => Err("closed without an answer".into()),
        Ok(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_is_a_success_and_a_silent_close_or_refusal_a_failure() {
        let answering = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = answering.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = answering.accept().await {
                let _ = c.write_all(b"hi\n").await;
            }
        });
        assert_eq!(one(addr).await, Ok(()));

        let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = closing.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((c, _)) = closing.accept().await {
                drop(c);
            }
        });
        let why = one(closed).await.unwrap_err();
        assert!(why.contains("closed") || why.contains("read"), "{why}");

        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = gone.local_addr().unwrap();
        drop(gone);
        let why = one(refused).await.unwrap_err();
        assert!(why.starts_with("connect to"), "{why}");
    }

    #[tokio::test]
    async fn traffic_is_sent_at_the_rate_and_failures_are_counted() {
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = gone.local_addr().unwrap();
        drop(gone);
        let tally = Arc::new(Tally::default());
        let until = Instant::now() + Duration::from_millis(500);
        send(refused, 40, until, tally.clone()).await;
        // One connection per 25 ms tick at most (the first tick is at once).
        assert!((1..=22).contains(&tally.sent()), "{}", tally.sent());
        assert_eq!(tally.failed(), tally.sent());
        assert_eq!(tally.errors().len(), KEPT_ERRORS);
    }
}
