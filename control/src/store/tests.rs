use super::*;

fn peer(name: &str) -> PeerRecord {
    PeerRecord {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: StoredLocality {
            region: "us-west".into(),
            zone: "us-west-2a".into(),
        },
        roots_pem: vec!["-----BEGIN CERTIFICATE-----".into()],
        role: Role::Acceptor,
        endpoint: "127.0.2.1:15017".into(),
        gateway_address: "127.0.2.1:15443".into(),
        joined_unix_ms: 1,
    }
}

fn token(expires: i64) -> TokenRecord {
    TokenRecord {
        created_unix_ms: 0,
        expires_unix_ms: expires,
        used_unix_ms: None,
        used_by: None,
    }
}

#[test]
fn peers_and_ca_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_peer(&peer("west")).unwrap();
        store.put_ca("cert", "key").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.peers().unwrap(), vec![peer("west")]);
    assert_eq!(
        store.ca().unwrap(),
        Some(("cert".to_string(), "key".to_string()))
    );
    assert!(store.remove_peer("west").unwrap());
    assert!(!store.remove_peer("west").unwrap());
    assert!(store.peers().unwrap().is_empty());
}

#[test]
fn a_token_is_accepted_once_and_stores_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_token("h1", &token(1_000)).unwrap();
    assert_eq!(store.accept_join("h1", 500, &peer("west")).unwrap(), Ok(()));
    assert_eq!(store.peers().unwrap().len(), 1);
    let again = store.accept_join("h1", 600, &peer("eu")).unwrap();
    assert!(matches!(again, Err(TokenRefusal::Used { ref by, .. }) if by == "west"));
    assert_eq!(
        store.peers().unwrap().len(),
        1,
        "a refused join stores no peer"
    );
}

#[test]
fn expired_and_unknown_tokens_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_token("h1", &token(1_000)).unwrap();
    let late = store.accept_join("h1", 1_001, &peer("west")).unwrap();
    assert!(matches!(late, Err(TokenRefusal::Expired { .. })));
    let unknown = store.accept_join("nope", 1, &peer("west")).unwrap();
    assert_eq!(unknown, Err(TokenRefusal::Unknown));
    assert!(store.peers().unwrap().is_empty());
}

#[test]
fn tokens_expired_a_day_ago_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_token("old", &token(1_000)).unwrap();
    let mut fresh = token(200_000_000);
    fresh.created_unix_ms = 100_000_000;
    store.put_token("new", &fresh).unwrap();
    let refusal = store.accept_join("old", 1, &peer("west")).unwrap();
    assert_eq!(refusal, Err(TokenRefusal::Unknown));
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("another `fedctl run`"), "{err}");
}
