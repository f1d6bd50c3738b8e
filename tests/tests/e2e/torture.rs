//! Torture: `kill -9` of a control plane at random moments (seeded, the
//! seed printed) while exports change, and a registry folder full of
//! things that are not manifests. (`kill -9` during joins, 20 trials, is
//! `join_safety.rs`.)
//!
//! Exports: east adds services while west, which imports them, or east
//! itself is killed at a random moment. What west showed its operator
//! before the kill (its acknowledged imports) is still there after the
//! restart, before east can send anything again; the peering comes back
//! with no re-join, and west converges on exactly east's exports.

use std::collections::BTreeSet;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);
/// Kills while exports change.
const TRIALS: u32 = 20;

/// xorshift: the moments need spread, not quality; the seed replays a run.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("FEDMESH_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9)
        })
}

/// The `ns/name` of every service `cluster` knows that east serves.
fn from_east(fed: &Federation, cluster: &str) -> BTreeSet<String> {
    fed.get(cluster)
        .services()
        .into_iter()
        .filter(|s| {
            s["clusters"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "east"))
        })
        .map(|s| {
            format!(
                "{}/{}",
                s["namespace"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn export(fed: &Federation, name: &str) {
    let yaml = service_yaml("demo", name, "tcp", 80, 8080, &[EXPORT], &[]);
    fed.get("east")
        .write_manifest(&format!("{name}.yaml"), &yaml);
}

#[test]
fn kill_9_while_exports_change_loses_nothing_acknowledged_and_needs_no_rejoin() {
    let seed = seed();
    eprintln!("export torture seed {seed} (set FEDMESH_TORTURE_SEED to replay)");
    let mut moments = Moments(seed);
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("west", "east", SYNC);
    let mut exported = BTreeSet::new();
    let started = Instant::now();
    for trial in 0..TRIALS {
        for k in 0..2 {
            let name = format!("t{trial}x{k}");
            export(&fed, &name);
            exported.insert(format!("demo/{name}"));
        }
        // Watch west until the random moment: what it shows is acked.
        let moment = Instant::now() + Duration::from_millis(moments.next_below(400));
        let mut seen = from_east(&fed, "west");
        while Instant::now() < moment {
            seen = from_east(&fed, "west");
        }
        let victim = if trial % 2 == 0 { "west" } else { "east" };
        if victim == "west" {
            // East frozen: after the restart west has only its store.
            fed.get("east").freeze();
            fed.get_mut("west").kill9();
            fed.get_mut("west").start();
            let stored = from_east(&fed, "west");
            fed.get("east").thaw();
            let lost: Vec<_> = seen.difference(&stored).collect();
            assert!(
                lost.is_empty(),
                "trial {trial} (seed {seed}): west lost acknowledged imports {lost:?}"
            );
        } else {
            fed.get_mut("east").kill9();
            fed.get_mut("east").start();
        }
        let want = exported.clone();
        wait_until(
            &format!("trial {trial} (seed {seed}, killed {victim}): west converges"),
            SYNC,
            || from_east(&fed, "west") == want,
        );
        fed.wait_connected("west", "east", SYNC);
    }
    eprintln!(
        "{TRIALS} kill -9 while exports changed: nothing acknowledged lost, no re-join, {} exports converged in {:?}",
        exported.len(),
        started.elapsed()
    );
}

#[test]
fn a_registry_folder_of_special_huge_and_changing_files_never_freezes_the_registry() {
    let mut fed = Federation::standard(1, "");
    let east = fed.get_mut("east");
    let dir = east.services_dir();
    std::fs::create_dir_all(&dir).expect("services dir");
    let fifo = dir.join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "mkfifo");
    let _socket = UnixListener::bind(dir.join("socket.yaml")).expect("a unix socket");
    std::os::unix::fs::symlink("loop-b.yaml", dir.join("loop-a.yaml")).expect("symlink");
    std::os::unix::fs::symlink("loop-a.yaml", dir.join("loop-b.yaml")).expect("symlink");
    // Past the 16 MiB a manifest may have.
    let huge = std::fs::File::create(dir.join("huge.yaml")).expect("huge file");
    huge.set_len(17 << 20).expect("grow the huge file");
    let east = fed.get("east");
    east.write_manifest(
        "good.yaml",
        &service_yaml("demo", "good", "tcp", 80, 8080, &[EXPORT], &[]),
    );
    wait_until("the good manifest is read beside the others", SYNC, || {
        east.service("demo/good").is_some()
    });
    // A file rewritten many times while the registry reads it: every read
    // sees a whole version (or a clear problem), never a frozen registry.
    let churn = dir.join("churn.yaml");
    let versions = ["a", "b"].map(|n| {
        service_yaml(
            "demo",
            &format!("churn-{n}"),
            "tcp",
            80,
            8080,
            &[EXPORT],
            &[],
        )
    });
    for i in 0..200 {
        std::fs::write(&churn, &versions[i % 2]).expect("rewrite in place");
    }
    east.write_manifest(
        "after.yaml",
        &service_yaml("demo", "after", "tcp", 80, 8080, &[EXPORT], &[]),
    );
    wait_until(
        "a manifest written after all that is still picked up",
        SYNC,
        || east.service("demo/after").is_some(),
    );
    let check = east.fedctl(&["check"]);
    let problems: Vec<&str> = check
        .stdout
        .lines()
        .filter(|l| l.contains("fifo.yaml") || l.contains("huge.yaml"))
        .collect();
    println!(
        "fedctl check on the special files:\n{}",
        problems.join("\n")
    );
    assert!(
        check.stdout.contains("fifo.yaml") && check.stdout.contains("huge.yaml"),
        "the special files are reported by name:\n{}",
        check.stdout
    );
    // Removing them clears the problems; the registry never froze.
    for f in [
        "fifo.yaml",
        "socket.yaml",
        "loop-a.yaml",
        "loop-b.yaml",
        "huge.yaml",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    wait_until("the problems clear once the files are gone", SYNC, || {
        let c = east.fedctl(&["check"]);
        !c.stdout.contains("fifo.yaml") && !c.stdout.contains("huge.yaml")
    });
}
