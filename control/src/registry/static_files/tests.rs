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
    let mut folder = Folder::default();
    assert!(folder.scan(dir.path()));
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
    let mut folder = Folder::default();
    folder.scan(dir.path());
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
    let mut folder = Folder::default();
    folder.scan(dir.path());
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
    let mut folder = Folder::default();
    assert!(folder.scan(dir.path()));
    assert!(!folder.scan(dir.path()), "nothing changed");
    std::fs::write(
        &file,
        HELLO.replace(
            "fedmesh.io/export: \"true\"",
            "fedmesh.io/export: \"false\"",
        ),
    )
    .unwrap();
    assert!(folder.scan(dir.path()));
    assert!(folder.snapshot().services[&key("hello")].export.is_none());
    std::fs::remove_file(&file).unwrap();
    assert!(folder.scan(dir.path()));
    assert!(folder.snapshot().services.is_empty());
}

#[test]
fn a_missing_folder_is_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut folder = Folder::default();
    folder.scan(&dir.path().join("nope"));
    let snap = folder.snapshot();
    assert!(
        snap.problems[0].message.contains("registry.path"),
        "{:?}",
        snap.problems
    );
}

#[tokio::test]
async fn the_registry_publishes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = watch::channel(Arc::new(LocalSnapshot::default()));
    let reg = Box::new(StaticFiles::new(dir.path(), Duration::from_millis(20)));
    let task = tokio::spawn(reg.run(tx));
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.services.contains_key(&key("hello"))),
    )
    .await
    .expect("published within 5 s")
    .unwrap();
    task.abort();
}

#[test]
fn a_file_with_thousands_of_documents_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = (0..5000).map(|i| world(&format!("svc-{i}"))).collect();
    std::fs::write(dir.path().join("many.yaml"), text.join("---\n")).unwrap();
    let mut folder = Folder::default();
    assert!(folder.scan(dir.path()));
    let snap = folder.snapshot();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert_eq!(snap.services.len(), 5000);
}
