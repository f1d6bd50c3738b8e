//! Stage 3, authorize: may `peer` have this service port, and which
//! endpoints serve it. The service must be exported here (with that
//! port) and, under `fedmesh.io/export-to`, exported to that peer
//! (DESIGN.md, Exporting: enforced again at ingress).

use std::net::SocketAddr;

use crate::endpoint;
use crate::state::GatewayState;
use crate::wire::{Refusal, Route};

/// The ready endpoints `peer` may reach for `route` (for a named
/// endpoint's route, that endpoint only).
///
/// # Errors
/// The [`Refusal`] to answer with.
pub(super) fn authorize(
    state: &GatewayState,
    peer: &str,
    route: &Route,
) -> Result<Vec<SocketAddr>, Refusal> {
    let export = state
        .exports
        .get(&(route.namespace.clone(), route.service.clone()))
        .ok_or(Refusal::UnknownService)?;
    if !export.ports.iter().any(|(_, p)| *p == route.port) {
        return Err(Refusal::UnknownService);
    }
    if !export.allows(peer) {
        return Err(Refusal::NotExportedToYou);
    }
    // A named endpoint's route: that endpoint or nothing.
    let candidates = endpoint::candidates(export, route);
    if candidates.is_empty() {
        return Err(Refusal::NoHealthyEndpoint);
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::state::{Endpoint, Export};

    fn state(export_to: &[&str], ready: bool) -> GatewayState {
        let endpoint = Endpoint {
            address: "10.0.0.1".parse().unwrap(),
            ready,
            ports: BTreeMap::from([("http".to_string(), 9000)]),
            hostname: Some("hello-0".into()),
        };
        let export = Export {
            ports: vec![("http".into(), 8080)],
            endpoints: vec![endpoint],
            export_to: export_to.iter().map(|s| s.to_string()).collect(),
        };
        GatewayState {
            exports: HashMap::from([(("demo".to_string(), "hello".to_string()), export)]),
            ..Default::default()
        }
    }

    #[test]
    fn an_exported_port_maps_to_its_endpoints_target_port() {
        let got = authorize(
            &state(&[], true),
            "west",
            &Route::new("demo", "hello", 8080),
        );
        assert_eq!(got, Ok(vec!["10.0.0.1:9000".parse().unwrap()]));
    }

    #[test]
    fn a_named_endpoint_that_is_not_there_is_no_healthy_endpoint() {
        let s = state(&[], true);
        let route = Route::new("demo", "hello", 8080);
        let named = authorize(&s, "west", &route.clone().to_endpoint("hello-0"));
        assert_eq!(named, Ok(vec!["10.0.0.1:9000".parse().unwrap()]));
        let other = authorize(&s, "west", &route.to_endpoint("hello-1"));
        assert_eq!(other, Err(Refusal::NoHealthyEndpoint));
    }

    #[test]
    fn refusals_name_why() {
        let s = state(&["eu"], true);
        let r = |ns: &str, svc: &str, port| authorize(&s, "west", &Route::new(ns, svc, port));
        assert_eq!(r("demo", "other", 8080), Err(Refusal::UnknownService));
        assert_eq!(r("demo", "hello", 8081), Err(Refusal::UnknownService));
        assert_eq!(r("demo", "hello", 8080), Err(Refusal::NotExportedToYou));
        let s = state(&[], false);
        assert_eq!(
            authorize(&s, "west", &Route::new("demo", "hello", 8080)),
            Err(Refusal::NoHealthyEndpoint)
        );
    }
}
