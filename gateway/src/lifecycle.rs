//! A gateway's lifecycle as its tasks see it: how many connections are
//! open (shutdown waits for them) and whether it is draining (listeners
//! stop accepting; pooled connections send GOAWAY).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The handle tasks hold: count connections, learn of the drain.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    open: Arc<AtomicUsize>,
    draining: watch::Receiver<bool>,
}

/// The handle the process holds: start the drain, wait for the open
/// connections.
#[derive(Debug)]
pub struct Drain {
    open: Arc<AtomicUsize>,
    start: watch::Sender<bool>,
}

/// Counts one open connection (ingress or egress) until dropped.
#[derive(Debug)]
pub struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A lifecycle not draining, with no connection open.
pub fn new() -> (Lifecycle, Drain) {
    let open = Arc::new(AtomicUsize::new(0));
    let (start, draining) = watch::channel(false);
    (
        Lifecycle {
            open: open.clone(),
            draining,
        },
        Drain { open, start },
    )
}

impl Lifecycle {
    /// Counts a connection as open until the guard drops.
    pub fn open_connection(&self) -> OpenGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenGuard(self.open.clone())
    }

    /// Resolves when the gateway starts draining.
    pub async fn drained(&self) {
        let mut rx = self.draining.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl Drain {
    /// Starts the drain: listeners stop, pooled connections say GOAWAY.
    pub fn start(&self) {
        self.start.send_replace(true);
    }

    /// Waits until no connection is open or `most` has passed; returns how
    /// many were still open.
    pub async fn wait_idle(&self, most: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + most;
        while self.open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_drain_waits_for_open_connections_and_wakes_listeners() {
        let (life, drain) = new();
        let guard = life.open_connection();
        let waiter = tokio::spawn({
            let life = life.clone();
            async move { life.drained().await }
        });
        drain.start();
        waiter.await.unwrap();
        assert_eq!(drain.wait_idle(Duration::from_millis(60)).await, 1);
        drop(guard);
        assert_eq!(drain.wait_idle(Duration::from_secs(5)).await, 0);
    }
}
