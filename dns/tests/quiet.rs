//! What a client sends must not fill the operator's log: malformed UDP
//! packets, responses, other opcodes, unknown EDNS versions and refused
//! questions are logged at debug only, by fedmesh and by hickory.
//!
//! The log is captured with a process-wide subscriber, hence a binary of
//! its own with a single test.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_resolver::proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, RecordType};
use tokio::net::UdpSocket;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

// The shared harness; this binary uses only part of it.
#[allow(dead_code)]
#[path = "dns/support.rs"]
mod support;

use support::{DEADLINE, TestServer, WEB_VIP, addresses, encode, query, sample, udp};

const WEB: &str = "web.prod.svc.clusterset.local.";

/// Keeps every event at warn or above, as "target: message".
#[derive(Clone, Default)]
struct Loud(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Loud {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let mut message = Fields::default();
        event.record(&mut message);
        let line = format!("{}: {}", event.metadata().target(), message.0);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

/// Queries a client may send that are not the server's fault.
fn unwelcome() -> Vec<Vec<u8>> {
    let mut packets = vec![vec![0x12], vec![0xff; 12], vec![0; 12]];
    let mut cut = encode(&query(WEB, RecordType::A));
    cut.truncate(20);
    packets.push(cut);
    let mut response = query(WEB, RecordType::A);
    response.metadata.message_type = hickory_resolver::proto::op::MessageType::Response;
    packets.push(encode(&response));
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut other = query(WEB, RecordType::SOA);
        other.metadata.op_code = op;
        packets.push(encode(&other));
    }
    let mut edns1 = query(WEB, RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    edns1.set_edns(edns);
    packets.push(encode(&edns1));
    let mut chaos = query(WEB, RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    packets.push(encode(&chaos));
    for (name, rtype) in [
        ("example.com.", RecordType::A),
        ("clusterset.local.", RecordType::IXFR),
        ("clusterset.local.", RecordType::AXFR),
    ] {
        packets.push(encode(&query(name, rtype)));
    }
    packets
}

#[tokio::test]
async fn client_triggered_problems_are_not_logged_above_debug() {
    let loud = Loud::default();
    let subscriber = tracing_subscriber::registry().with(loud.clone());
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let dns = TestServer::start(sample()).await;
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind client");
    let packets = unwelcome();
    for packet in &packets {
        client.send_to(packet, dns.addr()).await.expect("send");
    }
    // Three packets are dropped (a byte, a header that says "response", a
    // response); the other ten get FORMERR, NOTIMP, BADVERS or REFUSED.
    // Each is logged before its answer is sent, so once ten answers are in,
    // so are their log lines.
    assert_eq!(replies(&client, 10).await, 10);
    let reply = udp(dns.addr(), &query(WEB, RecordType::A)).await;
    assert_eq!(addresses(&reply), vec![WEB_VIP]);

    let lines = loud
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        lines.is_empty(),
        "logged above debug:\n{}",
        lines.join("\n")
    );
    check_codes(dns.addr()).await;
}

/// Reads replies until `expected` came or the deadline passed; returns how
/// many came.
async fn replies(client: &UdpSocket, expected: usize) -> usize {
    let mut buf = vec![0; 4096];
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while count < expected {
        match tokio::time::timeout_at(deadline, client.recv_from(&mut buf)).await {
            Ok(Ok(_)) => count += 1,
            _ => break,
        }
    }
    count
}

/// The codes the unwelcome queries get, so quiet does not mean ignored.
async fn check_codes(server: SocketAddr) {
    let mut notify = query(WEB, RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let reply: Message = udp(server, &notify).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NotImp,
        "{reply}"
    );
    let mut edns1 = query(WEB, RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    edns1.set_edns(edns);
    let reply = udp(server, &edns1).await;
    // BADVERS shares code 16 with BADSIG (RFC 6891 §9, RFC 8945 §6), and
    // hickory decodes it as the latter.
    let code = u16::from(reply.metadata.response_code);
    assert_eq!(code, u16::from(ResponseCode::BADVERS), "{reply}");
}
