use super::*;

fn ca() -> ClusterCa {
    ClusterCa::generate("east", "east.fedmesh").expect("generate CA")
}

#[test]
fn control_leaf_carries_the_control_spiffe_id_and_chains_to_the_ca() {
    let ca = ca();
    let leaf = ca.issue_control_leaf(LEAF_LIFETIME).unwrap();
    let info = identity::inspect_cert(&leaf.chain[0]).unwrap();
    assert_eq!(
        info.spiffe_id.unwrap().to_string(),
        "spiffe://east.fedmesh/control"
    );
    assert!(!info.is_ca);
    assert_eq!(leaf.chain[1], *ca.cert_der());
    assert!(leaf.key.is_some());
    let life = info.not_after - OffsetDateTime::now_utc();
    assert!(life <= time::Duration::hours(24) && life > time::Duration::hours(23));
}

#[test]
fn gateway_csr_gets_the_gateway_identity_whatever_it_asks_for() {
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    // The CSR asks for another cluster's control identity; the CA ignores it.
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        rcgen::string::Ia5String::try_from("spiffe://west.fedmesh/control").unwrap(),
    )];
    let csr = params.serialize_request(&key).unwrap();
    let issued = ca
        .sign_gateway_csr("gw-1", csr.der(), LEAF_LIFETIME)
        .unwrap();
    let info = identity::inspect_cert(&issued.chain[0]).unwrap();
    assert_eq!(
        info.spiffe_id.unwrap().to_string(),
        "spiffe://east.fedmesh/gateway/gw-1"
    );
    assert!(issued.key.is_none());
    assert!(issued.chain_pem.matches("BEGIN CERTIFICATE").count() == 2);
}

#[test]
fn tampered_csr_is_refused() {
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let mut der = csr.der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert!(ca.sign_gateway_csr("gw-1", &der, LEAF_LIFETIME).is_err());
    assert!(
        ca.sign_gateway_csr("gw-1", b"not a csr", LEAF_LIFETIME)
            .is_err()
    );
}

#[test]
fn gateway_name_that_is_not_a_dns_label_is_refused() {
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let err = ca
        .sign_gateway_csr("../control", csr.der(), LEAF_LIFETIME)
        .unwrap_err();
    assert!(err.to_string().contains("../control"), "{err}");
}

#[test]
fn ca_reloads_from_its_own_pem_with_the_same_pin() {
    let ca = ca();
    let again = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem(), "east.fedmesh").unwrap();
    assert_eq!(ca.pin(), again.pin());
    assert_eq!(
        ca.pin(),
        identity::spki_sha256(ca.cert_der()).unwrap(),
        "the pin is the SHA-256 of the certificate's public key"
    );
}

#[test]
fn key_of_another_ca_is_refused() {
    let east = ca();
    let west = ClusterCa::generate("west", "west.fedmesh").unwrap();
    let err = ClusterCa::from_pem(east.cert_pem(), west.key_pem(), "east.fedmesh").unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn a_leaf_is_refused_as_a_ca() {
    let ca = ca();
    let leaf = ca.issue_control_leaf(LEAF_LIFETIME).unwrap();
    let pem = pem_encode("CERTIFICATE", &leaf.chain[0]);
    let key = KeyPair::generate().unwrap().serialize_pem();
    let err = ClusterCa::from_pem(&pem, &key, "east.fedmesh").unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");
}

#[test]
fn renewal_is_due_at_two_thirds_of_life() {
    let start = OffsetDateTime::UNIX_EPOCH;
    let end = start + time::Duration::hours(24);
    assert_eq!(renewal_time(start, end), start + time::Duration::hours(16));
}

#[test]
fn dns_labels() {
    assert!(is_dns_label("gw-1"));
    assert!(!is_dns_label("Gw"));
    assert!(!is_dns_label("-a"));
    assert!(!is_dns_label(""));
    assert!(!is_dns_label(&"a".repeat(64)));
}
