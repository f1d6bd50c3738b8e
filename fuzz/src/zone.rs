//! The zone both DNS targets answer from: one service with a VIP, a
//! pinned cluster and named ports, one without ports, as in the DNS
//! crate's own differential test.

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use fedmesh_dns::offline::OfflineZone;
use fedmesh_dns::{ClusterRecord, PortRecord, ServiceRecord, ZoneSnapshot};

/// The zone, built once per process.
pub(crate) fn zone() -> &'static OfflineZone {
    static ZONE: OnceLock<OfflineZone> = OnceLock::new();
    ZONE.get_or_init(|| {
        OfflineZone::new(snapshot()).unwrap_or_else(|e| panic!("the fuzz zone builds: {e}"))
    })
}

fn snapshot() -> ZoneSnapshot {
    let port = |name: &str, port| PortRecord {
        name: name.into(),
        port,
        weight: 10,
    };
    let web = ServiceRecord {
        namespace: "prod".into(),
        name: "web".into(),
        vip: Ipv4Addr::new(127, 240, 0, 10),
        ports: vec![port("http", 8080), port("http", 8081), port("grpc", 9090)],
        clusters: vec![ClusterRecord {
            cluster: "east".into(),
            pinned_vip: Ipv4Addr::new(127, 240, 0, 11),
            endpoints: Vec::new(),
        }],
    };
    let db = ServiceRecord {
        namespace: "prod".into(),
        name: "db".into(),
        vip: Ipv4Addr::new(127, 240, 0, 20),
        ports: vec![],
        clusters: vec![],
    };
    ZoneSnapshot {
        zone: "clusterset.local".into(),
        ttl: 5,
        services: fedmesh_dns::service_records([web, db]),
        serial: 7,
    }
}
