//! Registries: where this cluster's Services come from. Each publishes the
//! whole local view ([`LocalSnapshot`]) on a `watch` channel whenever it
//! changes; the export state and the service table read it.
//!
//! - [`static_files`]: a folder of Kubernetes YAML manifests (the embedded
//!   default, for standalone hosts);
//! - [`kubernetes`]: kube-rs watchers on Services and EndpointSlices.
//!
//! Both turn objects into the model with [`build::build`].

pub mod annotations;
pub mod build;
pub mod kubernetes;
pub mod static_files;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::LocalSnapshot;

/// A source of this cluster's services.
pub trait Registry: Send + 'static {
    /// What it reads, for logs (`static files in ./services`).
    fn describe(&self) -> String;

    /// Runs until the returned future is dropped, publishing the full local
    /// view on `out` at start and on every change. Errors are reported as
    /// problems in the snapshot, never by stopping.
    fn run(
        self: Box<Self>,
        out: watch::Sender<Arc<LocalSnapshot>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
