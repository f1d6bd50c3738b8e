//! The `fedctl` binary's command line, without a running control plane.
//! (Having an integration test here also makes `cargo test --workspace`
//! build the `fedctl` binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn fedctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedctl"))
        .args(args)
        .env_remove("FEDCTL_ADMIN")
        .output()
        .expect("run fedctl")
}

#[test]
fn help_lists_every_subcommand() {
    let out = fedctl(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "token", "join", "leave", "peers", "check"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
}

#[test]
fn run_without_config_says_what_to_pass() {
    let out = fedctl(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn client_command_without_a_control_plane_says_where_it_looked() {
    // Port 9 on loopback: nothing listens there.
    let out = fedctl(&["peers", "--admin", "127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:9") && err.contains("fedctl run"),
        "{err}"
    );
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    let out = fedctl(&["token", "create", "-o", "json", "--admin", "127.0.0.1:9"]);
    // Parsing succeeded; it failed only to reach the control plane.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn a_bad_ttl_is_refused_before_connecting() {
    let out = fedctl(&["token", "create", "--ttl", "soon", "--admin", "127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ttl"), "{err}");
}
