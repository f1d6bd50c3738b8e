//! The running registry on a real folder: inotify events, the debounce,
//! recovery of the watch. The rescan interval is far longer than every
//! deadline here, so what is seen in time was carried by an event (or, where
//! the watch is gone, by the unwatched fallback).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::{HELLO, key, world};
use crate::model::LocalSnapshot;
use crate::registry::Registry;
use crate::registry::static_files::StaticFiles;

/// Long enough for a loaded CI machine; polls return as soon as they hold.
const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    rx: watch::Receiver<Arc<LocalSnapshot>>,
    publishes: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the registry on `dir` and waits for its first publish.
async fn start(dir: &Path) -> Running {
    let (tx, mut rx) = watch::channel(Arc::new(LocalSnapshot::default()));
    let registry = StaticFiles::new(dir, Duration::from_secs(3600));
    let publishes = Arc::clone(&registry.publishes);
    let task = tokio::spawn(Box::new(registry).run(tx));
    tokio::time::timeout(DEADLINE, rx.changed())
        .await
        .expect("first publish in time")
        .expect("registry running");
    rx.borrow_and_update();
    Running {
        rx,
        publishes,
        task,
    }
}

impl Running {
    async fn until(&mut self, what: &str, check: impl FnMut(&Arc<LocalSnapshot>) -> bool) {
        let outcome = tokio::time::timeout(DEADLINE, self.rx.wait_for(check))
            .await
            .map(|r| r.is_ok());
        match outcome {
            Ok(true) => {}
            Ok(false) => panic!("registry stopped before: {what}"),
            Err(_) => panic!(
                "not within {DEADLINE:?}: {what}; now {:?}",
                self.rx.borrow()
            ),
        }
    }
}

fn has_problem_for(snap: &LocalSnapshot, path: &Path) -> bool {
    let path = path.display().to_string();
    snap.problems.iter().any(|p| p.source == path)
}

#[tokio::test]
async fn a_write_is_published_by_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = start(dir.path()).await;
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    // No problem: the folder is watched (a failed watch is reported).
    reg.until("hello published", |s| {
        s.problems.is_empty() && s.services.contains_key(&key("hello"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_publishes_few_times_and_ends_in_the_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = start(dir.path()).await;
    let before = reg.publishes.load(Ordering::Relaxed);
    let file = dir.path().join("burst.yaml");
    for i in 0..100 {
        std::fs::write(&file, world(&format!("v{i}"))).unwrap();
        // Let the registry's worker run between writes (the test has two).
        tokio::task::yield_now().await;
    }
    reg.until("the last write published", |s| {
        s.services.len() == 1 && s.services.contains_key(&key("v99"))
    })
    .await;
    let publishes = reg.publishes.load(Ordering::Relaxed) - before;
    // Without the debounce every write would be read: up to 100.
    eprintln!("{publishes} publishes for 100 writes");
    assert!(publishes <= 10, "{publishes} publishes for 100 writes");
}

#[tokio::test]
async fn deleting_a_file_withdraws_its_services() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    std::fs::write(dir.path().join("world.yaml"), world("world")).unwrap();
    let mut reg = start(dir.path()).await;
    assert_eq!(reg.rx.borrow().services.len(), 2);
    std::fs::remove_file(dir.path().join("hello.yaml")).unwrap();
    reg.until("hello withdrawn, world kept", |s| {
        !s.services.contains_key(&key("hello")) && s.services.contains_key(&key("world"))
    })
    .await;
}

#[tokio::test]
async fn an_unreadable_file_keeps_the_last_view_and_recovers_when_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    let mut reg = start(dir.path()).await;
    // A dangling symlink cannot be read even by root (chmod 000 can).
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("hello.yaml");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    reg.until("the read problem reported", |s| has_problem_for(s, &file))
        .await;
    assert_eq!(
        reg.rx.borrow().services[&key("hello")].healthy_endpoints(),
        1,
        "the last good version keeps serving"
    );
    std::fs::write(&target, world("hello")).unwrap();
    // The target is outside the folder, so no event names hello.yaml:
    // re-link it, as an operator's fix would.
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    reg.until("recovered", |s| {
        s.problems.is_empty()
            && s.services
                .get(&key("hello"))
                .is_some_and(|h| h.healthy_endpoints() == 0)
    })
    .await;
}

#[tokio::test]
async fn a_deleted_and_recreated_folder_is_watched_again() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello.yaml"), HELLO).unwrap();
    let mut reg = start(&dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
    reg.until("the folder problem reported", |s| has_problem_for(s, &dir))
        .await;
    assert!(
        reg.rx.borrow().services.contains_key(&key("hello")),
        "a folder gone withdraws nothing"
    );
    std::fs::create_dir(&dir).unwrap();
    reg.until("the folder read again", |s| {
        s.problems.is_empty() && s.services.is_empty()
    })
    .await;
    // Events flow again from the new folder's watch.
    std::fs::write(dir.join("world.yaml"), world("world")).unwrap();
    reg.until("a write in the new folder", |s| {
        s.services.contains_key(&key("world"))
    })
    .await;
}

#[tokio::test]
async fn a_folder_path_replaced_by_a_file_is_reported_and_recovers() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello.yaml"), HELLO).unwrap();
    let mut reg = start(&dir).await;
    let aside = base.path().join("aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, "not a folder").unwrap();
    reg.until("the folder problem reported", |s| {
        has_problem_for(s, &dir) && s.services.contains_key(&key("hello"))
    })
    .await;
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&aside, &dir).unwrap();
    std::fs::write(dir.join("world.yaml"), world("world")).unwrap();
    reg.until("recovered with the new file", |s| {
        s.problems.is_empty() && s.services.len() == 2
    })
    .await;
}

#[tokio::test]
async fn files_in_a_new_subfolder_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = start(dir.path()).await;
    // Written right after the mkdir, possibly before the sub-folder's
    // own watch exists: the folder's create event covers them.
    let team = dir.path().join("team/deep");
    std::fs::create_dir_all(&team).unwrap();
    std::fs::write(team.join("a.yaml"), world("a")).unwrap();
    reg.until("a seen", |s| s.services.contains_key(&key("a")))
        .await;
    std::fs::write(team.join("b.yaml"), world("b")).unwrap();
    reg.until("b seen through the sub-folder's watch", |s| {
        s.services.contains_key(&key("b"))
    })
    .await;
}
