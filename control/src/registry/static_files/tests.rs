//! The folder rules, driven through [`Folder`] directly; `watching` drives
//! the running registry on a real folder with real file events.

mod routes;
mod watching;

use std::path::Path;

use super::*;
use crate::model::ServiceKey;

const HELLO: &str = r#"apiVersion: v1
kind: Service
metadata: { name: hello, namespace: demo, annotations: { fedmesh.io/export: "true" } }
spec: { ports: [ { name: http, port: 8080 } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: hello-1, namespace: demo, labels: { kubernetes.io/service-name: hello } }
addressType: IPv4
ports: [ { name: http, port: 18080 } ]
endpoints: [ { addresses: ["127.0.0.10"] } ]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: hello, namespace: demo }
"#;

fn world(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{ name: {name}, namespace: demo }}\nspec: {{ ports: [ {{ port: 80 }} ] }}\n"
    )
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("demo", name)
}

#[test]
fn good_files_load_and_a_bad_one_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    std::fs::write(dir.path().join("world.yml"), world("world")).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: Service\n  bad: [indent",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrong.yaml"),
        "apiVersion: v1\nkind: Service\nspec: 7\n",
    )
    .unwrap();
    let mut folder = Folder::new(dir.path());
    assert!(folder.rescan());
    let snap = folder.snapshot();
    assert!(snap.services[&key("hello")].export.is_some());
    assert_eq!(snap.services[&key("hello")].healthy_endpoints(), 1);
    assert!(snap.services.contains_key(&key("world")));
    let sources: Vec<&str> = snap.problems.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(snap.problems.len(), 2, "{:?}", snap.problems);
    assert!(sources.iter().any(|s| s.ends_with("broken.yaml")));
    assert!(sources.iter().any(|s| s.ends_with("wrong.yaml")));
    assert!(snap.problems.iter().all(|p| p.message.contains("skipped")));
}

#[test]
fn dotfiles_other_extensions_and_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), world("hidden")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), world("notes")).unwrap();
    std::fs::create_dir(dir.path().join("team")).unwrap();
    std::fs::write(dir.path().join("team/nested.yaml"), world("nested")).unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/x.yaml"), world("git")).unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    let snap = folder.snapshot();
    let names: Vec<&str> = snap.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["nested"]);
}

#[test]
fn duplicates_are_reported_and_the_first_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), world("dup")).unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        world("dup").replace("port: 80", "port: 81"),
    )
    .unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    let snap = folder.snapshot();
    assert_eq!(snap.services[&key("dup")].ports[0].port, 80);
    assert_eq!(snap.problems.len(), 1);
    assert!(
        snap.problems[0].message.contains("already defined in"),
        "{:?}",
        snap.problems
    );
}

#[test]
fn edits_and_removals_are_seen_and_unchanged_scans_report_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    let mut folder = Folder::new(dir.path());
    assert!(folder.rescan());
    assert!(!folder.rescan(), "nothing changed");
    std::fs::write(
        &file,
        HELLO.replace(
            "fedmesh.io/export: \"true\"",
            "fedmesh.io/export: \"false\"",
        ),
    )
    .unwrap();
    assert!(folder.rescan());
    assert!(folder.snapshot().services[&key("hello")].export.is_none());
    std::fs::remove_file(&file).unwrap();
    assert!(folder.rescan());
    assert!(folder.snapshot().services.is_empty());
}

#[test]
fn a_missing_folder_is_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut folder = Folder::new(dir.path().join("nope"));
    folder.rescan();
    let snap = folder.snapshot();
    assert!(
        snap.problems[0].message.contains("registry.path"),
        "{:?}",
        snap.problems
    );
}

#[test]
fn a_file_with_thousands_of_documents_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = (0..5000).map(|i| world(&format!("svc-{i}"))).collect();
    std::fs::write(dir.path().join("many.yaml"), text.join("---\n")).unwrap();
    let mut folder = Folder::new(dir.path());
    assert!(folder.rescan());
    let snap = folder.snapshot();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert_eq!(snap.services.len(), 5000);
}

fn snapshot_after_rescan(folder: &mut Folder) -> LocalSnapshot {
    folder.rescan();
    folder.snapshot()
}

fn problem_about<'a>(snap: &'a LocalSnapshot, path: &Path) -> Option<&'a crate::model::Problem> {
    let path = path.display().to_string();
    snap.problems.iter().find(|p| p.source == path)
}

#[test]
fn a_malformed_edit_keeps_the_last_good_version_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    let mut folder = Folder::new(dir.path());
    assert!(snapshot_after_rescan(&mut folder).problems.is_empty());
    std::fs::write(&file, "kind: Service\n  bad: [indent").unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(
        snap.services[&key("hello")].export.is_some(),
        "still served"
    );
    let p = problem_about(&snap, &file).expect("reported");
    assert!(p.message.contains("not valid YAML"), "{p}");
    assert!(p.message.contains("last good version keeps serving"), "{p}");
    std::fs::write(&file, world("hello")).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(
        snap.services[&key("hello")].export.is_none(),
        "the fix is read"
    );
}

#[test]
fn a_dangling_symlink_keeps_the_last_good_version_until_fixed() {
    // Unlike chmod 000, this fails for root too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, HELLO).unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.txt"), &file).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert_eq!(snap.services[&key("hello")].healthy_endpoints(), 1, "kept");
    let p = problem_about(&snap, &file).expect("reported");
    assert!(p.message.contains("cannot read"), "{p}");
    assert!(p.message.contains("keeps serving"), "{p}");
    std::fs::write(dir.path().join("gone.txt"), world("hello")).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert_eq!(
        snap.services[&key("hello")].healthy_endpoints(),
        0,
        "target read"
    );
}

#[test]
fn a_folder_path_that_is_a_file_keeps_the_last_view_and_recovers() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello.yaml"), HELLO).unwrap();
    let mut folder = Folder::new(&dir);
    folder.rescan();
    std::fs::rename(&dir, base.path().join("aside")).unwrap();
    std::fs::write(&dir, "not a folder").unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(
        snap.services.contains_key(&key("hello")),
        "nothing withdrawn"
    );
    assert!(!snap.pending);
    let p = problem_about(&snap, &dir).expect("reported");
    assert!(p.message.contains("registry.path"), "{p}");
    assert!(p.message.contains("keeps serving"), "{p}");
    std::fs::remove_file(&dir).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(
        snap.services.contains_key(&key("hello")),
        "a deleted folder too"
    );
    assert!(problem_about(&snap, &dir).is_some());
    std::fs::rename(base.path().join("aside"), &dir).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(snap.services.contains_key(&key("hello")));
}

#[test]
fn a_folder_never_read_is_pending_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services");
    std::fs::write(&file, "not a folder").unwrap();
    let mut folder = Folder::new(&file);
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.pending, "nothing may be withdrawn on its account");
    assert!(problem_about(&snap, &file).is_some(), "{:?}", snap.problems);
}

#[test]
fn an_unlistable_subfolder_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team");
    std::fs::create_dir(&team).unwrap();
    std::fs::write(team.join("nested.yaml"), world("nested")).unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    std::fs::rename(&team, dir.path().join(".aside")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &team).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.services.contains_key(&key("nested")), "kept");
    let p = problem_about(&snap, &team).expect("reported");
    assert!(p.message.contains("1 manifest file(s) under it"), "{p}");
    std::fs::remove_file(&team).unwrap();
    let snap = snapshot_after_rescan(&mut folder);
    assert!(snap.services.is_empty(), "a removed entry is gone");
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
}

#[test]
fn refreshing_one_file_reads_only_that_file() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..30 {
        std::fs::write(
            dir.path().join(format!("f{i}.yaml")),
            world(&format!("s{i}")),
        )
        .unwrap();
    }
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    // Two files change; only one is named by an event.
    std::fs::write(dir.path().join("f3.yaml"), world("renamed3")).unwrap();
    std::fs::write(dir.path().join("f4.yaml"), world("renamed4")).unwrap();
    assert!(folder.refresh(&dir.path().join("f3.yaml")));
    let snap = folder.snapshot();
    assert!(snap.services.contains_key(&key("renamed3")));
    assert!(snap.services.contains_key(&key("s4")), "f4 not read yet");
    // The rescan catches what no event named.
    assert!(folder.rescan());
    let snap = folder.snapshot();
    assert!(snap.services.contains_key(&key("renamed4")));
    assert_eq!(snap.services.len(), 30);
}

#[test]
fn refreshing_a_removed_subfolder_withdraws_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team");
    std::fs::create_dir_all(team.join("deep")).unwrap();
    std::fs::write(team.join("deep/a.yaml"), world("a")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), world("b")).unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    std::fs::remove_dir_all(&team).unwrap();
    assert!(folder.refresh(&team));
    let names: Vec<String> = folder
        .snapshot()
        .services
        .keys()
        .map(|k| k.name.clone())
        .collect();
    assert_eq!(names, ["b"]);
}

#[test]
fn delete_events_of_a_deleted_folder_withdraw_nothing() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello.yaml"), HELLO).unwrap();
    let mut folder = Folder::new(&dir);
    folder.rescan();
    std::fs::remove_dir_all(&dir).unwrap();
    // The file's delete event arrives before (or without) the folder's.
    assert!(folder.refresh(&dir.join("hello.yaml")));
    let snap = folder.snapshot();
    assert!(snap.services.contains_key(&key("hello")));
    assert!(problem_about(&snap, &dir).is_some(), "{:?}", snap.problems);
}

/// Rescans `folder` on another thread; `None` when it does not return in
/// 5 s (the read blocked).
fn rescan_bounded(mut folder: Folder) -> Option<Folder> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        folder.rescan();
        let _ = tx.send(folder);
    });
    rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
}

#[test]
fn a_fifo_named_like_a_manifest_is_reported_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(&fifo, dir.path().join("link.yaml")).unwrap();
    let folder = rescan_bounded(Folder::new(dir.path())).expect("the rescan returned");
    let snap = folder.snapshot();
    assert!(
        snap.services.contains_key(&key("hello")),
        "the good file loads"
    );
    for name in ["pipe.yaml", "link.yaml"] {
        let problem = snap
            .problems
            .iter()
            .find(|p| p.source.ends_with(name))
            .unwrap_or_else(|| panic!("{name} reported: {:?}", snap.problems));
        assert!(
            problem.message.contains("not a regular file (a FIFO)"),
            "{}",
            problem.message
        );
    }
}

#[test]
fn a_file_past_the_size_bound_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(dir.path().join("big.yaml")).unwrap();
    big.set_len(manifest::MAX_FILE_BYTES + 1).unwrap();
    let mut folder = Folder::new(dir.path());
    folder.rescan();
    let snap = folder.snapshot();
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert!(
        snap.problems[0]
            .message
            .contains("16777217 bytes is more than"),
        "{}",
        snap.problems[0].message
    );
}
