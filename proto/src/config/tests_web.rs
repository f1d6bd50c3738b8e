//! `control.webListen`: optional, parsed as `IP:PORT`, and checked against
//! the other listeners like them.

use std::path::Path;

use super::*;

const MINIMAL: &str = "\
cluster: east
locality: { region: us-east, zone: us-east-1a }
dataDir: data
";

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(
        &format!("{MINIMAL}{extra}"),
        Path::new("/etc/fedmesh/east.yaml"),
    )
}

#[test]
fn web_listen_is_not_served_by_default() {
    let c = parse("").expect("valid");
    assert_eq!(c.control.web_listen, None);
}

#[test]
fn web_listen_parses_an_address() {
    let c = parse("control:\n  webListen: 127.0.1.1:15080\n").expect("valid");
    assert_eq!(
        c.control.web_listen,
        Some("127.0.1.1:15080".parse().expect("addr"))
    );
}

#[test]
fn web_listen_that_is_not_an_address_names_the_field() {
    let e = parse("control:\n  webListen: localhost\n").expect_err("invalid");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("control.webListen", Some(5)),
        "{e}"
    );
    assert!(e.to_string().contains("IP:PORT"), "{e}");
}

#[test]
fn web_listen_on_the_admin_port_is_a_conflict() {
    let e = parse("control:\n  adminListen: 127.0.1.1:15000\n  webListen: 127.0.1.1:15000\n")
        .expect_err("conflict");
    assert_eq!(e.field, "control.webListen", "{e}");
    assert!(e.to_string().contains("control.adminListen"), "{e}");
}

#[test]
fn web_listen_on_a_wildcard_conflicts_with_the_gateway_admin_port() {
    let e = parse("control:\n  webListen: 0.0.0.0:15090\n").expect_err("conflict");
    assert!(e.to_string().contains("gateway.adminListen"), "{e}");
}
