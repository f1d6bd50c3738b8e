use super::*;
use crate::ca::ClusterCa;
use crate::model::Locality;

fn record(name: &str) -> PeerRecord {
    let ca = ClusterCa::generate(name, &format!("{name}.fedmesh")).unwrap();
    PeerRecord {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: Locality {
            region: "r".into(),
            zone: "z".into(),
        },
        roots_pem: vec![ca.cert_pem().to_string()],
        role: Role::Acceptor,
        endpoint: "127.0.0.1:1".into(),
        gateway_address: "127.0.0.1:2".into(),
        joined_unix_ms: 0,
    }
}

#[test]
fn stored_peers_start_stale_and_are_trusted() {
    let (set, errors) = PeerSet::new(vec![record("west")]);
    assert!(errors.is_empty());
    assert_eq!(set.view("west").unwrap().state, LinkState::Stale);
    assert!(
        set.trust()
            .snapshot()
            .by_trust_domain("west.fedmesh")
            .is_some()
    );
}

#[test]
fn a_stored_peer_with_a_broken_root_is_skipped_with_a_reason() {
    let mut bad = record("west");
    bad.roots_pem = vec!["junk".into()];
    let (set, errors) = PeerSet::new(vec![bad, record("eu")]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("west"), "{errors:?}");
    assert!(set.view("eu").is_some());
}

#[tokio::test]
async fn first_message_connects_and_session_end_makes_the_peer_stale() {
    let (set, _) = PeerSet::new(vec![]);
    set.insert(record("west"), LinkState::Disconnected, 0)
        .unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let (id, _kill) = set.open_session("west", tx).unwrap();
    set.heard("west", id);
    assert_eq!(set.view("west").unwrap().state, LinkState::Connected);
    set.session_ended("west", id, Some("stream closed".into()));
    let v = set.view("west").unwrap();
    assert_eq!(v.state, LinkState::Stale);
    assert_eq!(v.last_error.as_deref(), Some("stream closed"));
    assert!(set.expire_stale(Duration::from_secs(3600)).is_empty());
    assert_eq!(set.expire_stale(Duration::ZERO), vec!["west".to_string()]);
    assert_eq!(set.view("west").unwrap().state, LinkState::Disconnected);
}

#[tokio::test]
async fn a_new_stream_replaces_the_old_one() {
    let (set, _) = PeerSet::new(vec![]);
    set.insert(record("west"), LinkState::Disconnected, 0)
        .unwrap();
    let (tx1, _rx1) = mpsc::channel(1);
    let (old, old_kill) = set.open_session("west", tx1).unwrap();
    let (tx2, _rx2) = mpsc::channel(1);
    let (new, _new_kill) = set.open_session("west", tx2).unwrap();
    assert_ne!(old, new);
    // The old session's kill signal fired (its sender was dropped).
    assert!(old_kill.await.is_err());
    // A late report from the old session does not touch the new one.
    set.heard("west", new);
    set.session_ended("west", old, Some("late".into()));
    assert_eq!(set.view("west").unwrap().state, LinkState::Connected);
}

#[tokio::test]
async fn removing_a_peer_drops_its_roots_and_ends_its_stream() {
    let (set, _) = PeerSet::new(vec![record("west")]);
    let (tx, _rx) = mpsc::channel(1);
    let (_id, kill) = set.open_session("west", tx).unwrap();
    let changes = set.subscribe();
    assert!(set.remove("west"));
    assert!(kill.await.is_err());
    assert!(set.trust().snapshot().is_empty());
    assert!(changes.has_changed().unwrap());
    assert!(!set.remove("west"));
}

#[test]
fn a_second_peer_with_the_same_trust_domain_is_refused() {
    let (set, _) = PeerSet::new(vec![record("west")]);
    let mut clash = record("eu");
    clash.trust_domain = "west.fedmesh".into();
    assert!(set.insert(clash, LinkState::Disconnected, 0).is_err());
}

#[tokio::test]
async fn goodbye_waiter_fires_only_for_the_current_session() {
    let (set, _) = PeerSet::new(vec![record("west")]);
    let (tx, _rx) = mpsc::channel(1);
    let (id, _kill) = set.open_session("west", tx).unwrap();
    let (_out, answered) = set.await_goodbye("west").unwrap();
    assert!(!set.answer_goodbye("west", id + 1));
    assert!(set.answer_goodbye("west", id));
    assert!(answered.await.is_ok());
    assert!(
        !set.answer_goodbye("west", id),
        "a second Goodbye is the peer leaving"
    );
}
