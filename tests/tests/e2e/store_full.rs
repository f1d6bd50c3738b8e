//! A full disk under a running control plane: west's dataDir is a small
//! tmpfs (mounted for the test, root only; without root the test says so
//! loudly and passes), filled while east keeps exporting. West's store
//! writes fail, `fedctl check` says so with the fix, `fedctl peers` still
//! answers; once space is back the store recovers by itself, every export
//! of east reaches west, and after a `kill -9` west still has its peer and
//! what it acknowledged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(30);

/// A tmpfs mounted on `dir`, unmounted (lazily) on drop, also when the
/// test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it, or says loudly why not and returns `None`.
    fn mount_or_skip(dir: &Path, size: &str) -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let mounted = root
            && std::fs::create_dir_all(dir).is_ok()
            && Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "tmpfs",
                ])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: mounting a small tmpfs needs root (CI runs this as root)");
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full (bounded).
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the ballast");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        if file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_err()
        {
            return;
        }
    }
    panic!("the tmpfs never filled up");
}

fn export(fed: &Federation, n: usize) {
    let yaml = service_yaml("demo", &format!("s{n}"), "tcp", 80, 8080, &[EXPORT], &[]);
    fed.get("east").write_manifest(&format!("s{n}.yaml"), &yaml);
}

fn store_line(fed: &Federation) -> (bool, String) {
    let out = fed.get("west").fedctl(&["check"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("store:"))
        .unwrap_or_default()
        .to_string();
    (line.starts_with("ok"), line)
}

#[test]
fn a_full_data_dir_is_reported_and_recovers_by_itself_losing_nothing_acked() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    let data = fed.get("west").dir.join("data");
    // Declared after `fed`, so it is unmounted before the folder goes.
    let Some(_fs) = Tmpfs::mount_or_skip(&data, "6m") else {
        return;
    };
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.wait_connected("west", "east", SYNC);
    export(&fed, 0);
    wait_until("west imports s0", SYNC, || {
        fed.get("west").service("demo/s0").is_some()
    });
    let (ok, line) = store_line(&fed);
    assert!(ok, "the store is healthy first: {line}");

    let ballast = data.join("ballast");
    fill(&ballast);
    let mut n = 1;
    wait_until("west's check reports the failed write", SYNC, || {
        if n < 40 {
            export(&fed, n);
            n += 1;
        }
        let (ok, line) = store_line(&fed);
        let failed =
            !ok && line.contains("store: write failed") && line.contains("free space in dataDir");
        if failed {
            println!("while full: {line}");
        }
        failed
    });
    let peers = fed.get("west").fedctl(&["peers"]);
    assert!(peers.ok, "fedctl peers answers while the disk is full");

    std::fs::remove_file(&ballast).expect("free the space");
    wait_until("west's store recovers by itself", SYNC, || {
        store_line(&fed).0
    });
    wait_until("every export of east reaches west", SYNC, || {
        (0..n).all(|i| fed.get("west").service(&format!("demo/s{i}")).is_some())
    });

    // What west acknowledged is on disk: after kill -9 it still has its
    // peer and every import, before east even reconnects.
    fed.get_mut("east").kill9();
    fed.get_mut("west").kill9();
    fed.get_mut("west").start();
    let west = fed.get("west");
    assert!(
        west.peers().iter().any(|p| p["name"] == "east"),
        "east is still a peer"
    );
    for i in 0..n {
        assert!(
            west.service(&format!("demo/s{i}")).is_some(),
            "import demo/s{i} survived the restart"
        );
    }
}
