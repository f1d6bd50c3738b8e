use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
}

fn fixture() -> (Fixture, CaRotation) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
    store.put_ca(ca.cert_pem(), ca.key_pem()).unwrap();
    let rotation = CaRotation::load(store.clone(), ca, "east", false).unwrap();
    (Fixture { _dir: dir, store }, rotation)
}

fn fleet(peers: &[&str], gateways: &[(&str, Option<[u8; 32]>)]) -> Fleet {
    Fleet {
        peers: peers.iter().map(|p| p.to_string()).collect(),
        gateways: gateways.iter().map(|(g, p)| (g.to_string(), *p)).collect(),
    }
}

fn reload(f: &Fixture) -> CaRotation {
    let (cert, key) = f.store.ca().unwrap().unwrap();
    let ca = ClusterCa::from_pem(&cert, &key, "east.fedmesh").unwrap();
    CaRotation::load(f.store.clone(), ca, "east", false).unwrap()
}

#[test]
fn start_publishes_both_roots_and_the_old_one_still_signs() {
    let (_f, rotation) = fixture();
    let old = rotation.view();
    assert_eq!((old.phase, old.roots.len()), (Phase::Idle, 1));
    rotation.start(false, false).unwrap();
    let view = rotation.view();
    assert_eq!(view.phase, Phase::Overlap);
    assert_eq!(view.roots_pem[0], old.roots_pem[0]);
    assert_eq!(view.roots.len(), 2);
    assert_ne!(view.roots_pem[1], old.roots_pem[0]);
    assert_eq!(view.signer.pin(), old.signer.pin());
    assert_ne!(view.digest, old.digest);
}

#[test]
fn the_digest_does_not_depend_on_the_order_of_the_roots() {
    let (_f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let mut roots = rotation.view().roots.clone();
    let forward = roots_digest(&roots);
    roots.reverse();
    assert_eq!(roots_digest(&roots), forward);
    assert_ne!(roots_digest(&roots[..1]), forward);
}

#[test]
fn the_new_root_signs_only_once_every_peer_acknowledged() {
    let (_f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let view = rotation.view();
    let peers = fleet(&["eu", "west"], &[]);
    assert!(rotation.acked("west", &view.digest).unwrap());
    match rotation.issue(&peers, Duration::ZERO) {
        Err(RotationError::PeersNotAcked { peers }) => assert_eq!(peers, ["eu"]),
        other => panic!("issued without eu's ack: {other:?}"),
    }
    // An ack of another bundle counts for nothing.
    assert!(!rotation.acked("eu", "00").unwrap());
    assert!(rotation.issue(&peers, Duration::ZERO).is_err());
    assert!(rotation.acked("eu", &view.digest).unwrap());
    assert!(rotation.issue(&peers, Duration::ZERO).unwrap());
    let issued = rotation.view();
    assert_eq!(issued.phase, Phase::Issued);
    assert_eq!(
        issued.roots_pem, view.roots_pem,
        "both roots stay published"
    );
    assert_eq!(issued.signer.cert_pem(), view.roots_pem[1]);
}

#[test]
fn the_switch_waits_for_the_settle_time_after_the_last_ack() {
    let (_f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let peers = fleet(&["west"], &[]);
    rotation.acked("west", &rotation.view().digest).unwrap();
    assert!(!rotation.issue(&peers, Duration::from_secs(3600)).unwrap());
    assert_eq!(rotation.view().phase, Phase::Overlap);
}

#[test]
fn force_issues_without_acknowledgements() {
    let (_f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let peers = fleet(&["old-release"], &[]);
    assert!(rotation.issue(&peers, Duration::ZERO).is_err());
    rotation.start(false, true).unwrap();
    assert!(rotation.issue(&peers, Duration::from_secs(3600)).unwrap());
}

#[test]
fn finish_waits_for_every_gateway_to_serve_a_leaf_of_the_new_root() {
    let (_f, rotation) = fixture();
    rotation.start(false, true).unwrap();
    let old_pin = rotation.signer().pin();
    match rotation.finish(&fleet(&[], &[("gw", Some(old_pin))])) {
        Err(RotationError::GatewaysOnOldRoot { gateways }) => assert_eq!(gateways, ["gw"]),
        other => panic!("finished in overlap: {other:?}"),
    }
    rotation.issue(&fleet(&[], &[]), Duration::ZERO).unwrap();
    let new_pin = rotation.signer().pin();
    let on_old = fleet(&[], &[("gw-1", Some(new_pin)), ("gw-2", Some(old_pin))]);
    match rotation.finish(&on_old) {
        Err(RotationError::GatewaysOnOldRoot { gateways }) => assert_eq!(gateways, ["gw-2"]),
        other => panic!("finished with gw-2 on the old root: {other:?}"),
    }
    let unknown = fleet(&[], &[("gw-1", None)]);
    assert!(
        rotation.finish(&unknown).is_err(),
        "an unknown leaf is not proof"
    );
    rotation
        .finish(&fleet(&[], &[("gw-1", Some(new_pin))]))
        .unwrap();
    let view = rotation.view();
    assert_eq!(view.phase, Phase::Finished);
    assert_eq!(view.roots_pem, [view.signer.cert_pem().to_string()]);
    assert!(rotation.finish(&fleet(&[], &[])).is_err());
}

#[test]
fn auto_goes_through_every_phase_by_itself() {
    let (_f, rotation) = fixture();
    rotation.start(true, false).unwrap();
    let digest = rotation.view().digest.clone();
    rotation.acked("west", &digest).unwrap();
    let mut fleet = fleet(&["west"], &[]);
    // The switch waits for SETTLE after the last ack: step until it is done.
    let deadline = std::time::Instant::now() + SETTLE * 5;
    while rotation.view().phase == Phase::Overlap {
        assert!(std::time::Instant::now() < deadline, "never issued");
        rotation.step(&fleet);
        std::thread::sleep(Duration::from_millis(20));
    }
    fleet.gateways = vec![("gw".into(), Some(rotation.signer().pin()))];
    rotation.step(&fleet);
    assert_eq!(rotation.view().phase, Phase::Finished);
}

#[test]
fn a_restart_resumes_the_rotation_where_it_stood() {
    let (f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let overlap = rotation.view();
    rotation.acked("west", &overlap.digest).unwrap();
    let again = reload(&f);
    assert_eq!(again.view().phase, Phase::Overlap);
    assert_eq!(again.view().roots_pem, overlap.roots_pem);
    assert!(again.record().unwrap().acked.contains("west"));
    again.issue(&fleet(&["west"], &[]), Duration::ZERO).unwrap();
    let issued = reload(&f).view();
    assert_eq!(issued.phase, Phase::Issued);
    assert_eq!(issued.signer.cert_pem(), overlap.roots_pem[1]);
    assert_eq!(issued.roots_pem, overlap.roots_pem);
}

#[test]
fn a_second_start_is_refused_while_one_runs() {
    let (_f, rotation) = fixture();
    rotation.start(false, false).unwrap();
    let err = rotation.start(false, false).unwrap_err();
    assert!(err.to_string().contains("phase overlap"), "{err}");
}

#[test]
fn a_ca_from_config_files_is_never_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
    let rotation = CaRotation::load(store, ca, "east", true).unwrap();
    let err = rotation.start(true, false).unwrap_err();
    assert!(matches!(err, RotationError::External));
    assert!(err.to_string().contains("ca.certFile"), "{err}");
}

#[test]
fn the_issuer_pin_of_a_chain_is_its_root() {
    let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
    let leaf = ca.issue_control_leaf(super::super::LEAF_LIFETIME).unwrap();
    assert_eq!(issuer_pin(&leaf.chain), Some(ca.pin()));
    assert_eq!(issuer_pin(&leaf.chain[..1]), None);
}
