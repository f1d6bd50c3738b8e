//! Latency at the IP layer, where the test kernel has no `tc netem`: the
//! namespace's own firewall (iptables `NFQUEUE`, see
//! [`super::mesh::Mesh::delay`]) hands every packet in or out of its link
//! to [`run`], which lets each one through `delay` after it arrived. Unlike
//! the TCP [`crate::relay`], this delays the handshake too (SYN, SYN-ACK),
//! so a connect takes the round trip, as to a distant cluster.
//!
//! Bounded: at most [`MAX_HELD`] packets are held; past that a packet goes
//! through at once. It runs until killed; the packets it held then are
//! dropped with the namespace's queue, as on a lossy link.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};

/// Packets held at once.
pub const MAX_HELD: usize = 50_000;
/// How often held packets are looked at when none arrive.
const POLL: Duration = Duration::from_millis(1);

/// Binds NFQUEUE `queue` in this namespace and delays its packets by
/// `delay`, forever; `on_ready` is called once the queue is bound.
///
/// # Errors
/// When the queue cannot be opened or bound (not root, or the kernel has
/// no NFQUEUE), or a verdict cannot be sent.
pub fn run(queue: u16, delay: Duration, on_ready: impl FnOnce()) -> std::io::Result<()> {
    let mut q = Queue::open()?;
    q.bind(queue)?;
    q.set_nonblocking(true);
    on_ready();
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    loop {
        let arrived = receive(&mut q, &mut held, delay)?;
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, msg)) = held.pop_front() {
                q.verdict(msg)?;
            }
        }
        if !arrived {
            std::thread::sleep(POLL);
        }
    }
}

/// Takes every packet waiting in the queue; whether any came.
fn receive(
    q: &mut Queue,
    held: &mut VecDeque<(Instant, Message)>,
    delay: Duration,
) -> std::io::Result<bool> {
    let mut arrived = false;
    loop {
        match q.recv() {
            Ok(mut msg) => {
                arrived = true;
                msg.set_verdict(Verdict::Accept);
                if held.len() >= MAX_HELD {
                    q.verdict(msg)?;
                } else {
                    held.push_back((Instant::now() + delay, msg));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(arrived),
            Err(e) => return Err(e),
        }
    }
}
