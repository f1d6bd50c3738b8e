//! A bound on TLS handshakes in progress at one listener.
//!
//! Why: a handshake costs the server real CPU (a signature, a key
//! exchange), and an attacker can open connections faster than they can
//! be served. Without a bound, hundreds of handshake tasks are ready to run
//! at once and every other task of the process (a pooled connection's
//! PING, a probe answer, a forwarded stream) waits behind all of them. With
//! it, at most [`HandshakeLimits::at_once`] run; the rest wait their turn
//! within the handshake deadline, and past [`HandshakeLimits::waiting`]
//! newcomers are closed at once, so file descriptors stay bounded too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bounds of one listener's handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Handshakes running at once.
    pub at_once: usize,
    /// Connections accepted and not yet through their handshake (running
    /// or waiting); past it a newcomer is closed.
    pub waiting: usize,
    /// The deadline from accept to the end of the handshake, waiting
    /// included.
    pub deadline: Duration,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            at_once: 32,
            waiting: 512,
            deadline: Duration::from_secs(10),
        }
    }
}

/// The handshakes of one listener; cheap to clone.
#[derive(Debug, Clone)]
pub struct Handshakes {
    limits: HandshakeLimits,
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

/// A connection's admission to the handshake queue; drop it once the
/// handshake is over (done, failed or timed out).
#[derive(Debug)]
pub struct Queued {
    _waiting: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

/// A running handshake's slot.
#[derive(Debug)]
pub struct Running {
    _slot: OwnedSemaphorePermit,
}

impl Handshakes {
    /// An empty queue under `limits`.
    pub fn new(limits: HandshakeLimits) -> Self {
        Self {
            limits,
            running: Arc::new(Semaphore::new(limits.at_once)),
            waiting: Arc::new(Semaphore::new(limits.waiting)),
        }
    }

    /// The limits.
    pub fn limits(&self) -> HandshakeLimits {
        self.limits
    }

    /// Takes a place in the queue at accept, or `None` when it is full
    /// (close the connection).
    pub fn enqueue(&self) -> Option<Queued> {
        let waiting = self.waiting.clone().try_acquire_owned().ok()?;
        Some(Queued {
            _waiting: waiting,
            running: self.running.clone(),
        })
    }
}

impl Queued {
    /// Waits for a running slot (bound it with the handshake deadline).
    pub async fn turn(&self) -> Option<Running> {
        let slot = self.running.clone().acquire_owned().await.ok()?;
        Some(Running { _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handshakes_past_the_bound_wait_and_past_the_queue_are_refused() {
        let h = Handshakes::new(HandshakeLimits {
            at_once: 1,
            waiting: 2,
            deadline: Duration::from_secs(1),
        });
        let first = h.enqueue().expect("a place");
        let second = h.enqueue().expect("a place");
        assert!(h.enqueue().is_none(), "the queue is full");
        let running = first.turn().await.expect("a slot");
        let waits = tokio::time::timeout(Duration::from_millis(100), second.turn()).await;
        assert!(waits.is_err(), "one at a time");
        drop(running);
        drop(first);
        assert!(second.turn().await.is_some());
        assert!(h.enqueue().is_some(), "a place was given back");
    }
}
