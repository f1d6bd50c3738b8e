//! Tracing and access logs through the real binaries: three clusters with
//! gateways, demo/hello exported by east on an HTTP port with a backend
//! that keeps the headers it is sent, a client in eu. eu's and east's
//! gateways export spans to a real OTLP/gRPC receiver (the collector's
//! `TraceService`) and write JSON access logs.

use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_tests::header_backend::{HeaderBackend, get_with_headers};
use fedmesh_tests::otlp::{OtlpReceiver, ReceivedSpan, SPAN_KIND_CLIENT, SPAN_KIND_SERVER};
use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);
/// Spans leave a gateway in batches (200 ms) and may wait on the
/// collector's connection.
const SPANS: Duration = Duration::from_secs(15);

/// A caller's context, as a traced client would send it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The mesh, without gateways yet.
fn mesh() -> Federation {
    Federation::full_mesh("", SYNC)
}

/// Starts every gateway; eu's and east's with `gateway` options.
fn start_gateways(fed: &mut Federation, options: &[(&str, String)]) {
    for c in &mut fed.clusters {
        if c.name != "west" {
            for (key, value) in options {
                c.set_gateway_option(key, value);
            }
        }
        c.start_gateway();
    }
}

/// Exports demo/`name` from east on `port_name:port`; its backend's address.
fn export_from_east(fed: &Federation, name: &str, port_name: &str, port: u16) -> SocketAddr {
    let east = fed.get("east");
    let backend: SocketAddr = (east.ip, port + 10_000).into();
    east.write_manifest(
        &format!("{name}.yaml"),
        &service_yaml(
            "demo",
            name,
            port_name,
            port,
            port + 10_000,
            &[EXPORT],
            &[&backend.ip().to_string()],
        ),
    );
    backend
}

/// eu's VIP for demo/`name`:`port` once imported from east.
fn eu_vip(fed: &Federation, name: &str, port: u16) -> SocketAddr {
    let eu = fed.get("eu");
    let id = format!("demo/{name}");
    wait_until("eu imports the service from east", SYNC, || {
        eu.service_clusters(&id) == ["east"]
    });
    let service = eu.service(&id).expect("imported");
    let vip: std::net::IpAddr = service["vip"].as_str().unwrap().parse().unwrap();
    SocketAddr::new(vip, port)
}

/// A version-00 traceparent; `flags` `01` sampled, `00` not.
fn traceparent(trace: &str, span: &str, flags: &str) -> String {
    format!("00-{trace}-{span}-{flags}")
}

/// (trace id, parent id, flags) of a valid version-00 traceparent.
fn parse(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    assert!(
        hex(parts[1], 32) && hex(parts[2], 16) && parts[3].len() == 2,
        "{value}"
    );
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// What the backend saw on its last request to `path`: (trace, parent, flags).
fn seen_traceparent(backend: &HeaderBackend, path: &str) -> (String, String, String) {
    let seen = backend.last_to(path).expect("the backend saw the request");
    let values: Vec<_> = seen.headers.get_all("traceparent").iter().collect();
    assert_eq!(values.len(), 1, "one traceparent: {:?}", seen.headers);
    parse(values[0].to_str().unwrap())
}

/// The one span of `kind` from `cluster`'s gateway among `spans`.
fn span_of<'a>(spans: &'a [ReceivedSpan], kind: i32, cluster: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.kind == kind
                && s.resource.get("fedmesh.local_cluster").map(String::as_str) == Some(cluster)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one span of kind {kind} from {cluster}: {spans:#?}"
    );
    found[0]
}

#[test]
fn a_traced_request_keeps_its_trace_id_and_both_gateways_report_spans() {
    let mut fed = mesh();
    // On the federation's own loopback address, a port of its own.
    let receiver = OtlpReceiver::start(fed.get("eu").ip.into());
    let tracing = format!("{{ otlpEndpoint: \"{}\" }}", receiver.endpoint());
    start_gateways(&mut fed, &[("tracing", tracing)]);
    let backend = HeaderBackend::start(export_from_east(&fed, "hello", "http", 8080), "east");
    let vip = eu_vip(&fed, "hello", 8080);
    wait_until("eu's gateway serves the VIP", SYNC, || {
        get_with_headers(vip, "/warm", &[]).is_ok_and(|(status, _)| status == 200)
    });

    // An unsampled caller first: its flag is kept and nothing is exported.
    let quiet = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";
    let unsampled = traceparent(quiet, CALLER_SPAN, "00");
    let (status, _) = get_with_headers(vip, "/quiet", &[("traceparent", &unsampled)]).unwrap();
    assert_eq!(status, 200);
    let (trace, _, flags) = seen_traceparent(&backend, "/quiet");
    assert_eq!((trace.as_str(), flags.as_str()), (quiet, "00"));

    // A sampled caller: the backend sees its trace id with the ingress's
    // span as parent, and tracestate passed on.
    let incoming = traceparent(CALLER_TRACE, CALLER_SPAN, "01");
    let headers = [
        ("traceparent", incoming.as_str()),
        ("tracestate", "vendor=abc"),
    ];
    let (status, body) = get_with_headers(vip, "/traced", &headers).unwrap();
    assert_eq!(status, 200, "{body}");
    let (trace, backend_parent, flags) = seen_traceparent(&backend, "/traced");
    assert_eq!((trace.as_str(), flags.as_str()), (CALLER_TRACE, "01"));
    assert_ne!(
        backend_parent, CALLER_SPAN,
        "the gateway puts its own span in"
    );
    let seen = backend.last_to("/traced").unwrap();
    assert_eq!(seen.headers["tracestate"], "vendor=abc");

    // Both gateways' spans, chained: caller → eu (client) → east (server)
    // → backend.
    let spans = receiver
        .wait_for_trace(CALLER_TRACE, 2, SPANS)
        .unwrap_or_else(|got| panic!("spans of the trace did not arrive; got {got:#?}"));
    let egress = span_of(&spans, SPAN_KIND_CLIENT, "eu");
    let ingress = span_of(&spans, SPAN_KIND_SERVER, "east");
    assert_eq!(egress.parent_span_id, CALLER_SPAN, "{egress:#?}");
    assert_eq!(ingress.parent_span_id, egress.span_id, "{ingress:#?}");
    assert_eq!(
        backend_parent, ingress.span_id,
        "the backend's parent is the ingress"
    );
    for (key, want) in [
        ("fedmesh.service", "hello"),
        ("fedmesh.namespace", "demo"),
        ("fedmesh.port", "8080"),
        ("fedmesh.cluster", "east"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
        ("fedmesh.attempts", "1"),
    ] {
        assert_eq!(
            egress.attributes.get(key).map(String::as_str),
            Some(want),
            "{key}: {egress:#?}"
        );
    }
    assert_eq!(
        ingress
            .attributes
            .get("fedmesh.peer_cluster")
            .map(String::as_str),
        Some("eu")
    );
    assert!(
        receiver.spans().iter().all(|s| s.trace_id != quiet),
        "an unsampled trace is not exported"
    );

    // No traceparent: eu starts a trace; the backend and the spans agree.
    let (status, _) = get_with_headers(vip, "/fresh", &[]).unwrap();
    assert_eq!(status, 200);
    let (fresh, _, flags) = seen_traceparent(&backend, "/fresh");
    assert_eq!(flags, "01", "sampleRatio defaults to 1 with an endpoint");
    assert_ne!(fresh, CALLER_TRACE);
    let spans = receiver
        .wait_for_trace(&fresh, 2, SPANS)
        .unwrap_or_else(|got| panic!("spans of the started trace did not arrive; got {got:#?}"));
    let root = span_of(&spans, SPAN_KIND_CLIENT, "eu");
    assert_eq!(root.parent_span_id, "", "eu's span is the root: {root:#?}");
    assert_eq!(
        span_of(&spans, SPAN_KIND_SERVER, "east").parent_span_id,
        root.span_id
    );
}

/// The JSON lines of `cluster`'s access log, once `check` accepts them.
fn access_log_lines(
    fed: &Federation,
    cluster: &str,
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let path = fed.get(cluster).dir.join("access.log");
    let read = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    wait_until(what, SYNC, || check(&read()));
    read()
}

#[test]
fn access_logs_have_a_json_line_per_request_and_per_connection() {
    let mut fed = mesh();
    start_gateways(&mut fed, &[("accessLog", "access.log".into())]);
    let _http = HeaderBackend::start(export_from_east(&fed, "hello", "http", 8080), "east");
    let _tcp = Backend::start(export_from_east(&fed, "echo", "tcp", 9090), "east");
    let http_vip = eu_vip(&fed, "hello", 8080);
    let tcp_vip = eu_vip(&fed, "echo", 9090);
    wait_until("eu's gateway serves the HTTP VIP", SYNC, || {
        get_with_headers(http_vip, "/warm", &[]).is_ok_and(|(status, _)| status == 200)
    });
    let (status, _) = get_with_headers(http_vip, "/logged", &[]).unwrap();
    assert_eq!(status, 200);
    wait_until("eu's gateway carries the TCP VIP", SYNC, || {
        ask_backend(tcp_vip).is_ok_and(|name| name == "east")
    });

    let is_logged = |l: &serde_json::Value| l["kind"] == "http" && l["path"] == "/logged";
    let eu = access_log_lines(
        &fed,
        "eu",
        "eu logs the request and the connection",
        |lines| {
            lines.iter().any(is_logged)
                && lines
                    .iter()
                    .any(|l| l["kind"] == "tcp" && l["bytes_up"] == 5)
        },
    );
    let line = eu.iter().find(|l| is_logged(l)).unwrap();
    for (field, want) in [
        ("side", serde_json::json!("egress")),
        ("method", "GET".into()),
        ("namespace", "demo".into()),
        ("service", "hello".into()),
        ("port", 8080.into()),
        ("status", 200.into()),
        ("cluster", "east".into()),
        ("bytes", 4.into()),
        ("attempts", 1.into()),
    ] {
        assert_eq!(line[field], want, "{field}: {line}");
    }
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    assert!(
        line["authority"]
            .as_str()
            .is_some_and(|a| a.contains(&http_vip.ip().to_string())),
        "{line}"
    );
    let tcp = eu
        .iter()
        .find(|l| l["kind"] == "tcp" && l["bytes_up"] == 5)
        .unwrap();
    for (field, want) in [
        ("service", serde_json::json!("echo")),
        ("port", 9090.into()),
        ("cluster", "east".into()),
        ("bytes_down", 10.into()),
        ("outcome", "closed".into()),
    ] {
        assert_eq!(tcp[field], want, "{field}: {tcp}");
    }

    // east's ingress logs the same request with the same trace id.
    let trace_id = line["trace_id"].clone();
    let east = access_log_lines(&fed, "east", "east logs the request", |lines| {
        lines
            .iter()
            .any(|l| is_logged(l) && l["trace_id"] == trace_id)
    });
    let served = east.iter().find(|l| is_logged(l)).unwrap();
    assert_eq!(served["side"], "ingress", "{served}");
    assert_eq!(served["peer"], "eu", "{served}");
    assert_eq!(served["cluster"], "east", "{served}");
}

#[test]
fn a_bad_otlp_endpoint_is_named_before_anything_starts() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = &fed.clusters[0];
    c.set_gateway_option("tracing", "{ otlpEndpoint: \"collector:4317\" }");
    let out = c.run_expect_failure();
    assert!(!out.ok);
    assert!(
        out.stderr.contains("gateway.tracing.otlpEndpoint") && out.stderr.contains("http://"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_gateway_whose_access_log_cannot_be_opened_stops_at_start_naming_it() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = &mut fed.clusters[0];
    c.start();
    c.set_gateway_option("accessLog", "no-such-folder/access.log");
    let mut child = c
        .command(&fedmesh_tests::bin("fedgw"))
        .arg("--config")
        .arg(&c.config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fedgw");
    let deadline = std::time::Instant::now() + SYNC;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait fedgw") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fedgw kept running with an access log it cannot open");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot open gateway.accessLog")
            && stderr.contains("no-such-folder/access.log"),
        "{stderr}"
    );
}

#[test]
fn sample_ratio_zero_samples_no_started_trace_but_keeps_a_sampled_callers() {
    let mut fed = mesh();
    let receiver = OtlpReceiver::start(fed.get("eu").ip.into());
    let none = format!(
        "{{ otlpEndpoint: \"{}\", sampleRatio: 0 }}",
        receiver.endpoint()
    );
    start_gateways(&mut fed, &[("tracing", none)]);
    let backend = HeaderBackend::start(export_from_east(&fed, "hello", "http", 8080), "east");
    let vip = eu_vip(&fed, "hello", 8080);
    wait_until("eu's gateway serves the VIP", SYNC, || {
        get_with_headers(vip, "/warm", &[]).is_ok_and(|(status, _)| status == 200)
    });
    let (status, _) = get_with_headers(vip, "/started", &[]).unwrap();
    assert_eq!(status, 200);
    let (started, _, flags) = seen_traceparent(&backend, "/started");
    assert_eq!(flags, "00", "ratio 0: a started trace is not sampled");

    // The caller sampled it: both gateways export whatever their ratio.
    let incoming = traceparent(CALLER_TRACE, CALLER_SPAN, "01");
    let (status, _) = get_with_headers(vip, "/kept", &[("traceparent", &incoming)]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(seen_traceparent(&backend, "/kept").2, "01");
    let spans = receiver
        .wait_for_trace(CALLER_TRACE, 2, SPANS)
        .unwrap_or_else(|got| panic!("the sampled caller's spans did not arrive; got {got:#?}"));
    span_of(&spans, SPAN_KIND_CLIENT, "eu");
    span_of(&spans, SPAN_KIND_SERVER, "east");
    assert!(
        receiver.spans().iter().all(|s| s.trace_id != started),
        "the unsampled started trace was exported"
    );
}
