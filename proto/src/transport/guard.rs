//! Limits on connections that have not authenticated yet, so that load
//! from anyone who can reach a port cannot exhaust the process.
//!
//! The rule: a connection that proved who it is (a client certificate the
//! TLS verifier accepted, or a token the service accepted and reported with
//! [`Unauthenticated::mark_authenticated`]) is never limited here. Every
//! other connection takes one of [`ListenerLimits::max_unauthenticated`]
//! places (refused past that, so real peers keep their file descriptors)
//! and is closed once it has sent nothing for
//! [`ListenerLimits::idle_timeout`], or has stayed unauthenticated for
//! [`ListenerLimits::unauthenticated_lifetime`].
//!
//! A registry made with [`Unauthenticated::evicting`] does not refuse a
//! newcomer when every place is taken: it closes the oldest
//! unauthenticated connection instead. An attacker holding every place
//! then cannot keep a real client out, which connects, asks and is done
//! long before its own place is the oldest (for ports where any request
//! counts as "authenticated": DNS over TCP, the admin ports).
//!
//! Data flow: `tls_incoming` registers each handshaken connection here and
//! wraps it in a [`Guarded`] stream; reads reset the idle deadline; the
//! place is given back when the connection authenticates or closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Deadlines and caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long an unauthenticated connection may send nothing.
    pub idle_timeout: Duration,
    /// How long a connection may stay unauthenticated at all, however
    /// busy: a client that keeps sending (HTTP/2 PINGs, say) without ever
    /// authenticating must not hold its place for good.
    pub unauthenticated_lifetime: Duration,
    /// How many unauthenticated connections may be open at once.
    pub max_unauthenticated: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            // A Join, or a gateway's certificate request then watch, takes
            // well under a second.
            unauthenticated_lifetime: Duration::from_secs(30),
            max_unauthenticated: 256,
        }
    }
}

/// The unauthenticated connections of one listener; cheap to clone.
#[derive(Debug, Clone)]
pub struct Unauthenticated {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: ListenerLimits,
    places: Arc<Semaphore>,
    open: Mutex<HashMap<SocketAddr, Arc<Mark>>>,
    /// Close the oldest instead of refusing a newcomer.
    evict_oldest: bool,
    /// Admission order, for eviction.
    next_seq: AtomicU64,
}

/// One connection's place, shared by its stream and the registry.
#[derive(Debug)]
struct Mark {
    authenticated: AtomicBool,
    place: Mutex<Option<OwnedSemaphorePermit>>,
    /// When it was admitted (a counter): the smallest is evicted first.
    seq: u64,
    /// Closed to make room for a newcomer.
    evicted: AtomicBool,
    /// The task reading the stream, woken when it is evicted.
    reader: Mutex<Option<Waker>>,
}

impl Mark {
    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        drop(lock(&self.place).take());
        if let Some(waker) = lock(&self.reader).take() {
            waker.wake();
        }
    }

    fn authenticate(&self) {
        self.authenticated.store(true, Ordering::Release);
        // Giving the place back is what lets more newcomers in.
        drop(lock(&self.place).take());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent at every step; a panic elsewhere
    // must not take the listener down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Unauthenticated {
    /// An empty registry under `limits`.
    pub fn new(limits: ListenerLimits) -> Self {
        Self::build(limits, false)
    }

    /// An empty registry under `limits` that, when every place is taken,
    /// closes the oldest unauthenticated connection to admit a newcomer.
    pub fn evicting(limits: ListenerLimits) -> Self {
        Self::build(limits, true)
    }

    fn build(limits: ListenerLimits, evict_oldest: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                places: Arc::new(Semaphore::new(limits.max_unauthenticated)),
                open: Mutex::new(HashMap::new()),
                evict_oldest,
                next_seq: AtomicU64::new(0),
            }),
        }
    }

    /// A place for a newcomer: a free one, or (evicting) the oldest
    /// unauthenticated connection's.
    fn place(&self) -> Result<OwnedSemaphorePermit, Full> {
        let places = &self.inner.places;
        if let Ok(place) = places.clone().try_acquire_owned() {
            return Ok(place);
        }
        if !self.inner.evict_oldest {
            return Err(Full);
        }
        let oldest = lock(&self.inner.open)
            .values()
            .filter(|m| !m.authenticated.load(Ordering::Acquire))
            .filter(|m| !m.evicted.load(Ordering::Acquire))
            .min_by_key(|m| m.seq)
            .cloned();
        if let Some(mark) = oldest {
            mark.evict();
        }
        places.clone().try_acquire_owned().map_err(|_| Full)
    }

    /// The limits this registry enforces.
    pub fn limits(&self) -> ListenerLimits {
        self.inner.limits
    }

    /// How many unauthenticated connections are open now.
    pub fn count(&self) -> usize {
        self.inner.limits.max_unauthenticated - self.inner.places.available_permits()
    }

    /// Lifts the limits from the connection from `remote`: the service
    /// checked its credentials. Unknown addresses are ignored.
    pub fn mark_authenticated(&self, remote: SocketAddr) {
        if let Some(mark) = lock(&self.inner.open).get(&remote) {
            mark.authenticate();
        }
    }

    /// Wraps a connection. `authenticated` says whether the handshake
    /// already proved the peer's identity.
    ///
    /// # Errors
    /// [`Full`] when every place is taken; the caller drops the connection.
    pub fn admit<S>(
        &self,
        stream: S,
        remote: SocketAddr,
        authenticated: bool,
    ) -> Result<Guarded<S>, Full> {
        if authenticated {
            return Ok(Guarded::open(stream, None, self.inner.limits));
        }
        let place = self.place()?;
        let mark = Arc::new(Mark {
            authenticated: AtomicBool::new(false),
            place: Mutex::new(Some(place)),
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            evicted: AtomicBool::new(false),
            reader: Mutex::new(None),
        });
        lock(&self.inner.open).insert(remote, mark.clone());
        let registration = Registration {
            owner: self.clone(),
            remote,
            mark,
        };
        Ok(Guarded::open(stream, Some(registration), self.inner.limits))
    }
}

/// Every place for unauthenticated connections is taken.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many unauthenticated connections")]
pub struct Full;

/// Removes a closed connection from the registry.
#[derive(Debug)]
struct Registration {
    owner: Unauthenticated,
    remote: SocketAddr,
    mark: Arc<Mark>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = lock(&self.owner.inner.open);
        // The same address may have been reused by a newer connection.
        if open
            .get(&self.remote)
            .is_some_and(|m| Arc::ptr_eq(m, &self.mark))
        {
            open.remove(&self.remote);
        }
        drop(open);
        drop(lock(&self.mark.place).take());
    }
}

/// A connection under the limits: reads fail with `TimedOut` once an
/// unauthenticated peer has sent nothing for the idle deadline, or has
/// stayed unauthenticated for its whole allowed lifetime.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    registration: Option<Registration>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    lifetime: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    fn open(inner: S, registration: Option<Registration>, limits: ListenerLimits) -> Self {
        Self {
            inner,
            registration,
            idle_timeout: limits.idle_timeout,
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            lifetime: Box::pin(tokio::time::sleep(limits.unauthenticated_lifetime)),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn limited(&self) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|r| !r.mark.authenticated.load(Ordering::Acquire))
    }

    /// Whether it was closed for a newcomer; else remembers who to wake.
    fn evicted(&self, cx: &Context<'_>) -> bool {
        let Some(r) = &self.registration else {
            return false;
        };
        *lock(&r.mark.reader) = Some(cx.waker().clone());
        r.mark.evicted.load(Ordering::Acquire)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.limited() {
            return read;
        }
        if this.evicted(cx) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "unauthenticated connection closed to admit a newer one",
            )));
        }
        if this.lifetime.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection unauthenticated past its lifetime",
            )));
        }
        match read {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "unauthenticated connection idle past its deadline",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        // The inner stream's info keeps `Request::peer_certs` and
        // `remote_addr` working in the services.
        self.inner.connect_info()
    }
}

pub(super) mod handshakes;
pub(super) mod requests;

#[cfg(test)]
mod tests;
