//! The usual daemon manners with a real `fedctl run`: gRPC health and
//! reflection on the admin port, `RUST_LOG` and `log.format: json`, a bad
//! filter refused by name, `fedctl version` and shell completions.

use std::process::Stdio;

use fedmesh_tests::{Federation, bin};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// One cluster whose config adds `extra` (top-level YAML), started with
/// `env` added to its `fedctl run`.
fn one_cluster(extra: &str, env: &[(&str, &str)]) -> Federation {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = fed.get_mut("east");
    let text = std::fs::read_to_string(&c.config).unwrap();
    c.write_config(&format!("{text}{extra}"));
    c.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.start();
    fed
}

async fn channel(admin: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{admin}"))
        .expect("an address")
        .connect()
        .await
        .expect("the admin port answers gRPC")
}

async fn health(admin: &str, service: &str) -> i32 {
    let mut client = HealthClient::new(channel(admin).await);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("health check of {service:?}: {s}"))
        .into_inner()
        .status
}

async fn reflected_services(admin: &str) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel(admin).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.message().await.expect("an answer").expect("one");
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

#[test]
fn the_admin_port_answers_grpc_health_serving_and_reflection() {
    let fed = one_cluster("", &[]);
    let admin = fed.get("east").admin();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let serving = ServingStatus::Serving as i32;
    assert_eq!(rt.block_on(health(&admin, "")), serving);
    assert_eq!(rt.block_on(health(&admin, "fedmesh.v1.Admin")), serving);
    let services = rt.block_on(reflected_services(&admin));
    for want in ["fedmesh.v1.Admin", "grpc.health.v1.Health"] {
        assert!(
            services.iter().any(|s| s == want),
            "{want} not in {services:?}"
        );
    }
}

#[test]
fn the_gateway_api_port_answers_grpc_health_serving_over_tls() {
    use fedmesh_proto::identity::{self, PinnedServerVerifier};
    use fedmesh_proto::token::BootstrapToken;
    let fed = one_cluster("", &[]);
    let east = fed.get("east");
    let token = std::fs::read_to_string(east.dir.join("data/gateway-bootstrap.token")).unwrap();
    let pin = BootstrapToken::decode(&token).unwrap().pin;
    let tls = identity::client_config(None, PinnedServerVerifier::new(pin), &[b"h2"]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let channel = fedmesh_proto::transport::connect(
            &east.gateway_api(),
            std::sync::Arc::new(tls),
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("the gateway API answers TLS");
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "fedmesh.v1.GatewayConfig".into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status
    });
    assert_eq!(status, ServingStatus::Serving as i32);
}

#[test]
fn rust_log_and_log_format_json_shape_the_daemon_log() {
    let fed = one_cluster(
        "log:\n  format: json\n",
        &[
            ("FEDMESH_LOG", ""),
            ("RUST_LOG", "warn,fedmesh_control=debug"),
        ],
    );
    let log = fed.get("east").log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "RUST_LOG asked for debug:\n{log}"
    );
    for l in &lines {
        let target = l["target"].as_str().unwrap_or("");
        if l["level"] == "INFO" || l["level"] == "DEBUG" {
            assert!(
                target.starts_with("fedmesh_control"),
                "RUST_LOG allows only warn here: {l}"
            );
        }
    }
}

#[test]
fn a_bad_rust_log_is_refused_by_name() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = fed.get("east");
    let out = c
        .command(&bin("fedctl"))
        .args(["run", "--config"])
        .arg(&c.config)
        .env_remove("FEDMESH_LOG")
        .env("RUST_LOG", "info,fedmesh_control=loud")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUST_LOG=\"info,fedmesh_control=loud\" is not a log filter"),
        "{stderr}"
    );
}

#[test]
fn version_shows_client_and_server_and_completion_scripts_parse() {
    let fed = one_cluster("", &[]);
    let out = fed.get("east").fedctl(&["version", "-o", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let v = out.json();
    let mine = env!("CARGO_PKG_VERSION");
    assert_eq!(v["client"], mine);
    assert_eq!(v["server"]["version"], mine);
    assert_eq!(v["server"]["cluster"], "east");

    let nobody = std::process::Command::new(bin("fedctl"))
        .args(["version", "--admin", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(
        nobody.status.success(),
        "the client version needs no server"
    );
    let text = String::from_utf8_lossy(&nobody.stdout);
    assert!(text.contains(&format!("client  fedctl {mine}")), "{text}");
    assert!(text.contains("server  unknown"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = std::process::Command::new(bin("fedctl"))
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(script.status.success());
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(
            text.contains("drill") && text.contains("undrain"),
            "{shell}: {text}"
        );
        if shell == "bash" {
            let path = dir.path().join("fedctl.bash");
            std::fs::write(&path, &script.stdout).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}
