//! The server through `dig`, when it is installed (it is not on a fresh
//! machine: these tests then print a note and pass).

use std::net::SocketAddr;

use tokio::process::Command;
use tokio::time::timeout;

use crate::support::{DEADLINE, TestServer, sample};

/// Runs `dig -p PORT @127.0.0.1 ARGS…`, or `None` when dig is missing.
async fn dig(server: SocketAddr, args: &[&str]) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", "command -v dig"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: dig is not installed; skipping the dig assertions");
        return None;
    }
    let port = server.port().to_string();
    let at = format!("@{}", server.ip());
    let output = Command::new("dig")
        .args(["-p", &port, &at, "+time=5", "+tries=1"])
        .args(args)
        .output();
    let output = timeout(DEADLINE, output)
        .await
        .expect("dig within the deadline")
        .expect("dig runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?} failed:\n{stdout}");
    Some(stdout)
}

#[tokio::test]
async fn dig_gets_the_vip_over_udp_and_tcp() {
    let dns = TestServer::start(sample()).await;
    for transport in ["+notcp", "+tcp"] {
        let args = [transport, "+short", "web.prod.svc.clusterset.local", "A"];
        let Some(out) = dig(dns.addr(), &args).await else {
            return;
        };
        assert_eq!(out.trim(), "127.240.0.10", "{transport}");
    }
}

#[tokio::test]
async fn dig_sees_an_authoritative_nodata_for_aaaa() {
    let dns = TestServer::start(sample()).await;
    let args = ["web.prod.svc.clusterset.local", "AAAA"];
    let Some(out) = dig(dns.addr(), &args).await else {
        return;
    };
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("ANSWER: 0, AUTHORITY: 1"), "{out}");
    assert!(out.contains(" aa"), "{out}");
    assert!(
        out.contains("SOA\tns.clusterset.local. hostmaster.clusterset.local. 7 "),
        "{out}"
    );
}

#[tokio::test]
async fn dig_sees_nxdomain_for_an_unknown_name() {
    let dns = TestServer::start(sample()).await;
    let Some(out) = dig(dns.addr(), &["nope.prod.svc.clusterset.local", "A"]).await else {
        return;
    };
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
}

#[tokio::test]
async fn dig_gets_srv_records() {
    let dns = TestServer::start(sample()).await;
    let args = ["+short", "_http._tcp.web.prod.svc.clusterset.local", "SRV"];
    let Some(out) = dig(dns.addr(), &args).await else {
        return;
    };
    assert_eq!(out.trim(), "0 10 8080 web.prod.svc.clusterset.local.");
}

#[tokio::test]
async fn dig_is_refused_outside_the_zone_without_upstreams() {
    let dns = TestServer::start(sample()).await;
    let Some(out) = dig(dns.addr(), &["example.com", "A"]).await else {
        return;
    };
    assert!(out.contains("status: REFUSED"), "{out}");
}
