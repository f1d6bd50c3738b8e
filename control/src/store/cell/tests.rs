//! A real full filesystem: a small tmpfs mounted for the test (root only;
//! the test says loudly when it cannot run), filled until redb's writes
//! fail with ENOSPC, then freed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::model::Locality;
use crate::store::{PeerRecord, Role, Store};

/// A tmpfs mounted on a temp folder, unmounted on drop (also when the
/// test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mount_or_skip(size: &str) -> Option<Tmpfs> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let fs = root.then(|| Tmpfs::mount(size)).flatten();
    if fs.is_none() {
        eprintln!("SKIPPED: this test needs root to mount a small tmpfs (CI runs it as root)");
    }
    fs
}

fn peer(name: &str) -> PeerRecord {
    PeerRecord {
        name: name.into(),
        trust_domain: format!("{name}.fedmesh"),
        locality: Locality {
            region: "r".into(),
            zone: "z".into(),
        },
        // Big enough that a few hundred fill the disk.
        roots_pem: vec!["x".repeat(16 * 1024)],
        role: Role::Acceptor,
        endpoint: "127.0.2.1:15017".into(),
        gateway_address: "127.0.2.1:15443".into(),
        joined_unix_ms: 1,
    }
}

/// Writes `path` until the filesystem is full.
fn fill(path: &PathBuf) {
    let mut file = std::fs::File::create(path).expect("create the ballast");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        if file.write_all(&chunk).is_err() {
            return;
        }
    }
    panic!("the tmpfs never filled up");
}

#[test]
fn a_full_disk_fails_writes_then_the_store_recovers_with_nothing_acked_lost() {
    let Some(fs) = mount_or_skip("4m") else {
        return;
    };
    let data = fs.path().join("data");
    let store = Store::open(&data).expect("open on the tmpfs");
    store.put_peer(&peer("before")).expect("a write with space");
    let ballast = fs.path().join("ballast");
    fill(&ballast);
    let mut acked = vec!["before".to_string()];
    let mut failed = None;
    for i in 0..1_000 {
        let name = format!("p{i}");
        match store.put_peer(&peer(&name)) {
            Ok(()) => acked.push(name),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let error = failed.expect("a write fails on a full disk");
    let cause = store.write_failure().expect("the failure is reported");
    assert!(cause.contains("No space left"), "cause: {cause} ({error})");
    // Still full: later writes keep failing, with the reason, no panic.
    assert!(store.put_peer(&peer("while-full")).is_err());
    std::fs::remove_file(&ballast).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.write_failure().is_some() {
        assert!(Instant::now() < deadline, "the store never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    store.put_peer(&peer("after")).expect("writes work again");
    acked.push("after".into());
    drop(store);
    let store = Store::open(&data).expect("reopen");
    let stored: Vec<String> = store.peers().unwrap().into_iter().map(|p| p.name).collect();
    for name in &acked {
        assert!(stored.contains(name), "acknowledged {name} was lost");
    }
    assert!(!stored.contains(&"while-full".to_string()));
}

#[test]
fn a_read_only_data_dir_is_refused_at_open_with_the_reason() {
    let Some(fs) = mount_or_skip("1m") else {
        return;
    };
    let data = fs.path().join("data");
    Store::open(&data)
        .expect("open on the tmpfs")
        .put_peer(&peer("west"))
        .expect("a write");
    // Linux refuses to remount read-only while a file is open for writing,
    // so the store is closed first; what an operator sees is the restart.
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(remounted, "remount the tmpfs read-only");
    let error = Store::open(&data).expect_err("a read-only store does not open");
    assert!(
        error.to_string().contains("Read-only file system"),
        "error: {error}"
    );
}
