//! A malformed config fails `fedctl run` with an error naming the field,
//! before anything is created or bound.

use fedmesh_tests::Federation;

fn run_with(edit: impl FnOnce(String) -> String) -> (String, bool) {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = &fed.clusters[0];
    let cfg = edit(std::fs::read_to_string(&c.config).unwrap());
    c.write_config(&cfg);
    let out = c.run_expect_failure();
    assert!(!out.ok, "fedctl run accepted:\n{cfg}");
    assert!(
        !out.stderr.contains("listening on"),
        "it bound a port:\n{}",
        out.stderr
    );
    let created = c.dir.join("data").exists();
    (out.stderr, created)
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let (err, created) =
        run_with(|c| c.replace("  gatewayListen:", "  bogusField: 1\n  gatewayListen:"));
    assert!(err.contains("bogusField"), "{err}");
    assert!(err.contains("config.yaml:7"), "line number missing: {err}");
    assert!(!created, "dataDir was created before validation");
}

#[test]
fn bad_address_is_named() {
    let (err, created) = run_with(|c| {
        let line = c
            .lines()
            .find(|l| l.contains("peeringListen"))
            .unwrap()
            .to_string();
        c.replace(&line, "  peeringListen: 127.0.0.1:99999")
    });
    assert!(err.contains("control.peeringListen"), "{err}");
    assert!(err.contains("99999"), "{err}");
    assert!(!created);
}

#[test]
fn duplicate_listen_port_names_both_fields() {
    let (err, created) = run_with(|c| {
        let peering = c
            .lines()
            .find(|l| l.contains("peeringListen"))
            .unwrap()
            .trim()
            .trim_start_matches("peeringListen: ")
            .to_string();
        let dns = c
            .lines()
            .find(|l| l.contains("  listen:"))
            .unwrap()
            .to_string();
        c.replace(&dns, &format!("  listen: {peering}"))
    });
    assert!(
        err.contains("control.peeringListen") && err.contains("dns.listen"),
        "{err}"
    );
    assert!(!created);
}

#[test]
fn non_loopback_admin_listen_is_refused() {
    let (err, created) = run_with(|c| {
        let line = c
            .lines()
            .find(|l| l.contains("  adminListen:"))
            .unwrap()
            .to_string();
        c.replacen(&line, "  adminListen: 0.0.0.0:15000", 1)
    });
    assert!(err.contains("control.adminListen"), "{err}");
    assert!(!created);
}
