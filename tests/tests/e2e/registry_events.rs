//! The static registry on real clusters: a manifest edit reaches the
//! peer's DNS through file events, and a registry folder that cannot be
//! read keeps its exports (the peer keeps the service) while `fedctl
//! check` names the folder and the error, until it is fixed.

use std::time::{Duration, Instant};

use fedmesh_tests::{EXPORT, Federation, dns_query, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(15);

fn exported(name: &str) -> String {
    service_yaml(
        "demo",
        name,
        "http",
        8080,
        18080,
        &[EXPORT],
        &["127.0.0.10"],
    )
}

fn answers(fed: &Federation, cluster: &str, name: &str) -> bool {
    let a = dns_query(
        fed.get(cluster).dns(),
        &format!("{name}.demo.svc.clusterset.local"),
        "A",
    );
    a.code == "NoError" && !a.a.is_empty()
}

#[test]
fn an_unreadable_registry_folder_keeps_its_exports_and_is_reported() {
    let mut fed = Federation::standard(2, "");
    // The check covers the data plane: east's gateway must serve.
    fed.get_mut("east").start_gateway();
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    let east = fed.get("east");
    east.write_manifest("hello.yaml", &exported("hello"));
    wait_until("west's DNS answers hello", SYNC, || {
        answers(&fed, "west", "hello")
    });
    // An edit: a second service in another file.
    east.write_manifest("world.yaml", &exported("world"));
    wait_until("west's DNS answers world", SYNC, || {
        answers(&fed, "west", "world")
    });

    // The folder path becomes a file: nothing can be listed (root too).
    let dir = east.services_dir();
    let aside = dir.with_file_name("services-aside");
    std::fs::rename(&dir, &aside).expect("move the folder aside");
    std::fs::write(&dir, "not a folder").expect("a file in its place");
    let shown = dir.display().to_string();
    wait_until("east's check names the folder", SYNC, || {
        let check = east.fedctl(&["check"]);
        !check.ok && check.stdout.contains(&shown) && check.stdout.contains("keeps serving")
    });
    // For a while after the read error (longer than a propagation), the
    // peer keeps both services and east keeps exporting them.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(answers(&fed, "west", "hello"), "west lost hello");
        assert!(answers(&fed, "west", "world"), "west lost world");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(east.service_clusters("demo/hello"), ["east"]);

    // Fixed: the folder is read and watched again, edits flow again.
    std::fs::remove_file(&dir).expect("remove the file");
    std::fs::rename(&aside, &dir).expect("move the folder back");
    east.write_manifest("late.yaml", &exported("late"));
    wait_until("west's DNS answers late", SYNC, || {
        answers(&fed, "west", "late")
    });
    wait_until("east's check passes again", SYNC, || {
        east.fedctl(&["check"]).ok
    });
    std::fs::remove_file(dir.join("world.yaml")).expect("delete world.yaml");
    wait_until("world withdrawn from west", SYNC, || {
        dns_query(
            fed.get("west").dns(),
            "world.demo.svc.clusterset.local",
            "A",
        )
        .code
            == "NXDomain"
    });
    assert!(answers(&fed, "west", "hello"));
}
