//! Many queries in flight at once, as a resolver under load sends them:
//! the UDP workers read and answer them in batches, and every query still
//! gets its own answer, to its own socket, with its own ID and name.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use crate::support::{DB_VIP, DEADLINE, TestServer, WEB_VIP, addresses, encode, query, sample};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 50;

#[tokio::test]
async fn a_burst_from_several_clients_gets_one_right_answer_per_query() {
    let dns = TestServer::start(sample()).await;
    let names = [
        ("web.prod.svc.clusterset.local.", WEB_VIP),
        ("DB.prod.svc.clusterset.local.", DB_VIP),
    ];
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind client");
        let mut expected = HashMap::new();
        for i in 0..PER_CLIENT {
            let (name, vip) = names[i % names.len()];
            let message = query(name, RecordType::A);
            expected.insert(message.metadata.id, (name, vip));
            socket
                .send_to(&encode(&message), dns.addr())
                .await
                .expect("send");
        }
        clients.push((socket, expected));
    }
    let deadline = Instant::now() + DEADLINE;
    let mut buf = vec![0; 4096];
    for (socket, mut expected) in clients {
        // Bounded: one turn per expected answer, each within the deadline.
        while !expected.is_empty() {
            let received = timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let (len, _) = received
                .expect("every query answered within the deadline")
                .expect("receive");
            let reply = Message::from_vec(&buf[..len]).expect("the reply decodes");
            let (name, vip) = expected
                .remove(&reply.metadata.id)
                .expect("one answer per query ID");
            assert_eq!(reply.queries[0].name().to_string(), name);
            assert_eq!(addresses(&reply), vec![vip], "{reply}");
        }
    }
}
