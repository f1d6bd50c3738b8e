//! An endpoint that never answers a connect: a listening socket whose
//! accept queue is full, so the kernel drops every further SYN (as a host
//! behind a firewall that drops packets would), without root and without
//! touching any other address.

use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Socket, Type};

/// Holds the full listener (and the one connection that fills it) until
/// dropped.
#[derive(Debug)]
pub struct SilentEndpoint {
    addr: SocketAddr,
    _listener: Socket,
    _filler: TcpStream,
}

impl SilentEndpoint {
    /// Listens on `addr` with a backlog of one, filled at once.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr) -> Self {
        let listener = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        listener
            .bind(&addr.into())
            .unwrap_or_else(|e| panic!("silent endpoint bind {addr}: {e}"));
        // Linux queues backlog + 1 connections; with 0, one fills it and
        // the next SYNs are dropped (the listen queue overflows).
        listener.listen(0).expect("listen");
        let filler = TcpStream::connect(addr).expect("the one queued connection");
        Self {
            addr,
            _listener: listener,
            _filler: filler,
        }
    }

    /// Where it (does not) listen.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
