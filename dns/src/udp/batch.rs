//! A batch of UDP datagrams: up to [`BATCH`] queries read with one
//! `recvmmsg`, answered in place, and the answers written with one
//! `sendmmsg` (through nix's safe wrappers: the workspace forbids unsafe
//! code).
//!
//! `recvmmsg` blocks (up to the socket's read timeout) for the first
//! datagram only (`MSG_WAITFORONE`), then takes what is already queued, so
//! a batch never waits to fill: under load it grows, when idle it is one.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto,
};
use tracing::debug;

/// Datagrams per system call. Past a few dozen the saving per datagram is
/// gone, and a larger batch only delays its first answer.
const BATCH: usize = 32;
/// The largest UDP query read (RFC 6891 §6.2.5 allows up to 64 KiB, but a
/// query is a header, a question and an OPT; a longer one is cut and
/// hickory answers FORMERR).
const QUERY_BUFFER: usize = 4096;

/// Buffers for one batch, reused from batch to batch.
pub(super) struct Batch {
    queries: Vec<Vec<u8>>,
    /// Length and source of each query received.
    received: Vec<(usize, Option<SocketAddr>)>,
    answers: Vec<Vec<u8>>,
    /// Where each answer goes.
    destinations: Vec<Option<SockaddrStorage>>,
    /// How many of `answers` are to be sent.
    ready: usize,
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    pub(super) fn new() -> Self {
        Self {
            queries: vec![vec![0; QUERY_BUFFER]; BATCH],
            received: Vec::with_capacity(BATCH),
            answers: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            destinations: vec![None; BATCH],
            ready: 0,
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Waits for at least one datagram on `socket` and reads the batch.
    pub(super) fn receive(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .queries
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        let flags = MsgFlags::MSG_WAITFORONE;
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.receive_headers,
            slices.iter_mut(),
            flags,
            None,
        )?;
        self.received.clear();
        for message in results {
            let src = message.address.as_ref().and_then(to_std);
            self.received.push((message.bytes, src));
        }
        Ok(())
    }

    /// Runs `warm(query)` on every query received, then
    /// `answer(query, source, out)` on each; those it answers (`true`) are
    /// queued for [`Batch::send`].
    pub(super) fn answer(
        &mut self,
        mut warm: impl FnMut(&[u8]),
        mut answer: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> bool,
    ) {
        for (i, &(len, _)) in self.received.iter().enumerate() {
            warm(&self.queries[i][..len]);
        }
        self.ready = 0;
        for (i, &(len, src)) in self.received.iter().enumerate() {
            let Some(src) = src else {
                continue;
            };
            let out = &mut self.answers[self.ready];
            if answer(&self.queries[i][..len], src, out) {
                self.destinations[self.ready] = Some(SockaddrStorage::from(src));
                self.ready += 1;
            }
        }
    }

    /// Sends the queued answers, in as few `sendmmsg` calls as the kernel
    /// takes them. An answer the kernel refuses is dropped (the client
    /// retries) and the rest still go.
    pub(super) fn send(&mut self, socket: &UdpSocket) {
        let mut sent = 0;
        // Bounded: each turn sends or drops at least one answer.
        while sent < self.ready {
            let slices: Vec<[IoSlice<'_>; 1]> = self.answers[sent..self.ready]
                .iter()
                .map(|answer| [IoSlice::new(answer)])
                .collect();
            let results = sendmmsg(
                socket.as_raw_fd(),
                &mut self.send_headers,
                slices.iter(),
                &self.destinations[sent..self.ready],
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            );
            match results {
                Ok(results) => sent += results.count().max(1),
                Err(error) => {
                    // The client's problem (gone, unreachable), not ours.
                    debug!(dst = ?self.destinations[sent], %error, "DNS response not sent");
                    sent += 1;
                }
            }
        }
    }
}

/// Sends one answer without blocking (the caller is an async task): a full
/// send buffer drops it, and the client retries.
pub(super) fn send_one(socket: &UdpSocket, answer: &[u8], dst: SocketAddr) {
    let addr = SockaddrStorage::from(dst);
    if let Err(error) = sendto(socket.as_raw_fd(), answer, &addr, MsgFlags::MSG_DONTWAIT) {
        debug!(%dst, %error, "DNS response not sent");
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}
