//! Step 9 of `fedctl demo`: a canary release with an `HTTPRoute` in east's
//! registry. Every request with `x-canary: true` goes to west's copy of
//! hello, and 10 % of the others too (by weight, per request); the rest
//! stay with the global service, which locality keeps in east. The step
//! waits until east's gateway applies the route (a canary request is
//! answered by west), then measures the split over [`REQUESTS`] requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::backend;
use super::cluster::DemoCluster;

/// The route, bound to demo/hello in east (which governs east's clients).
const ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hello-canary, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - matches: [ { headers: [ { name: x-canary, value: "true" } ] } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: west.hello, port: 8080 } ]
    - backendRefs:
        - { kind: Service, name: hello, port: 8080, weight: 90 }
        - { group: fedmesh.io, kind: ServiceImport, name: west.hello, port: 8080, weight: 10 }
"#;

/// Requests measured without the header.
pub(super) const REQUESTS: usize = 200;

/// Canary requests measured.
const CANARIES: usize = 5;

/// How long the gateway may take to apply the route.
const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

const WEST: &str = "hello from west";

/// Step 9: writes the route in `east` and measures the split at `target`
/// (east's VIP for hello).
///
/// # Errors
/// When the route is not applied in time or a request fails.
pub(super) async fn run(east: &DemoCluster, target: SocketAddr, host: &str) -> anyhow::Result<()> {
    super::step(
        9,
        "a canary route in east: every `x-canary: true` request and 10 % of the rest go to west",
    );
    east.write_manifest("hello-canary.yaml", ROUTE)?;
    let t = Instant::now();
    let canary = [("x-canary", "true")];
    let deadline = t + APPLY_TIMEOUT;
    loop {
        let answer = backend::get_with(target, host, "/", &canary).await;
        if answer.is_ok_and(|a| a == WEST) {
            break;
        }
        if Instant::now() > deadline {
            bail!("step 9: east's gateway did not apply the canary route within {APPLY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "      applied by east's gateway {} ms after the route was written",
        t.elapsed().as_millis()
    );
    let mut to_west = 0;
    for _ in 0..CANARIES {
        if backend::get_with(target, host, "/", &canary).await? == WEST {
            to_west += 1;
        }
    }
    println!("      with x-canary: true, {to_west} of {CANARIES} answered by west");
    if to_west != CANARIES {
        bail!("step 9: canary requests must all go to west, {to_west} of {CANARIES} did");
    }
    let mut west = 0;
    for _ in 0..REQUESTS {
        if backend::get(target, host).await? == WEST {
            west += 1;
        }
    }
    let share = 100.0 * f64::from(west) / REQUESTS as f64;
    println!(
        "      without it, {west} of {REQUESTS} answered by west ({share:.1} %, the route says 10 %)"
    );
    Ok(())
}
