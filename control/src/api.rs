//! The gRPC APIs this control plane serves to its own callers, readers of
//! the layers below: [`admin`] for `fedctl` (loopback or a unix socket), and
//! [`gateway`] for `fedgw` (TLS, bootstrap token). Each takes the handles it
//! reads, not the whole control plane. [`gateways`] is what the gateway API
//! learns of this cluster's gateways, read by `fedctl check`; [`split`] the
//! effective split of a weighted service, shown by `fedctl services`;
//! [`admin_health`] the gRPC health and reflection services both ports add.

pub mod admin;
pub mod admin_health;
pub mod gateway;
pub mod gateways;
pub mod split;
