use super::*;
use crate::model::Locality;

fn k(name: &str) -> ServiceKey {
    ServiceKey::new("demo", name)
}

fn peer(name: &str) -> PeerRecord {
    PeerRecord {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: Locality {
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
    assert_eq!(
        store.accept_join("h1", 500, &peer("west")).unwrap(),
        Ok(JoinStored::New)
    );
    assert_eq!(store.peers().unwrap().len(), 1);
    let again = store.accept_join("h1", 600, &peer("eu")).unwrap();
    assert!(
        matches!(again, Err(JoinRefusal::Token(TokenRefusal::Used { ref by, .. })) if by == "west")
    );
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
    assert!(matches!(
        late,
        Err(JoinRefusal::Token(TokenRefusal::Expired { .. }))
    ));
    let unknown = store.accept_join("nope", 1, &peer("west")).unwrap();
    assert_eq!(unknown, Err(TokenRefusal::Unknown.into()));
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
    assert_eq!(refusal, Err(TokenRefusal::Unknown.into()));
}

#[test]
fn a_retry_by_the_same_joiner_gets_the_same_answer_even_past_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_token("h1", &token(1_000)).unwrap();
    let first = store.accept_join("h1", 500, &peer("west")).unwrap();
    assert_eq!(first, Ok(JoinStored::New));
    let retry = store.accept_join("h1", 2_000, &peer("west")).unwrap();
    assert_eq!(
        retry,
        Ok(JoinStored::Again),
        "the answer was lost, not refused"
    );
    let mut impostor = peer("west");
    impostor.roots_pem = vec!["another CA".into()];
    let stolen = store.accept_join("h1", 600, &impostor).unwrap();
    assert!(matches!(
        stolen,
        Err(JoinRefusal::Token(TokenRefusal::Used { .. }))
    ));
    assert_eq!(store.peers().unwrap(), vec![peer("west")]);
}

#[test]
fn the_issuer_refuses_a_name_or_trust_domain_clash_and_keeps_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_peer(&peer("west")).unwrap();
    store.put_token("h1", &token(1_000)).unwrap();
    let mut other_ca = peer("west");
    other_ca.roots_pem = vec!["another CA".into()];
    let by_name = store.accept_join("h1", 1, &other_ca).unwrap();
    assert_eq!(
        by_name,
        Err(JoinRefusal::NameTaken {
            name: "west".into()
        })
    );
    let mut same_td = peer("eu");
    same_td.trust_domain = "west.fedmesh".into();
    let by_td = store.accept_join("h1", 1, &same_td).unwrap();
    assert!(matches!(by_td, Err(JoinRefusal::TrustDomainTaken { ref peer, .. }) if peer == "west"));
    assert_eq!(store.peers().unwrap(), vec![peer("west")], "nothing stored");
    let fine = store.accept_join("h1", 1, &peer("eu")).unwrap();
    assert_eq!(fine, Ok(JoinStored::New), "refusals did not use the token");
}

#[test]
fn the_joiner_stores_once_refuses_clashes_and_finds_a_retry_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut west = peer("west");
    west.role = Role::Dialer;
    assert_eq!(store.add_joined_peer(&west).unwrap(), Ok(JoinStored::New));
    assert_eq!(store.add_joined_peer(&west).unwrap(), Ok(JoinStored::Again));
    let mut ghost = peer("west");
    ghost.role = Role::Dialer;
    ghost.trust_domain = "elsewhere.fedmesh".into();
    assert!(matches!(
        store.add_joined_peer(&ghost).unwrap(),
        Err(JoinRefusal::NameTaken { .. })
    ));
    let mut same_td = peer("eu");
    same_td.role = Role::Dialer;
    same_td.trust_domain = "west.fedmesh".into();
    assert!(matches!(
        store.add_joined_peer(&same_td).unwrap(),
        Err(JoinRefusal::TrustDomainTaken { .. })
    ));
    assert_eq!(store.peers().unwrap(), vec![west], "the live peer stays");
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("another `fedctl run`"), "{err}");
}

fn import(port: u16) -> ImportRecord {
    ImportRecord {
        ports: vec![("http".into(), port)],
        exported_at_unix_ms: 5,
        affinity: "local".into(),
        weights: Default::default(),
        healthy_endpoints: 1,
        total_endpoints: 2,
        headless: false,
        named_endpoints: vec![],
        draining: false,
        app_protocols: Default::default(),
    }
}

#[test]
fn imports_apply_in_full_and_incrementally_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let pos = |version| SyncPos { epoch: 7, version };
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .apply_imports(
                "west",
                pos(1),
                true,
                &[(k("a"), import(1)), (k("b"), import(2))],
                &[],
            )
            .unwrap();
        store
            .apply_imports("west", pos(2), false, &[(k("a"), import(9))], &[k("b")])
            .unwrap();
        store
            .apply_imports("eu", pos(1), true, &[(k("c"), import(3))], &[])
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let all = store.imports().unwrap();
    assert_eq!(all["west"].pos, pos(2));
    assert_eq!(all["west"].services.len(), 1);
    assert_eq!(all["west"].services[&k("a")].ports[0].1, 9);
    assert_eq!(store.sync_pos("west").unwrap(), pos(2));
    // A full update replaces everything from that peer only.
    store
        .apply_imports("west", pos(3), true, &[(k("z"), import(4))], &[])
        .unwrap();
    let all = store.imports().unwrap();
    assert_eq!(all["west"].services.keys().collect::<Vec<_>>(), [&k("z")]);
    assert_eq!(all["eu"].services.len(), 1);
}

#[test]
fn removing_a_peer_drops_its_imports_and_sync_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_peer(&peer("west")).unwrap();
    store
        .apply_imports(
            "west",
            SyncPos {
                epoch: 1,
                version: 1,
            },
            true,
            &[(k("a"), import(1))],
            &[],
        )
        .unwrap();
    store
        .apply_imports(
            "westx",
            SyncPos {
                epoch: 1,
                version: 1,
            },
            true,
            &[(k("a"), import(1))],
            &[],
        )
        .unwrap();
    assert!(store.remove_peer("west").unwrap());
    let all = store.imports().unwrap();
    assert!(!all.contains_key("west"));
    assert!(
        all.contains_key("westx"),
        "a peer whose name extends another's keeps its imports"
    );
    assert_eq!(store.sync_pos("west").unwrap(), SyncPos::default());
}

#[test]
fn export_times_and_vips_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .update_export_times(&[(k("a"), 10), (k("b"), 20)], &[])
        .unwrap();
    store.update_export_times(&[], &[k("a")]).unwrap();
    assert_eq!(
        store
            .export_times()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [(k("b"), 20)]
    );
    let ip: std::net::Ipv4Addr = "127.77.0.1".parse().unwrap();
    store
        .update_vips(&[(k("b").global_vip(), ip)], &[])
        .unwrap();
    assert_eq!(store.vips().unwrap()[&k("b").global_vip()], ip);
    store.update_vips(&[], &[k("b").global_vip()]).unwrap();
    assert!(store.vips().unwrap().is_empty());
}

#[test]
fn an_import_written_before_endpoint_totals_reads_back_as_fully_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // The JSON an earlier release stored: no `total_endpoints`.
    let old = br#"{"ports":[["http",8080]],"exported_at_unix_ms":5,"affinity":"local","healthy_endpoints":3}"#;
    store
        .write(|txn| {
            let mut t = txn.open_table(IMPORTS).map_err(db("open imports"))?;
            t.insert("west/demo/hello", old.as_slice())
                .map_err(db("insert"))?;
            Ok(())
        })
        .unwrap();
    let imports = store.imports().unwrap();
    let record = &imports["west"].services[&k("hello")];
    assert_eq!((record.healthy_endpoints, record.total_endpoints), (3, 0));
    let import = record.to_import().unwrap();
    assert_eq!(
        (import.healthy, import.total),
        (3, 3),
        "unknown total = healthy"
    );
}
