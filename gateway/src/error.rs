//! The one error of an egress attempt (STYLE.md §15, as pingora's error
//! type): it says which side failed and whether the next target may be
//! tried, so failover, outlier detection and metrics match on it, never on
//! strings.

use std::io;

use crate::transport::TransportError;
use crate::wire::Refusal;

/// Which side of a hop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client of this gateway.
    Downstream,
    /// An endpoint, or a peer gateway and what is behind it.
    Upstream,
    /// This gateway itself (its limits or its settings).
    Internal,
}

/// Why one attempt on one target failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// No ready, non-ejected local endpoint serves the port.
    #[error("no ready endpoint of the service here")]
    NoEndpoint,
    /// The target already carries `maxConnectionsPerTarget` connections.
    #[error("the target already carries its maximum of connections")]
    AtCapacity,
    /// A TCP connect to an endpoint or a peer gateway failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Who was dialed.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// An endpoint or a peer gateway did not answer within the budget.
    #[error("{addr} did not answer in time")]
    Timeout {
        /// Who was dialed.
        addr: String,
    },
    /// The pooled transport to a peer gateway failed before it answered
    /// (no byte reached an endpoint: its ingress reads a stream only after
    /// answering 200).
    #[error(transparent)]
    Transport(TransportError),
    /// The peer ingress answered that it cannot connect this request.
    #[error("the peer ingress refused: {}", .0.as_str())]
    Refused(Refusal),
    /// The peer ingress answered something that is not an answer.
    #[error("the peer ingress answered badly: {0}")]
    BadAnswer(String),
    /// The client went away while a target was being reached.
    #[error("the client closed before a target answered")]
    ClientGone,
}

impl AttemptError {
    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            AttemptError::ClientGone => Side::Downstream,
            AttemptError::AtCapacity => Side::Internal,
            AttemptError::NoEndpoint
            | AttemptError::Connect { .. }
            | AttemptError::Timeout { .. }
            | AttemptError::Transport(_)
            | AttemptError::Refused(_)
            | AttemptError::BadAnswer(_) => Side::Upstream,
        }
    }

    /// Whether the next target may be tried: every failure before a byte
    /// reached an endpoint, unless the client itself is gone.
    pub fn may_try_next(&self) -> bool {
        self.side() != Side::Downstream
    }

    /// Whether this counts against the target cluster in outlier
    /// detection: only when its ingress says it has nothing to serve with
    /// (DESIGN.md: a cluster is ejected only then; a bad endpoint is
    /// ejected on its own, a dead gateway is the probes' business).
    pub fn ejects_cluster(&self) -> bool {
        matches!(self, AttemptError::Refused(r) if r.cluster_cannot_serve())
    }

    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptError::NoEndpoint => "no_endpoint",
            AttemptError::AtCapacity => "at_capacity",
            AttemptError::Connect { .. } => "connect",
            AttemptError::Timeout { .. } => "timeout",
            AttemptError::Transport(e) if e.is_before_request() => "peer_unreachable",
            AttemptError::Transport(_) => "peer_stream_lost",
            AttemptError::Refused(r) => r.as_str(),
            AttemptError::BadAnswer(_) => "bad_answer",
            AttemptError::ClientGone => "client_gone",
        }
    }

    /// Whether the peer gateway itself could not be reached (a failed
    /// probe's worth of evidence), as opposed to its answer.
    pub fn gateway_unreachable(&self) -> bool {
        matches!(
            self,
            AttemptError::Timeout { .. }
                | AttemptError::Transport(
                    TransportError::Dial { .. }
                        | TransportError::DialTimeout { .. }
                        | TransportError::Tls { .. }
                        | TransportError::Handshake { .. }
                        | TransportError::ConnectionLost { .. }
                )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_client_stops_failover() {
        let connect = AttemptError::Connect {
            addr: "127.0.0.1:1".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(connect.may_try_next());
        assert_eq!(connect.side(), Side::Upstream);
        assert!(AttemptError::AtCapacity.may_try_next());
        assert!(!AttemptError::ClientGone.may_try_next());
    }

    #[test]
    fn every_label_has_its_series_from_start() {
        use crate::metrics::{LOCAL_ATTEMPT_REASONS, REMOTE_ATTEMPT_REASONS};
        let remote = Refusal::ALL.into_iter().map(AttemptError::Refused).chain([
            AttemptError::Timeout { addr: "gw".into() },
            AttemptError::BadAnswer("418".into()),
            AttemptError::ClientGone,
            AttemptError::AtCapacity,
        ]);
        for e in remote {
            assert!(REMOTE_ATTEMPT_REASONS.contains(&e.label()), "{}", e.label());
        }
        let local = [
            AttemptError::NoEndpoint,
            AttemptError::AtCapacity,
            AttemptError::Timeout { addr: "ep".into() },
            AttemptError::Connect {
                addr: "ep".into(),
                source: io::ErrorKind::ConnectionRefused.into(),
            },
        ];
        for e in local {
            assert!(LOCAL_ATTEMPT_REASONS.contains(&e.label()), "{}", e.label());
        }
    }

    #[test]
    fn only_an_ingress_with_nothing_ejects_its_cluster() {
        assert!(AttemptError::Refused(Refusal::EndpointFailed).ejects_cluster());
        assert!(AttemptError::Refused(Refusal::NoHealthyEndpoint).ejects_cluster());
        assert!(!AttemptError::Refused(Refusal::NotExportedToYou).ejects_cluster());
        assert!(!AttemptError::Timeout { addr: "gw".into() }.ejects_cluster());
        assert_eq!(
            AttemptError::Refused(Refusal::EndpointFailed).label(),
            "endpoint_failed"
        );
    }
}
