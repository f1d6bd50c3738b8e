//! Who may serve a name (issue 13, defect 1), with real processes: east
//! exports `demo/secret` to west only; eu, excluded, exports its own
//! `demo/secret` claiming 9 endpoints, which took 38 of 40 of west's
//! connections before the fix. West's `imports` policy keeps eu out of
//! `demo` (and shows the refusal), and without a policy
//! `gateway.maxClaimedEndpoints` keeps eu's claim from buying it traffic.
//!
//! Every cluster runs `fedgw`; backends are real TCP servers that name
//! themselves; clients dial west's VIP from the test process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};
use serde_json::Value;

const SYNC: Duration = Duration::from_secs(20);

/// Where eu's nine `demo/secret` endpoints listen: `fed.ip(30..39)`, in
/// the federation's own address block, away from the clusters' addresses.
const EU_ENDPOINTS: std::ops::Range<usize> = 30..39;

/// The standard three clusters, west's config given `west_tail` (top-level
/// YAML) and its gateway the `gateway` options, joined in a full mesh,
/// each with a gateway.
fn mesh(west_tail: &str, west_gateway: &[(&str, &str)]) -> Federation {
    let mut fed = Federation::new();
    for (name, region, zone) in [
        ("east", "us-east", "us-east-1a"),
        ("west", "us-west", "us-west-2a"),
        ("eu", "eu-central", "eu-central-1a"),
    ] {
        fed.add(name, region, zone, "");
    }
    let west = fed.get("west");
    for (key, value) in west_gateway {
        west.set_gateway_option(key, value);
    }
    let config = std::fs::read_to_string(&west.config).expect("read west's config");
    west.write_config(&format!("{config}{west_tail}"));
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.join("eu", "west");
    for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
        fed.wait_connected(a, b, SYNC);
    }
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    fed
}

/// A service `ns/name` on port 8080 (target 18080) exported from
/// `cluster`, with `annotations` besides the export one, served by real
/// backends named after the cluster at `ips`.
fn export(
    fed: &Federation,
    cluster: &str,
    service: (&str, &str),
    annotations: &[(&str, &str)],
    ips: &[std::net::Ipv4Addr],
) -> Vec<Backend> {
    let (ns, name) = service;
    let c = fed.get(cluster);
    let endpoints: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let mut all = vec![EXPORT];
    all.extend_from_slice(annotations);
    c.write_manifest(
        &format!("{ns}-{name}.yaml"),
        &service_yaml(ns, name, "tcp", 8080, 18080, &all, &endpoints),
    );
    ips.iter()
        .map(|ip| Backend::start((*ip, 18080).into(), cluster))
        .collect()
}

/// East's `demo/secret` (to west only, one endpoint) and eu's (nine).
fn secret_from_east_and_eu(fed: &Federation) -> Vec<Backend> {
    let east_ip = fed.get("east").ip;
    let mut backends = export(
        fed,
        "east",
        ("demo", "secret"),
        &[("fedmesh.io/export-to", "west")],
        &[east_ip],
    );
    let eu_ips: Vec<_> = EU_ENDPOINTS.map(|i| fed.ip(i)).collect();
    backends.extend(export(fed, "eu", ("demo", "secret"), &[], &eu_ips));
    backends
}

/// West's VIP for `id` once west lists it and its gateway listens on it.
fn west_vip(fed: &Federation, id: &str) -> SocketAddr {
    let west = fed.get("west");
    let vip = west.service(id).expect("west lists the service")["vip"]
        .as_str()
        .expect("a VIP")
        .parse::<std::net::IpAddr>()
        .expect("an IP");
    let addr = SocketAddr::new(vip, 8080);
    wait_until(
        &format!("west's gateway listens on {id}'s VIP"),
        SYNC,
        || std::net::TcpStream::connect(addr).is_ok(),
    );
    addr
}

/// Which backend answered each of `n` connections to `vip`, by name.
fn answers(vip: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let who = ask_backend(vip).unwrap_or_else(|e| format!("error: {e}"));
        *counts.entry(who).or_default() += 1;
    }
    counts
}

/// The `refused` list of `id` as west's `fedctl services -o json` shows it.
fn refused(fed: &Federation, id: &str) -> Vec<Value> {
    fed.get("west")
        .service(id)
        .and_then(|s| s["refused"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn an_imports_policy_keeps_an_excluded_peer_from_serving_the_name() {
    let fed = mesh(
        "imports:\n  - { namespace: demo, peers: [east] }\n  - { namespace: shop, peers: [\"*\"] }\n",
        &[],
    );
    let mut backends = secret_from_east_and_eu(&fed);
    // An open namespace, and one no entry names.
    let eu_cart = fed.ip(40);
    backends.extend(export(&fed, "eu", ("shop", "cart"), &[], &[eu_cart]));
    export(&fed, "eu", ("other", "thing"), &[], &[]);

    wait_until("west refuses eu's demo/secret", SYNC, || {
        refused(&fed, "demo/secret")
            .iter()
            .any(|r| r["peer"] == "eu")
    });
    let west = fed.get("west");
    assert_eq!(west.service_clusters("demo/secret"), ["east"]);
    let refusal = &refused(&fed, "demo/secret")[0];
    assert_eq!(refusal["code"], "peer_not_allowed", "{refusal}");
    assert!(
        refusal["reason"].as_str().unwrap_or("").contains("[east]"),
        "the reason names who may serve demo: {refusal}"
    );

    let vip = west_vip(&fed, "demo/secret");
    let got = answers(vip, 40);
    assert_eq!(got, BTreeMap::from([("east".to_owned(), 40)]), "{got:?}");

    // "*" still imports from eu; a namespace no entry names is refused and
    // listed on its own, with nothing serving it.
    wait_until("west imports shop/cart from eu", SYNC, || {
        west.service_clusters("shop/cart") == ["eu"]
    });
    assert_eq!(
        ask_backend(west_vip(&fed, "shop/cart")).as_deref(),
        Ok("eu")
    );
    wait_until("west lists other/thing as refused", SYNC, || {
        !refused(&fed, "other/thing").is_empty()
    });
    let other = west.service("other/thing").expect("listed");
    assert_eq!(other["clusters"], Value::Array(vec![]), "{other}");
    assert_eq!(other["vip"], Value::Null, "{other}");
    assert_eq!(other["refused"][0]["code"], "namespace_not_imported");
    // The table says it too, and the log names the peer once.
    let table = west.fedctl(&["services"]);
    assert!(
        table.stdout.contains("refused demo/secret from eu:"),
        "{}",
        table.stdout
    );
    assert!(
        west.log().contains("export refused by the imports policy"),
        "west logs the refusal"
    );
}

#[test]
fn without_a_policy_a_claimed_endpoint_count_buys_no_more_than_the_cap() {
    // Capped at 1, eu's nine claimed endpoints weigh as much as east's one.
    let fed = mesh("", &[("maxClaimedEndpoints", "1")]);
    let _backends = secret_from_east_and_eu(&fed);
    wait_until("west imports demo/secret from east and eu", SYNC, || {
        fed.get("west").service_clusters("demo/secret") == ["east", "eu"]
    });
    let vip = west_vip(&fed, "demo/secret");
    let got = answers(vip, 60);
    let share = |who: &str| got.get(who).copied().unwrap_or(0);
    assert_eq!(
        share("east") + share("eu"),
        60,
        "every connection served: {got:?}"
    );
    // Even split: 30 ± 12 each (over 3 standard deviations). Uncapped,
    // eu's 9 of 10 endpoints give it about 54 of 60.
    assert!(
        (18..=42).contains(&share("eu")),
        "eu's share follows its capped count: {got:?}"
    );
}
