//! A hostile peer: it joined east with a real token, so its certificate
//! is trusted, and it speaks the real protocol (`fedmesh_tests::hostile`),
//! but it sends oversized strings, malformed and contradictory exports,
//! endpoint claims of `u32::MAX`, a flood of updates, replayed and
//! out-of-order versions, and a Hello full of escapes. East keeps serving
//! west (its honest peer) throughout, refuses what is bad with a reason in
//! its log, and nothing the hostile peer sent reaches an operator raw:
//! `fedctl services` and `fedctl peers` answer, with no escape byte and no
//! line longer than the output allows.

use std::time::{Duration, Instant};

use fedmesh_proto::v1;
use fedmesh_proto::v1::sync_message::Msg;
use fedmesh_tests::hostile::HostilePeer;
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);
/// The longest line `fedctl` may print for what a peer sent.
const MAX_LINE: usize = 4_096;
/// Updates in the flood.
const FLOOD: u64 = 500;

fn export(ns: &str, name: &str, port_name: &str, port: u32, endpoints: u32) -> v1::ServiceExport {
    v1::ServiceExport {
        namespace: ns.into(),
        name: name.into(),
        ports: vec![v1::ServicePort {
            name: port_name.into(),
            port,
            protocol: "TCP".into(),
            ..Default::default()
        }],
        exported_at_unix_ms: 1,
        healthy_endpoints: endpoints,
        total_endpoints: endpoints,
        ..Default::default()
    }
}

fn update(version: u64, base: u64, full: bool, upserts: Vec<v1::ServiceExport>) -> Msg {
    Msg::Exports(v1::ExportUpdate {
        epoch: 1,
        version,
        base_version: base,
        full,
        upserts,
        removals: Vec::new(),
    })
}

/// Everything wrong at once, in one full update.
fn malformed() -> Vec<v1::ServiceExport> {
    let long = "x".repeat(70_000);
    let ansi = "\u{1b}[31mred\nline";
    let mut dup_b = export("demo", "dup", "tcp", 81, 1);
    dup_b.exported_at_unix_ms = -5;
    vec![
        export("demo", "evil-ok", "tcp", 80, u32::MAX),
        export("demo", &long, "tcp", 80, 1),
        export(ansi, "x", "tcp", 80, 1),
        export("demo", ansi, "tcp", 80, 1),
        export("demo", "Hello_World", "tcp", 80, 1),
        export("demo", "port-zero", "tcp", 0, 1),
        export("demo", "port-huge", "tcp", 70_000, 1),
        export("demo", "port-name", &long, 80, 1),
        export("demo", "port-ansi", ansi, 80, 1),
        export("demo", "dup", "tcp", 80, 1),
        dup_b,
        v1::ServiceExport {
            weights: vec![v1::ClusterWeight {
                cluster: long.clone(),
                weight: u32::MAX,
            }],
            ..export("demo", "weights", "tcp", 80, 1)
        },
    ]
}

/// What an operator sees must be bounded and escaped.
fn assert_clean(what: &str, out: &fedmesh_tests::Out) {
    assert!(out.ok, "{what} answers: {}", out.stderr);
    assert!(
        !out.stdout.contains('\u{1b}'),
        "{what} printed an escape byte"
    );
    let longest = out.stdout.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= MAX_LINE, "{what} printed a {longest}-byte line");
}

fn west_still_served(fed: &Federation, name: &str) {
    let west = fed.get("west");
    let yaml = service_yaml("demo", name, "tcp", 80, 8080, &[EXPORT], &[]);
    west.write_manifest(&format!("{name}.yaml"), &yaml);
    wait_until(&format!("east imports demo/{name} from west"), SYNC, || {
        fed.get("east").service_clusters(&format!("demo/{name}")) == ["west"]
    });
    assert_eq!(
        fed.get("east").peer_state("west").as_deref(),
        Some("connected")
    );
}

/// A flood of valid incremental updates, each acked after its commit.
fn flood(fed: &Federation, rt: &tokio::runtime::Runtime, evil: &mut HostilePeer) {
    let started = Instant::now();
    rt.block_on(async {
        assert!(evil.send(update(1, 0, true, Vec::new())).await);
        for v in 2..=FLOOD {
            let e = export("flood", &format!("s{}", v % 50), "tcp", 80, 1);
            if !evil.send(update(v, v - 1, false, vec![e])).await {
                break;
            }
        }
    });
    // Each update is one durable commit (fsync) on east before its ack.
    wait_until("east acks the whole flood", Duration::from_secs(60), || {
        let acks = rt.block_on(evil.drain(Duration::from_millis(200)));
        acks.iter()
            .any(|m| matches!(&m.msg, Some(Msg::Ack(a)) if a.version == FLOOD))
    });
    println!(
        "{FLOOD} updates from the hostile peer acked in {:?}",
        started.elapsed()
    );
    west_still_served(fed, "after-flood");
}

/// Malformed and contradictory exports in one full update: the good part
/// applies, the rest is refused with a reason.
fn malformed_update(fed: &Federation, rt: &tokio::runtime::Runtime, evil: &HostilePeer) {
    rt.block_on(async {
        assert!(evil.send(update(FLOOD + 1, 0, true, malformed())).await);
    });
    wait_until(
        "east applies the good part of the malformed update",
        SYNC,
        || fed.get("east").service("demo/evil-ok").is_some(),
    );
    let east = fed.get("east");
    assert!(
        east.service("demo/Hello_World").is_none(),
        "not a DNS label"
    );
    assert!(east.service("demo/port-zero").is_none(), "port 0");
    assert!(east.service("demo/port-huge").is_none(), "port past 65535");
    let log = east.log();
    assert!(
        log.contains("skipping a bad export from peer"),
        "east says why it refused the bad exports"
    );
    assert_clean("fedctl services", &east.fedctl(&["services"]));
    assert_clean(
        "fedctl services -o json",
        &east.fedctl(&["services", "-o", "json"]),
    );
    assert_clean("fedctl peers", &east.fedctl(&["peers"]));
    west_still_served(fed, "after-malformed");
}

/// A replayed version and one out of order: the session ends (the peer
/// must resync), nothing of them is applied.
fn replay_and_reorder(fed: &Federation, rt: &tokio::runtime::Runtime, evil: &mut HostilePeer) {
    rt.block_on(async {
        let replay = export("demo", "replayed", "tcp", 80, 1);
        let _ = evil
            .send(update(FLOOD + 1, FLOOD, false, vec![replay]))
            .await;
        let later = export("demo", "out-of-order", "tcp", 80, 1);
        let _ = evil
            .send(update(FLOOD + 9, FLOOD + 7, false, vec![later]))
            .await;
        let _ = evil.drain(Duration::from_secs(3)).await;
    });
    let east = fed.get("east");
    assert!(
        east.service("demo/replayed").is_none(),
        "a replay is not applied"
    );
    assert!(east.service("demo/out-of-order").is_none());
    west_still_served(fed, "after-replay");
}

/// A second hostile peer whose Hello is oversized and full of escapes.
fn bad_hello(fed: &Federation, rt: &tokio::runtime::Runtime) {
    let token = fed.get("east").token(None);
    let tamper = |hello: &mut v1::ClusterInfo| {
        hello.locality = Some(v1::Locality {
            region: format!("\u{1b}]0;owned\u{7}{}", "r".repeat(70_000)),
            zone: "z\nz".into(),
        });
        hello.gateway_address = format!("{}:1", "h".repeat(70_000));
    };
    let mut evil2 = rt.block_on(HostilePeer::join(&token, "evil2", tamper));
    let answer = rt.block_on(evil2.drain(Duration::from_secs(3)));
    println!("east's answer to the oversized Hello: {answer:?}");
    let east = fed.get("east");
    assert_clean("fedctl peers after the bad Hello", &east.fedctl(&["peers"]));
    assert_clean(
        "fedctl peers -o json",
        &east.fedctl(&["peers", "-o", "json"]),
    );
    west_still_served(fed, "after-hello");
}

#[test]
fn a_hostile_peer_with_a_valid_certificate_hurts_no_other_peer_and_never_reaches_the_operator_raw()
{
    let fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    west_still_served(&fed, "before");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the hostile peers");
    let token = fed.get("east").token(None);
    let mut evil = rt.block_on(HostilePeer::join(&token, "evil", |_| {}));
    flood(&fed, &rt, &mut evil);
    malformed_update(&fed, &rt, &evil);
    replay_and_reorder(&fed, &rt, &mut evil);
    bad_hello(&fed, &rt);
}
