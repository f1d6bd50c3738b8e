//! gRPC for the harness, built on tonic: a `Greeter` server
//! (`proto/greeter.proto`) whose every answer names the cluster that
//! served it, with unary, server-streaming and bidirectional-streaming
//! calls, and an error status on request, so that tests see where each
//! call of one channel went and what reached the client.
//!
//! The server runs on a runtime of its own; dropping [`GrpcBackend`] stops
//! that runtime, which closes its listener and every open HTTP/2
//! connection at once (what a killed process does to its peers).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status, Streaming};

/// The generated messages, server and client of `fedmesh.testing.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod greeter {
    tonic::include_proto!("fedmesh.testing.v1");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{CountRequest, EchoMessage, HelloReply, HelloRequest};

/// Longest server stream a `Count` call may ask for, so that a bad request
/// cannot keep the server busy.
const MAX_COUNT: u32 = 100_000;

/// A tonic `Greeter` server that answers as `<name>`.
#[derive(Debug)]
pub struct GrpcBackend {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl GrpcBackend {
    /// Serves on `addr` as `name`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, name: &str) -> Self {
        let (runtime, listener) = crate::serve::bind(addr, "gRPC backend");
        let calls = Arc::new(AtomicUsize::new(0));
        let service = NamedGreeter {
            cluster: Arc::from(name),
            calls: calls.clone(),
        };
        runtime.spawn(async move {
            // Ends when the runtime is dropped with the backend.
            let served = tonic::transport::Server::builder()
                .add_service(GreeterServer::new(service))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
            if let Err(error) = served {
                eprintln!("gRPC backend {addr}: {error}");
            }
        });
        Self {
            addr,
            calls,
            runtime: Some(runtime),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls it took so far (of every kind).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The service: every answer carries `cluster`.
#[derive(Debug, Clone)]
struct NamedGreeter {
    cluster: Arc<str>,
    calls: Arc<AtomicUsize>,
}

impl NamedGreeter {
    /// The status `code` with `message`, marked `x-served-by: <cluster>`.
    fn failure(&self, code: i32, message: String) -> Status {
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let Ok(by) = self.cluster.parse() {
            metadata.insert("x-served-by", by);
        }
        Status::with_metadata(Code::from_i32(code), message, metadata)
    }
}

/// A stream of answers, as tonic's generated trait wants it.
type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for NamedGreeter {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = request.into_inner();
        if request.fail_code != 0 {
            return Err(self.failure(request.fail_code, request.fail_message));
        }
        Ok(Response::new(HelloReply {
            cluster: self.cluster.to_string(),
            message: format!("hello {}", request.name),
            seq: 0,
        }))
    }

    type CountStream = Answers<HelloReply>;

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let CountRequest {
            count,
            fail_code,
            fail_message,
        } = request.into_inner();
        if count > MAX_COUNT {
            return Err(Status::invalid_argument(format!(
                "count {count} is over {MAX_COUNT}"
            )));
        }
        let cluster = self.cluster.clone();
        let replies = tokio_stream::iter(0..count).map(move |seq| {
            Ok(HelloReply {
                cluster: cluster.to_string(),
                message: format!("reply {seq}"),
                seq,
            })
        });
        // A status after messages travels in the trailers (gRPC over
        // HTTP/2: Trailers = Status [Status-Message] *Custom-Metadata).
        let end = (fail_code != 0).then(|| Err(self.failure(fail_code, fail_message)));
        Ok(Response::new(Box::pin(
            replies.chain(tokio_stream::iter(end)),
        )))
    }

    type EchoStream = Answers<EchoMessage>;

    async fn echo(
        &self,
        request: Request<Streaming<EchoMessage>>,
    ) -> Result<Response<Self::EchoStream>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let cluster = self.cluster.clone();
        // Each message is answered as it arrives, before the next is read:
        // the call streams both ways at once.
        let echoes = request.into_inner().map(move |message| {
            message.map(|mut m| {
                m.cluster = cluster.to_string();
                m
            })
        });
        Ok(Response::new(Box::pin(echoes)))
    }
}
