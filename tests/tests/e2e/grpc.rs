//! gRPC through the real binaries with a real gRPC client and server:
//! three clusters (east, west, eu) with gateways, demo/hello exported by
//! east and west on a port named `grpc` with tonic `Greeter` servers that
//! answer their cluster's name, and a tonic client in eu that makes all
//! its calls on ONE channel (one HTTP/2 connection to eu's gateway), so
//! the tests see that calls, not connections, are balanced and failed over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::grpc_backend::greeter::greeter_client::GreeterClient;
use fedmesh_tests::grpc_backend::greeter::{CountRequest, EchoMessage, HelloRequest};
use fedmesh_tests::{EXPORT, Federation, GrpcBackend, service_yaml, wait_until};
use tokio::runtime::Runtime;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const SYNC: Duration = Duration::from_secs(20);
/// How long one call (or one whole stream) may take.
const CALL: Duration = Duration::from_secs(30);

/// The mesh with a gateway in every cluster.
fn mesh() -> Federation {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    fed
}

/// Exports demo/hello in `cluster` on the gRPC port `grpc:8080` with
/// `annotations`, and serves it there with a tonic server.
fn serve_hello(fed: &Federation, cluster: &str, annotations: &[(&str, &str)]) -> GrpcBackend {
    let c = fed.get(cluster);
    let backend: SocketAddr = (c.ip, 18080).into();
    let ip = backend.ip().to_string();
    let yaml = service_yaml("demo", "hello", "grpc", 8080, 18080, annotations, &[&ip]);
    c.write_manifest("hello.yaml", &yaml);
    GrpcBackend::start(backend, cluster)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the gRPC client")
}

/// One tonic channel to `vip`: one HTTP/2 connection for every call.
fn channel(
    rt: &Runtime,
    vip: SocketAddr,
) -> Result<GreeterClient<Channel>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{vip}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL);
    rt.block_on(endpoint.connect()).map(GreeterClient::new)
}

/// One unary call: the serving cluster, or the status.
fn hello(
    rt: &Runtime,
    client: &mut GreeterClient<Channel>,
    name: &str,
) -> Result<String, tonic::Status> {
    let request = HelloRequest {
        name: name.to_string(),
        ..HelloRequest::default()
    };
    let reply = rt.block_on(client.hello(request))?.into_inner();
    assert_eq!(reply.message, format!("hello {name}"), "{reply:?}");
    Ok(reply.cluster)
}

/// eu's VIP for demo/hello once both exporters are imported and a call
/// through eu's gateway succeeds.
fn eu_vip(fed: &Federation, rt: &Runtime) -> SocketAddr {
    let eu = fed.get("eu");
    wait_until("eu imports hello from east and west", SYNC, || {
        eu.service_clusters("demo/hello") == ["east", "west"]
    });
    let service = eu.service("demo/hello").expect("imported");
    assert_eq!(service["ports"][0]["protocol"], "GRPC", "{service}");
    let vip: std::net::IpAddr = service["vip"].as_str().unwrap().parse().unwrap();
    let addr = SocketAddr::new(vip, 8080);
    wait_until("a gRPC call through eu's gateway succeeds", SYNC, || {
        channel(rt, addr).is_ok_and(|mut c| hello(rt, &mut c, "probe").is_ok())
    });
    addr
}

/// `n` unary calls on `client`: the answers by serving cluster.
fn calls(rt: &Runtime, client: &mut GreeterClient<Channel>, n: usize) -> BTreeMap<String, usize> {
    let mut served = BTreeMap::new();
    for i in 0..n {
        match hello(rt, client, &format!("call-{i}")) {
            Ok(cluster) => *served.entry(cluster).or_default() += 1,
            Err(status) => panic!("call {i} on one channel: {status:?} (so far {served:?})"),
        }
    }
    served
}

#[test]
fn one_channels_calls_follow_the_weights_across_clusters() {
    let fed = mesh();
    let weighted = [EXPORT, ("fedmesh.io/weights", "east=80,west=20")];
    let east_server = serve_hello(&fed, "east", &weighted);
    let west_server = serve_hello(&fed, "west", &weighted);
    let rt = runtime();
    let vip = eu_vip(&fed, &rt);
    wait_until("eu sees the weights", SYNC, || {
        let s = fed.get("eu").service("demo/hello");
        s.is_some_and(|s| s["weights"]["east"] == 80 && s["weights"]["west"] == 20)
    });
    let mut client = channel(&rt, vip).expect("a channel to eu's VIP");
    let (east_before, west_before) = (east_server.calls(), west_server.calls());
    let served = calls(&rt, &mut client, 400);
    let east = served.get("east").copied().unwrap_or(0) as f64 / 400.0;
    assert!(
        (east - 0.8).abs() <= 0.08,
        "400 calls on one channel: {served:?}"
    );
    // Each server took exactly the calls that named it: none was sent twice.
    assert_eq!(east_server.calls() - east_before, served["east"]);
    assert_eq!(west_server.calls() - west_before, served["west"]);
}

#[test]
fn streaming_calls_both_ways_and_error_statuses_pass_the_gateways_unchanged() {
    let fed = mesh();
    let _east = serve_hello(&fed, "east", &[EXPORT]);
    let _west = serve_hello(&fed, "west", &[EXPORT]);
    let rt = runtime();
    let vip = eu_vip(&fed, &rt);
    let mut client = channel(&rt, vip).expect("a channel to eu's VIP");
    server_stream_arrives_whole_in_order(&rt, &mut client, 500);
    bidi_stream_echoes_each_message_as_it_arrives(&rt, &mut client, 100, 2000);
    concurrent_and_large_calls_share_the_channel(&rt, &client);
    // A unary error status (trailers-only response) arrives as sent.
    let failing = HelloRequest {
        name: "nobody".into(),
        fail_code: Code::NotFound as i32,
        fail_message: "no greeting for nobody".into(),
    };
    let status = rt.block_on(client.hello(failing)).expect_err("NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no greeting for nobody", "{status:?}");
    assert!(status.metadata().get("x-served-by").is_some(), "{status:?}");
    // A status after streamed messages travels in real HTTP/2 trailers.
    let request = CountRequest {
        count: 3,
        fail_code: Code::ResourceExhausted as i32,
        fail_message: "stream stopped: quota".into(),
    };
    let got = rt.block_on(async {
        let mut stream = client.count(request).await?.into_inner();
        let mut replies = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => return Ok::<_, tonic::Status>((replies, None)),
                Err(status) => return Ok((replies, Some(status))),
            }
        }
    });
    let (replies, status) = got.expect("the stream starts");
    assert_eq!(
        replies.len(),
        3,
        "the replies before the status: {replies:?}"
    );
    let status = status.expect("the stream ends with the backend's status");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "stream stopped: quota", "{status:?}");
    let by = status
        .metadata()
        .get("x-served-by")
        .map(|v| v.to_str().ok());
    assert_eq!(by, Some(Some(replies[0].cluster.as_str())), "{status:?}");
}

/// A server stream of `n` replies comes whole, in order, from one cluster,
/// and ends with an OK status (tonic fails a stream whose trailers lack
/// `grpc-status`).
fn server_stream_arrives_whole_in_order(rt: &Runtime, client: &mut GreeterClient<Channel>, n: u32) {
    let request = CountRequest {
        count: n,
        ..CountRequest::default()
    };
    let replies = rt
        .block_on(async {
            let mut stream = client.count(request).await?.into_inner();
            let mut replies = Vec::new();
            while let Some(reply) = stream.message().await? {
                replies.push(reply);
            }
            Ok::<_, tonic::Status>(replies)
        })
        .expect("the server stream ends with OK");
    assert_eq!(replies.len(), n as usize);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.seq as usize, i, "{reply:?}");
        assert_eq!(reply.cluster, replies[0].cluster, "one call, one cluster");
    }
}

/// 64 calls at once on the one channel (HTTP/2 streams side by side), and
/// a call whose request and answer are 1 MiB each (far past what the
/// gateway keeps of a body for a replay), all answered whole.
fn concurrent_and_large_calls_share_the_channel(rt: &Runtime, client: &GreeterClient<Channel>) {
    let answers = rt.block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..64 {
            let mut client = client.clone();
            let request = HelloRequest {
                name: format!("at-once-{i}"),
                ..HelloRequest::default()
            };
            calls.spawn(async move { client.hello(request).await.map(|r| (i, r.into_inner())) });
        }
        let mut answers = Vec::new();
        while let Some(joined) = calls.join_next().await {
            answers.push(joined.expect("the call task ran"));
        }
        answers
    });
    assert_eq!(answers.len(), 64);
    for answer in answers {
        let (i, reply) = answer.expect("every call at once is answered");
        assert_eq!(reply.message, format!("hello at-once-{i}"));
    }
    let big = "x".repeat(1024 * 1024);
    let mut client = client.clone();
    let cluster = hello(rt, &mut client, &big).expect("a 1 MiB call is answered");
    assert!(["east", "west"].contains(&cluster.as_str()), "{cluster}");
}

/// A bidirectional stream: `lockstep` messages sent one at a time, each
/// only after the previous echo came back (so a gateway that waited for
/// the whole request before forwarding would stall here), then the rest of
/// `total` at once; every message is echoed, in order, by one cluster.
fn bidi_stream_echoes_each_message_as_it_arrives(
    rt: &Runtime,
    client: &mut GreeterClient<Channel>,
    lockstep: u32,
    total: u32,
) {
    let deadline = Instant::now() + CALL;
    let echoed = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let message = |seq: u32| EchoMessage {
            seq,
            payload: vec![u8::try_from(seq % 251).unwrap_or(0); 1024],
            cluster: String::new(),
        };
        tx.send(message(0))
            .await
            .expect("the call holds the receiver");
        let call = client.echo(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut echoes = tokio::time::timeout(CALL, call)
            .await
            .expect("answered")?
            .into_inner();
        let mut echoed = Vec::new();
        let mut sender = Some(tx);
        for seq in 1..=total {
            if seq <= lockstep {
                let echo = tokio::time::timeout_at(deadline.into(), echoes.next()).await;
                let echo = echo.expect("each echo comes before the next message is sent");
                echoed.push(echo.expect("the stream stays open")?);
            }
            let tx = sender.as_ref().expect("still sending");
            if seq < total {
                tx.send(message(seq))
                    .await
                    .expect("the call holds the receiver");
            } else {
                sender = None;
            }
        }
        drop(sender);
        while let Some(echo) = tokio::time::timeout_at(deadline.into(), echoes.next())
            .await
            .expect("the rest of the echoes arrive in time")
        {
            echoed.push(echo?);
        }
        Ok::<_, tonic::Status>(echoed)
    });
    let echoed = echoed.expect("the bidirectional stream ends with OK");
    assert_eq!(echoed.len(), total as usize, "every message echoed");
    for (i, echo) in echoed.iter().enumerate() {
        assert_eq!(echo.seq as usize, i, "in order");
        assert_eq!(echo.payload.len(), 1024, "payload kept");
        assert_eq!(echo.cluster, echoed[0].cluster, "one call, one cluster");
    }
}

/// Calls on one channel until east has served one, then `kill` east's
/// side, then `after` calls on the same channel: all must succeed, at west.
fn new_calls_go_to_west_after(
    kill: impl FnOnce(&mut Federation, GrpcBackend) -> Option<GrpcBackend>,
    after: usize,
) {
    let mut fed = mesh();
    let east = serve_hello(&fed, "east", &[EXPORT]);
    let _west = serve_hello(&fed, "west", &[EXPORT]);
    let rt = runtime();
    let vip = eu_vip(&fed, &rt);
    let mut client = channel(&rt, vip).expect("a channel to eu's VIP");
    let mut before = BTreeMap::<String, usize>::new();
    for i in 0..200 {
        if before.contains_key("east") {
            break;
        }
        let cluster = hello(&rt, &mut client, &format!("before-{i}")).expect("both serve");
        *before.entry(cluster).or_default() += 1;
    }
    assert!(
        before.contains_key("east"),
        "east served before: {before:?}"
    );
    let (tx, mut open) = echo_stream_on(&rt, &mut client, "east");
    let _kept = kill(&mut fed, east);
    // The call east was serving ends with an error, promptly, not a hang
    // and not an OK (the cut reaches the client through both gateways).
    let cut = rt.block_on(async { tokio::time::timeout(CALL, open.message()).await });
    let cut = cut.expect("the cut call ends in time");
    assert!(cut.is_err(), "a call cut by east's death: {cut:?}");
    drop(tx);
    let served = calls(&rt, &mut client, after);
    assert_eq!(
        served.get("west"),
        Some(&after),
        "after the kill: {served:?}"
    );
}

/// An Echo call on `client` that `cluster` serves (one message echoed),
/// still open: its sender and its answers.
fn echo_stream_on(
    rt: &Runtime,
    client: &mut GreeterClient<Channel>,
    cluster: &str,
) -> (
    tokio::sync::mpsc::Sender<EchoMessage>,
    tonic::Streaming<EchoMessage>,
) {
    for _ in 0..100 {
        let opened = rt.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(EchoMessage::default())
                .await
                .expect("the call holds rx");
            let call = client.echo(tokio_stream::wrappers::ReceiverStream::new(rx));
            let mut echoes = call.await?.into_inner();
            let first = echoes.message().await?;
            Ok::<_, tonic::Status>((tx, echoes, first))
        });
        let (tx, echoes, first) = opened.expect("an Echo call is answered");
        if first.is_some_and(|m| m.cluster == cluster) {
            return (tx, echoes);
        }
    }
    panic!("no Echo call of 100 went to {cluster}");
}

#[test]
fn new_calls_on_one_channel_go_to_west_when_easts_grpc_server_dies() {
    new_calls_go_to_west_after(
        |_, east| {
            drop(east);
            None
        },
        60,
    );
}

#[test]
fn new_calls_on_one_channel_go_to_west_when_easts_gateway_dies() {
    new_calls_go_to_west_after(
        |fed, east| {
            fed.get_mut("east").kill_gateway();
            Some(east)
        },
        60,
    );
}

/// A route in eu's registry that retries demo/hello's 503s twice.
const RETRY_ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hello-retry, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - backendRefs: [ { kind: Service, name: hello, port: 8080 } ]
      retry: { attempts: 2, codes: [ 503 ] }
"#;

/// One unary call answered `code` with `fail_code` set: how many calls the
/// two servers took for it.
fn failing_call(
    rt: &Runtime,
    client: &mut GreeterClient<Channel>,
    servers: &[&GrpcBackend],
    code: Code,
) -> usize {
    let before: usize = servers.iter().map(|s| s.calls()).sum();
    let request = HelloRequest {
        name: "retry".into(),
        fail_code: code as i32,
        fail_message: format!("{code:?} on purpose"),
    };
    let status = rt
        .block_on(client.hello(request))
        .expect_err("a failing call");
    assert_eq!(status.code(), code, "{status:?}");
    servers.iter().map(|s| s.calls()).sum::<usize>() - before
}

#[test]
fn a_routes_retry_resends_a_grpc_call_answered_unavailable_and_nothing_else() {
    let fed = mesh();
    let east = serve_hello(&fed, "east", &[EXPORT]);
    let west = serve_hello(&fed, "west", &[EXPORT]);
    let rt = runtime();
    let vip = eu_vip(&fed, &rt);
    let mut client = channel(&rt, vip).expect("a channel to eu's VIP");
    let servers = [&east, &west];
    // Without a route a gRPC call (a POST) is never sent twice.
    assert_eq!(
        failing_call(&rt, &mut client, &servers, Code::Unavailable),
        1
    );

    fed.get("eu")
        .write_manifest("hello-retry.yaml", RETRY_ROUTE);
    wait_until(
        "eu's gateway retries an UNAVAILABLE call (1 call + 2 retries)",
        SYNC,
        || failing_call(&rt, &mut client, &servers, Code::Unavailable) == 3,
    );
    // Another status is the call's answer: not retried.
    assert_eq!(failing_call(&rt, &mut client, &servers, Code::NotFound), 1);
    // A call that succeeds is sent once.
    let before = east.calls() + west.calls();
    hello(&rt, &mut client, "once").expect("a call that succeeds");
    assert_eq!(east.calls() + west.calls() - before, 1);
}
