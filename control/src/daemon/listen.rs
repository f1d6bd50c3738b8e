//! Listeners of `fedctl run`, all bound before anything is served: a bind
//! error names the config field, and the admin API listens only on
//! loopback or a unix socket (its callers are trusted).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use fedmesh_proto::config::{AdminListen, Config};
use fedmesh_proto::v1::admin_server::AdminServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;

use crate::api::admin::AdminService;

/// Every listener of the control plane, bound.
pub(super) struct Listeners {
    /// `control.peeringListen`.
    pub peering: TcpListener,
    /// `control.gatewayListen`.
    pub gateway: TcpListener,
    /// `control.adminListen`.
    pub admin: AdminListener,
    /// Bound addresses, for the "listening on" lines.
    pub peering_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    pub admin_text: String,
}

impl Listeners {
    /// Binds the peering, gateway API and admin listeners.
    pub(super) async fn bind(config: &Config) -> anyhow::Result<Self> {
        let peering = bind(config.control.peering_listen, "control.peeringListen").await?;
        let gateway = bind(config.control.gateway_listen, "control.gatewayListen").await?;
        let admin = bind_admin(&config.control.admin_listen).await?;
        let admin_text = match &admin {
            AdminListener::Tcp(_, addr) => addr.to_string(),
            AdminListener::Unix(_) => config.control.admin_listen.to_string(),
        };
        Ok(Self {
            peering_addr: peering.local_addr()?,
            gateway_addr: gateway.local_addr()?,
            peering,
            gateway,
            admin,
            admin_text,
        })
    }
}

/// The admin listener, bound before anything is served.
pub(super) enum AdminListener {
    Tcp(TcpListener, SocketAddr),
    Unix(tokio::net::UnixListener),
}

pub(super) async fn bind(addr: SocketAddr, field: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {field} {addr}; stop whatever uses it or choose another address")
    })
}

pub(super) async fn bind_admin(listen: &AdminListen) -> anyhow::Result<AdminListener> {
    if !listen.is_allowed() {
        bail!(
            "control.adminListen {listen} is not loopback; the admin API trusts its callers, so it listens only on loopback or a unix socket"
        );
    }
    match listen {
        AdminListen::Tcp(addr) => {
            let l = bind(*addr, "control.adminListen").await?;
            let local = l.local_addr()?;
            Ok(AdminListener::Tcp(l, local))
        }
        AdminListen::Unix(path) => {
            // A socket file left by a killed process blocks the bind.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let l = tokio::net::UnixListener::bind(path).with_context(|| {
                format!(
                    "cannot listen on control.adminListen unix:{}",
                    path.display()
                )
            })?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(AdminListener::Unix(l))
        }
    }
}

pub(super) fn serve_admin(
    listener: AdminListener,
    service: AdminServer<AdminService>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let router = Server::builder().add_service(service);
    match listener {
        AdminListener::Tcp(l, _) => {
            tokio::spawn(router.serve_with_incoming_shutdown(TcpListenerStream::new(l), stop))
        }
        AdminListener::Unix(l) => {
            tokio::spawn(router.serve_with_incoming_shutdown(UnixListenerStream::new(l), stop))
        }
    }
}
