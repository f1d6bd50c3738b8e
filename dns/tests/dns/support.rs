//! Shared test harness: a real `DnsServer` on 127.0.0.1 port 0 fed by a
//! watch channel, and a raw DNS client (hickory-proto messages over UDP and
//! TCP sockets) that shows every header bit and section.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fedmesh_dns::{ClusterRecord, DnsConfig, DnsServer, PortRecord, ServiceRecord, ZoneSnapshot};
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::timeout;

/// How long any single exchange may take before the test gives up: a guard
/// against hangs, not a timing assertion.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) const ZONE: &str = "clusterset.local";
pub(crate) const TTL: u32 = 5;
pub(crate) const SERIAL: u32 = 7;
pub(crate) const WEB_VIP: Ipv4Addr = Ipv4Addr::new(127, 240, 0, 10);
pub(crate) const EAST_VIP: Ipv4Addr = Ipv4Addr::new(127, 240, 0, 11);
pub(crate) const DB_VIP: Ipv4Addr = Ipv4Addr::new(127, 240, 0, 20);

pub(crate) fn web() -> ServiceRecord {
    ServiceRecord {
        namespace: "prod".into(),
        name: "web".into(),
        vip: WEB_VIP,
        ports: vec![
            PortRecord {
                name: "http".into(),
                port: 8080,
                weight: 10,
            },
            PortRecord {
                name: String::new(),
                port: 9090,
                weight: 1,
            },
        ],
        clusters: vec![ClusterRecord {
            cluster: "east".into(),
            pinned_vip: EAST_VIP,
            endpoints: vec![],
        }],
    }
}

pub(crate) fn db() -> ServiceRecord {
    ServiceRecord {
        namespace: "prod".into(),
        name: "db".into(),
        vip: DB_VIP,
        ports: vec![PortRecord {
            name: String::new(),
            port: 5432,
            weight: 1,
        }],
        clusters: vec![],
    }
}

/// `web` and `db` in namespace `prod`.
pub(crate) fn sample() -> ZoneSnapshot {
    ZoneSnapshot {
        zone: ZONE.into(),
        ttl: TTL,
        services: fedmesh_dns::service_records([web(), db()]),
        serial: SERIAL,
    }
}

/// A started server and the sender the control plane would hold.
pub(crate) struct TestServer {
    pub(crate) server: DnsServer,
    pub(crate) snapshots: watch::Sender<Arc<ZoneSnapshot>>,
}

impl TestServer {
    pub(crate) async fn start(snapshot: ZoneSnapshot) -> Self {
        Self::with_upstreams(snapshot, vec![]).await
    }

    pub(crate) async fn with_upstreams(snapshot: ZoneSnapshot, upstreams: Vec<SocketAddr>) -> Self {
        let (snapshots, receiver) = watch::channel(Arc::new(snapshot));
        let config = DnsConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            upstreams,
        };
        let server = DnsServer::start(config, receiver)
            .await
            .expect("the DNS server starts on 127.0.0.1:0");
        Self { server, snapshots }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub(crate) fn publish(&self, snapshot: ZoneSnapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }
}

static NEXT_ID: AtomicU16 = AtomicU16::new(1);

/// A standard query (RD set, as stub resolvers send it), no EDNS.
pub(crate) fn query(name: &str, rtype: RecordType) -> Message {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).expect("valid test name");
    message.add_query(Query::query(name, rtype));
    message
}

/// `query` advertising an EDNS UDP payload size (RFC 6891 §6.2.3).
pub(crate) fn query_with_edns(name: &str, rtype: RecordType, payload: u16) -> Message {
    let mut message = query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    message.set_edns(edns);
    message
}

pub(crate) fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().expect("test queries encode")
}

/// Sends `bytes` in one datagram and returns the raw reply whose ID is
/// `id`, skipping any other reply (e.g. to earlier malformed packets).
pub(crate) async fn udp_raw(server: SocketAddr, bytes: &[u8], id: u16) -> Vec<u8> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind client");
    socket.send_to(bytes, server).await.expect("send datagram");
    udp_reply(&socket, id).await
}

pub(crate) async fn udp_reply(socket: &UdpSocket, id: u16) -> Vec<u8> {
    let mut buf = vec![0; 65_535];
    let wait = async {
        loop {
            let (len, _) = socket.recv_from(&mut buf).await.expect("receive datagram");
            if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return buf[..len].to_vec();
            }
        }
    };
    timeout(DEADLINE, wait)
        .await
        .expect("a UDP reply within the deadline")
}

pub(crate) async fn udp(server: SocketAddr, message: &Message) -> Message {
    let reply = udp_raw(server, &encode(message), message.metadata.id).await;
    Message::from_vec(&reply).expect("the reply decodes")
}

/// One query on a fresh TCP connection (RFC 1035 §4.2.2 length prefix).
pub(crate) async fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.expect("connect over TCP");
        let len = u16::try_from(bytes.len()).expect("test message fits a TCP frame");
        stream
            .write_all(&len.to_be_bytes())
            .await
            .expect("write length");
        stream.write_all(bytes).await.expect("write message");
        let len = stream.read_u16().await.expect("read length");
        let mut reply = vec![0; usize::from(len)];
        stream.read_exact(&mut reply).await.expect("read reply");
        reply
    };
    timeout(DEADLINE, exchange)
        .await
        .expect("a TCP reply within the deadline")
}

pub(crate) async fn tcp(server: SocketAddr, message: &Message) -> Message {
    let reply = tcp_raw(server, &encode(message)).await;
    Message::from_vec(&reply).expect("the reply decodes")
}

/// Asks over UDP and over TCP, checks both transports gave the same
/// answer, and returns the UDP one.
pub(crate) async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let message = query(name, rtype);
    let over_udp = udp(server, &message).await;
    let over_tcp = tcp(server, &message).await;
    assert_eq!(over_udp.metadata.id, message.metadata.id);
    assert_eq!(over_tcp.metadata.id, message.metadata.id);
    assert_eq!(
        summary(&over_udp),
        summary(&over_tcp),
        "UDP and TCP answers differ for {name} {rtype}"
    );
    over_udp
}

/// Everything but the ID, for comparing replies.
fn summary(m: &Message) -> String {
    format!(
        "{:?} aa={} tc={} q={:?} an={:?} ns={:?} ar={:?}",
        m.metadata.response_code,
        m.metadata.authoritative,
        m.metadata.truncation,
        m.queries,
        m.answers,
        m.authorities,
        m.additionals
    )
}

/// Asserts a negative answer from the zone: `code`, AA, no answers and
/// the zone's SOA in the authority section (RFC 2308 §3), TTL = minimum.
#[track_caller]
pub(crate) fn assert_negative(reply: &Message, code: ResponseCode, serial: u32) {
    assert_eq!(reply.metadata.response_code, code, "{reply}");
    assert!(reply.metadata.authoritative, "AA must be set: {reply}");
    assert!(reply.answers.is_empty(), "no answers expected: {reply}");
    assert_eq!(reply.authorities.len(), 1, "exactly the SOA: {reply}");
    let soa_record = &reply.authorities[0];
    assert_eq!(
        soa_record.name,
        Name::from_ascii("clusterset.local.").expect("zone")
    );
    assert_eq!(soa_record.ttl, TTL);
    let RData::SOA(soa) = &soa_record.data else {
        panic!("authority is not an SOA: {reply}");
    };
    assert_eq!(soa.serial, serial);
    assert_eq!(soa.minimum, TTL);
}

#[track_caller]
pub(crate) fn assert_nodata(reply: &Message) {
    assert_negative(reply, ResponseCode::NoError, SERIAL);
}

#[track_caller]
pub(crate) fn assert_nxdomain(reply: &Message) {
    assert_negative(reply, ResponseCode::NXDomain, SERIAL);
}

/// The A addresses in the answer section.
pub(crate) fn addresses(reply: &Message) -> Vec<Ipv4Addr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}
