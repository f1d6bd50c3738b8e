//! Clusters join and every side sees every other side connected.

use std::time::Duration;

use fedmesh_tests::Federation;

const LINK: Duration = Duration::from_secs(15);

#[test]
fn two_clusters_join_and_each_sees_the_other_connected() {
    let fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", LINK);

    let east_view = fed.get("east").peers();
    assert_eq!(east_view.len(), 1);
    let west = &east_view[0];
    assert_eq!(west["name"], "west");
    assert_eq!(west["role"], "acceptor");
    assert_eq!(west["locality"]["region"], "us-west");
    assert_eq!(west["locality"]["zone"], "us-west-2a");
    assert_eq!(west["endpoint"], fed.get("west").peering());
    assert_eq!(west["imports"], 0);
    assert!(west["since"].as_str().unwrap().ends_with('Z'));
    assert!(west["rootExpires"].as_str().unwrap().starts_with("20"));

    let west_view = fed.get("west").peers();
    let east = &west_view[0];
    assert_eq!(east["name"], "east");
    assert_eq!(east["role"], "dialer");
    assert_eq!(east["endpoint"], fed.get("east").peering());
    assert!(east["lastHeartbeat"].is_string(), "{east}");
}

#[test]
fn three_clusters_join_into_a_full_mesh() {
    let fed = Federation::standard(3, "");
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.join("eu", "west");
    for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
        fed.wait_connected(a, b, LINK);
    }
    for c in &fed.clusters {
        let names: Vec<String> = c
            .peers()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{} sees {names:?}", c.name);
    }
}

#[test]
fn peers_table_shows_the_link_for_people() {
    let fed = Federation::standard(2, "");
    let empty = fed.get("east").fedctl(&["peers"]);
    assert!(
        empty.ok && empty.stdout.contains("fedctl token create"),
        "{}",
        empty.stdout
    );
    fed.join("west", "east");
    fed.wait_connected("east", "west", LINK);
    let out = fed.get("east").fedctl(&["peers"]);
    assert!(out.ok);
    assert!(out.stdout.starts_with("NAME"), "{}", out.stdout);
    assert!(
        out.stdout.contains("west")
            && out.stdout.contains("connected")
            && out.stdout.contains("us-west/us-west-2a"),
        "{}",
        out.stdout
    );
}
