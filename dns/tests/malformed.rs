//! Malformed packets over UDP and TCP: each is dropped or answered FORMERR,
//! nothing panics, and the server keeps answering valid queries.
//!
//! A panic inside a hickory task would not stop the server (tokio catches
//! it), so this binary counts panics with a panic hook. The hook is
//! process-wide, hence a binary of its own with a single test.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

// The shared harness; this binary uses only part of it.
#[allow(dead_code)]
#[path = "dns/support.rs"]
mod support;

use support::{DEADLINE, TestServer, WEB_VIP, addresses, encode, query, sample, tcp_raw, udp_raw};

static PANICS: AtomicUsize = AtomicUsize::new(0);

const WEB: &str = "web.prod.svc.clusterset.local.";

/// Deterministic pseudo-random bytes (xorshift), so a failure replays.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[0]
        })
        .collect()
}

/// A query header with `questions` questions for `web`.
fn with_questions(id: u16, questions: usize) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    for _ in 0..questions {
        let name = Name::from_ascii(WEB).expect("valid name");
        message.add_query(Query::query(name, RecordType::A));
    }
    encode(&message)
}

/// Packets that must not crash the server; none of them is a valid query.
fn garbage() -> Vec<Vec<u8>> {
    let mut packets = vec![
        vec![],
        vec![0x12],
        vec![0x12, 0x34, 0x01],
        noise(1, 11),                             // shorter than a header
        vec![0xff; 12],                           // a header of all ones (a "response")
        vec![0; 12],                              // a header with no questions
        with_questions(0x4242, 1)[..20].to_vec(), // question cut short
        {
            // Claims 1 question, then a name label running off the end.
            let mut p = with_questions(0x4343, 0);
            p[5] = 1;
            p.extend_from_slice(&[63, b'a', b'b']);
            p
        },
        {
            // A compression pointer to itself (a loop).
            let mut p = with_questions(0x4444, 0);
            p[5] = 1;
            p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            p
        },
    ];
    packets.extend((2..40).map(|seed| noise(seed, usize::try_from(seed * 7).unwrap_or(64))));
    packets.extend((40..50).map(|seed| noise(seed, 512)));
    packets
}

#[tokio::test]
async fn malformed_packets_are_dropped_or_formerr_and_the_server_keeps_serving() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let dns = TestServer::start(sample()).await;
    well_formed_but_wrong_question_counts_are_formerr(dns.addr()).await;
    a_cut_question_is_formerr(dns.addr()).await;
    garbage_over_udp(dns.addr()).await;
    garbage_over_tcp(dns.addr()).await;

    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked; see the output"
    );
}

async fn well_formed_but_wrong_question_counts_are_formerr(server: SocketAddr) {
    // RFC 1035 allows QDCOUNT > 1 but no server supports it; hickory
    // answers FORMERR for anything but exactly one question.
    for (id, questions) in [(0x0100, 0), (0x0200, 2)] {
        let packet = with_questions(id, questions);
        for reply in [
            udp_raw(server, &packet, id).await,
            tcp_raw(server, &packet).await,
        ] {
            let reply = Message::from_vec(&reply).expect("FORMERR decodes");
            assert_eq!(reply.metadata.id, id);
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::FormErr,
                "{questions} questions"
            );
        }
    }
    assert_still_serving(server).await;
}

async fn a_cut_question_is_formerr(server: SocketAddr) {
    let id = 0x0300;
    let packet = with_questions(id, 1);
    let cut = &packet[..packet.len() - 3];
    for reply in [udp_raw(server, cut, id).await, tcp_raw(server, cut).await] {
        let reply = Message::from_vec(&reply).expect("FORMERR decodes");
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }
}

/// Sends every garbage datagram from one socket, then a valid query, and
/// reads until the valid query's reply: every reply to the garbage that
/// arrives first must be an error, never an answer.
async fn garbage_over_udp(server: SocketAddr) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    for packet in garbage() {
        socket.send_to(&packet, server).await.expect("send garbage");
    }
    let valid = query(WEB, RecordType::A);
    socket
        .send_to(&encode(&valid), server)
        .await
        .expect("send query");
    let mut buf = vec![0; 65_535];
    let read = async {
        loop {
            let (len, _) = socket.recv_from(&mut buf).await.expect("receive");
            let reply = Message::from_vec(&buf[..len]).expect("every reply decodes");
            if reply.metadata.id == valid.metadata.id && !reply.queries.is_empty() {
                return reply;
            }
            assert_ne!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{reply}"
            );
            assert!(reply.answers.is_empty(), "garbage was answered: {reply}");
        }
    };
    let reply = timeout(DEADLINE, read)
        .await
        .expect("the valid reply within the deadline");
    assert_eq!(addresses(&reply), vec![WEB_VIP]);
    assert_still_serving(server).await;
}

/// Each garbage packet on its own connection, framed and unframed, and
/// connections closed mid-frame; then a valid query on a new connection.
async fn garbage_over_tcp(server: SocketAddr) {
    for packet in garbage() {
        let len = u16::try_from(packet.len()).expect("small packet");
        // Framed: a length prefix, then the garbage.
        let mut stream = TcpStream::connect(server).await.expect("connect");
        let _ = stream.write_all(&len.to_be_bytes()).await;
        let _ = stream.write_all(&packet).await;
        drop(stream);
        // Unframed: the garbage read as a length prefix and a message.
        let mut stream = TcpStream::connect(server).await.expect("connect");
        let _ = stream.write_all(&packet).await;
        drop(stream);
    }
    // A frame announcing more than is ever sent.
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let _ = stream.write_all(&[0xff, 0xff, 1, 2, 3]).await;
    drop(stream);
    assert_still_serving(server).await;
}

async fn assert_still_serving(server: SocketAddr) {
    let message = query(WEB, RecordType::A);
    for reply in [
        udp_raw(server, &encode(&message), message.metadata.id).await,
        tcp_raw(server, &encode(&message)).await,
    ] {
        let reply = Message::from_vec(&reply).expect("valid reply");
        assert_eq!(addresses(&reply), vec![WEB_VIP]);
    }
}
