//! The `fedgw` binary's command line without a control plane. (Having an
//! integration test here also makes `cargo test --workspace` build the
//! `fedgw` binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn fedgw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedgw"))
        .args(args)
        .output()
        .expect("run fedgw")
}

#[test]
fn config_is_required() {
    let out = fedgw(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn a_bad_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("east.yaml");
    std::fs::write(&path, "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\ngateway: { probeFailures: many }\n").unwrap();
    let out = fedgw(&["--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.probeFailures"), "{err}");
}

#[test]
fn a_missing_bootstrap_token_says_who_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("east.yaml");
    std::fs::write(
        &path,
        "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
    )
    .unwrap();
    let out = fedgw(&["--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bootstrapTokenFile") && err.contains("fedctl run"),
        "{err}"
    );
}
