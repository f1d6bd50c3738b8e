//! The east-west gateway data plane (`fedgw`): ingress from peer clusters
//! over mTLS, egress listeners on imported VIPs, locality-aware failover.
//!
//! The data path arrives in issue 4; the crate depends on `fedmesh-proto`
//! only (never on `kube` or `fedmesh-control`), so a gateway stays small.
