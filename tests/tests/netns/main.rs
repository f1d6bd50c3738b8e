//! End-to-end tests across network namespaces: each cluster (east, west,
//! eu) runs its real `fedctl run` with an embedded gateway in its own
//! namespace, linked to the others through a bridge, so links can be cut,
//! packets dropped silently and latency added — what loopback cannot do.
//!
//! Root only: elsewhere every test prints why it is skipped and passes.
//! The harness is `fedmesh_tests::netns` (namespaces, clusters, the helper
//! binary run inside them, IP-layer delay) and `fedmesh_tests::relay`
//! (latency for bytes, behind an advertised address).

mod failover;
mod latency;
mod locality;
