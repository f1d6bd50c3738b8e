//! Listeners of `fedctl run`, all bound before anything is served: a bind
//! error names the config field, and the admin API listens only on
//! loopback or a unix socket (its callers are trusted). A unix socket
//! another live control plane answers on is refused, and on exit the file
//! is removed only if it is still ours.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fedmesh_proto::config::{AdminListen, Config};
use fedmesh_proto::transport::{ListenerLimits, MarkRequestsLayer, Unauthenticated, guarded_tcp};
use tokio::net::TcpListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

/// Every listener of the control plane, bound.
pub(super) struct Listeners {
    /// `control.peeringListen`.
    pub peering: TcpListener,
    /// `control.gatewayListen`.
    pub gateway: TcpListener,
    /// `control.adminListen`.
    pub admin: AdminListener,
    /// `control.webListen`, when set, with its bound address.
    pub web: Option<(TcpListener, SocketAddr)>,
    /// Bound addresses, for the "listening on" lines.
    pub peering_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    pub admin_text: String,
    /// The unix admin socket this process created, to remove on exit.
    pub admin_socket: Option<OwnedSocket>,
}

impl Listeners {
    /// Binds the peering, gateway API and admin listeners.
    pub(super) async fn bind(config: &Config) -> anyhow::Result<Self> {
        let peering = bind(config.control.peering_listen, "control.peeringListen").await?;
        let gateway = bind(config.control.gateway_listen, "control.gatewayListen").await?;
        let admin = bind_admin(&config.control.admin_listen).await?;
        let web = match config.control.web_listen {
            Some(addr) => {
                let l = bind(addr, "control.webListen").await?;
                let local = l.local_addr()?;
                Some((l, local))
            }
            None => None,
        };
        let (admin_text, admin_socket) = match &admin {
            AdminListener::Tcp(_, addr) => (addr.to_string(), None),
            AdminListener::Unix(_, owned) => {
                (config.control.admin_listen.to_string(), Some(owned.clone()))
            }
        };
        Ok(Self {
            peering_addr: peering.local_addr()?,
            gateway_addr: gateway.local_addr()?,
            peering,
            gateway,
            admin,
            web,
            admin_text,
            admin_socket,
        })
    }
}

/// The admin listener, bound before anything is served.
pub(super) enum AdminListener {
    Tcp(TcpListener, SocketAddr),
    Unix(tokio::net::UnixListener, OwnedSocket),
}

/// A unix socket file this process bound, known by its inode: on exit it
/// is removed only if it is still ours (another process may have replaced
/// it since, and deleting that one would cut its callers off).
#[derive(Debug, Clone)]
pub(super) struct OwnedSocket {
    path: PathBuf,
    inode: u64,
}

impl OwnedSocket {
    /// Removes the socket file if it is still the one this process bound.
    pub(super) fn remove_if_ours(&self) {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
        AdminListen::Unix(path) => bind_unix(path),
    }
}

/// Binds a unix admin socket. A socket file some process still answers
/// on is refused (taking it over would cut that control plane's callers
/// off); a stale one, left by a killed process, is removed first.
fn bind_unix(path: &Path) -> anyhow::Result<AdminListener> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "control.adminListen unix:{} is in use: another control plane answers on that socket; stop it or choose another control.adminListen",
                path.display()
            );
        }
        let _ = std::fs::remove_file(path);
    }
    let l = tokio::net::UnixListener::bind(path).with_context(|| {
        format!(
            "cannot listen on control.adminListen unix:{}",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let inode = std::fs::symlink_metadata(path)?.ino();
    let owned = OwnedSocket {
        path: path.to_path_buf(),
        inode,
    };
    Ok(AdminListener::Unix(l, owned))
}

/// Serves `routes` (the admin API with health and reflection) on the
/// admin listener until `stop`.
pub(super) fn serve_admin(
    listener: AdminListener,
    routes: tonic::service::Routes,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    match listener {
        AdminListener::Tcp(l, _) => {
            // Loopback TCP is open to every local user: idle connections
            // are capped and closed until they send a request.
            let guard = Unauthenticated::evicting(ListenerLimits::default());
            let router = Server::builder()
                .layer(MarkRequestsLayer::new(guard.clone()))
                .add_routes(routes);
            tokio::spawn(router.serve_with_incoming_shutdown(guarded_tcp(l, guard), stop))
        }
        AdminListener::Unix(l, _) => {
            let router = Server::builder().add_routes(routes);
            tokio::spawn(router.serve_with_incoming_shutdown(UnixListenerStream::new(l), stop))
        }
    }
}
