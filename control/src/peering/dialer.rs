//! The dialer side of a peering: for the peering's whole life, keep one
//! sync stream open to the acceptor, redialing with jittered exponential
//! backoff after any failure (DESIGN.md, Joining: roles as in Consul
//! peering).

use std::time::Duration;

use fedmesh_proto::v1::peering_client::PeeringClient;
use ring::rand::SecureRandom;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, info, info_span, warn};

use super::handles::{Dialer, client_tls};
use super::session::{self, SessionEnd};
use fedmesh_proto::identity::IdentityError;
use fedmesh_proto::transport::{connect, error_chain};

/// First retry delay.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay, so a restarted peer is found again quickly.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A stream that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// Why one dial of a peer failed; the dialer logs it, keeps it as the
/// peer's last error, and retries.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Our own TLS configuration was refused.
    #[error("cannot build peering TLS: {0}")]
    Tls(#[source] IdentityError),
    /// TCP or TLS to the peer failed.
    #[error("{}", error_chain(.0))]
    Connect(#[source] tonic::transport::Error),
    /// The peer answered the Sync call with an error.
    #[error("peer refused the sync stream: {}", .0.message())]
    Refused(#[source] tonic::Status),
}

impl Dialer {
    /// Starts the dial loop for `peer` and registers it with the peer set,
    /// so removing the peer stops it.
    pub fn spawn(&self, peer: String) {
        let span = info_span!("dialer", %peer);
        let task = tokio::spawn(self.clone().run(peer.clone()).instrument(span));
        self.peering.peers.set_dialer(&peer, task.abort_handle());
    }

    async fn run(self, peer: String) {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        loop {
            let Some(record) = self.peering.peers.record(&peer) else {
                return;
            };
            let started = Instant::now();
            match self.dial_once(&peer, &record.endpoint).await {
                Err(error) => {
                    warn!(endpoint = %record.endpoint, %error, "dialing peer failed; will retry");
                    self.peering.peers.dial_failed(&peer, error.to_string());
                }
                Ok(SessionEnd::Left) => return,
                Ok(_) => {}
            }
            if started.elapsed() >= HEALTHY_SESSION {
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One dial: connect, open the stream, run the session to its end.
    async fn dial_once(&self, peer: &str, endpoint: &str) -> Result<SessionEnd, DialError> {
        let peers = &self.peering.peers;
        let tls = client_tls(&self.cert, peers.trust(), peer).map_err(DialError::Tls)?;
        let channel = connect(endpoint, tls, self.timeout)
            .await
            .map_err(DialError::Connect)?;
        let mut client = PeeringClient::new(channel)
            .max_decoding_message_size(super::MAX_SYNC_MESSAGE)
            .max_encoding_message_size(super::MAX_SYNC_MESSAGE);
        let (tx, rx) = mpsc::channel(64);
        let Some((id, kill)) = peers.open_session(peer, tx.clone()) else {
            return Ok(SessionEnd::Replaced);
        };
        let inbound = match client.sync(ReceiverStream::new(rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                let error = DialError::Refused(status);
                peers.session_ended(peer, id, Some(error.to_string()));
                return Err(error);
            }
        };
        info!(%endpoint, session = id, "peering stream open");
        let h = self.peering.clone();
        Ok(session::run(h, peer.to_string(), id, inbound, tx, kill).await)
    }
}

/// Exponential backoff with jitter: each delay is drawn from
/// [d/2, d] where d doubles from `base` up to `cap`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let full = exp.min(self.cap);
        let mut byte = [0u8; 1];
        // Without randomness, fall back to the full delay: still bounded.
        let frac = match ring::rand::SystemRandom::new().fill(&mut byte) {
            Ok(()) => 0.5 + f64::from(byte[0]) / 510.0,
            Err(_) => 1.0,
        };
        full.mul_f64(frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peering::testkit::{eventually, side};
    use crate::store::Role;

    #[tokio::test]
    async fn a_dialer_records_why_its_peer_is_unreachable_and_keeps_it_disconnected() {
        let (east, mut west) = (
            side("east", Duration::from_secs(30)),
            side("west", Duration::from_secs(30)),
        );
        // Nothing listens on port 1 of loopback: every dial is refused.
        let mut me = (*west.h.me).clone();
        me.peering_endpoint = "127.0.0.1:1".into();
        west.h.me = std::sync::Arc::new(me);
        east.add_peer(&west, Role::Dialer);
        east.dialer().spawn("west".into());
        eventually("a recorded dial error", || {
            east.h
                .peers
                .view("west")
                .is_some_and(|v| v.last_error.is_some())
        })
        .await;
        let error = east
            .h
            .peers
            .view("west")
            .and_then(|v| v.last_error)
            .unwrap_or_default();
        assert!(error.contains("Connection refused"), "{error}");
        assert_eq!(
            east.state("west"),
            Some(crate::model::LinkState::Disconnected)
        );
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays.last().unwrap() >= &Duration::from_millis(2500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
