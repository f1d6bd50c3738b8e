//! A fake Kubernetes API server for the Kubernetes registry's end-to-end
//! tests: no real API server can run here, so this one speaks the API's
//! real JSON over HTTP on loopback, enough for kube-rs clients — list
//! (one page), watch (newline-delimited watch events from a resource
//! version, bookmarks not sent), get, server-side apply (PATCH) and delete
//! for core/v1 Services and Secrets and discovery.k8s.io/v1 EndpointSlices, with
//! `labelSelector` equality terms; and the Multi-Cluster Services API's
//! `multicluster.x-k8s.io/v1alpha1` ServiceExports and ServiceImports with
//! their `/status` subresource ([`subresource`]: the main resource's writes
//! keep the stored status, `/status` merge patches change only it), which
//! answer 404 while [`FakeKube::set_mcs_crds`] says the CRDs are absent;
//! and the Gateway API's `gateway.networking.k8s.io/v1` HTTPRoutes and
//! fedmesh's `fedmesh.io/v1alpha1` FaultInjections, which answer 404 while
//! [`FakeKube::set_route_crds`] says those CRDs are absent.
//!
//! Tests change objects with [`FakeKube::apply`] / [`FakeKube::delete`] and
//! force a relist with [`FakeKube::expire_watches`] (every open watch gets
//! a 410 Gone `ERROR` event, as a real API server sends when a watch's
//! resource version was compacted away).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use self::kind::Kind;
use self::kind::{Target, target};
use self::query::{parse_selector, percent_decode};

mod kind;
mod mode;
mod query;
mod subresource;

type Key = (Kind, String, String);

/// One open watch.
struct Watch {
    kind: Kind,
    namespace: Option<String>,
    selector: Vec<(String, String)>,
    tx: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct State {
    version: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change since start, for watches that resume from a version.
    log: Vec<(u64, &'static str, Kind, Value)>,
    watches: Vec<Watch>,
    next_cluster_ip: u32,
    requests: u64,
    /// The MCS CRDs are absent: their paths answer 404.
    no_mcs_crds: bool,
    /// The HTTPRoute and FaultInjection CRDs are absent: their paths
    /// answer 404.
    no_route_crds: bool,
    /// Namespaces that do not exist: writes into them answer 404.
    missing_namespaces: Vec<String>,
}

impl State {
    fn change(&mut self, kind: Kind, event: &'static str, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let key = key_of(kind, &object);
        if event == "DELETED" {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, object.clone());
        }
        self.watches
            .retain(|w| !w.matches(kind, &object) || w.tx.send(event_line(event, &object)).is_ok());
        self.log.push((self.version, event, kind, object));
    }
}

impl Watch {
    fn matches(&self, kind: Kind, object: &Value) -> bool {
        kind == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && selects(&self.selector, object)
    }
}

fn key_of(kind: Kind, object: &Value) -> Key {
    let meta = &object["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or("default").to_string();
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    (kind, ns, name)
}

fn selects(selector: &[(String, String)], object: &Value) -> bool {
    selector
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v))
}

/// The watch event a real API server sends when a watch's resource
/// version was compacted away: 410 Gone, so the client lists again.
fn gone() -> Bytes {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "too old resource version",
        "reason": "Expired", "code": 410
    });
    event_line("ERROR", &status)
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// The fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeKube {
    /// Starts serving on `ip`, a free port.
    ///
    /// # Panics
    /// When it cannot bind.
    pub fn start(ip: std::net::Ipv4Addr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake API runtime");
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((ip, 0)))
            .expect("bind fake API server");
        let addr = listener.local_addr().expect("fake API address");
        let serving = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file's text pointing at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{ server: \"{}\" }}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{ cluster: fake, user: fake, namespace: default }}\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Creates or replaces an object given as YAML (of a [`Kind`]);
    /// watches see ADDED or MODIFIED.
    ///
    /// # Panics
    /// On YAML that is not such an object.
    pub fn apply(&self, yaml: &str) {
        let object: Value = serde_saphyr::from_str(yaml).expect("test YAML");
        let kind = Kind::of(&object).expect("a kind the fake serves (see `Kind`)");
        let mut state = lock(&self.state);
        let event = if state.objects.contains_key(&key_of(kind, &object)) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.change(kind, event, object);
    }

    /// Creates or replaces an object without telling any watch, as when
    /// events were lost while a watch was down: clients see it only by
    /// listing again (after [`FakeKube::expire_watches`]).
    ///
    /// # Panics
    /// On YAML that is not such an object.
    pub fn apply_unseen(&self, yaml: &str) {
        let mut object: Value = serde_saphyr::from_str(yaml).expect("test YAML");
        let kind = Kind::of(&object).expect("a kind the fake serves (see `Kind`)");
        let mut state = lock(&self.state);
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        state.objects.insert(key_of(kind, &object), object);
    }

    /// Deletes an object; watches see DELETED. False when it did not exist.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let mut state = lock(&self.state);
        let key = (kind, namespace.to_string(), name.to_string());
        let Some(object) = state.objects.get(&key).cloned() else {
            return false;
        };
        state.change(kind, "DELETED", object);
        true
    }

    /// Ends every open watch with a 410 Gone ERROR event and forgets the
    /// change log, so clients must list again (a relist).
    pub fn expire_watches(&self) -> usize {
        let mut state = lock(&self.state);
        let watches = std::mem::take(&mut state.watches);
        for w in &watches {
            let _ = w.tx.send(gone());
        }
        state.log.clear();
        watches.len()
    }

    /// Says whether the MCS CRDs (ServiceExport, ServiceImport) are
    /// installed (by default they are); absent, their paths answer 404 as
    /// a real API server does for a resource it does not know.
    pub fn set_mcs_crds(&self, installed: bool) {
        lock(&self.state).no_mcs_crds = !installed;
    }

    /// Says whether the HTTPRoute and FaultInjection CRDs are installed
    /// (by default they are); absent, their paths answer 404.
    pub fn set_route_crds(&self, installed: bool) {
        lock(&self.state).no_route_crds = !installed;
    }

    /// Makes `namespace` one that does not exist: creating or changing an
    /// object in it answers 404, as a real API server does.
    pub fn without_namespace(&self, namespace: &str) {
        lock(&self.state).missing_namespaces.push(namespace.into());
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        let mut state = lock(&self.state);
        state.watches.retain(|w| !w.tx.is_closed());
        state.watches.len()
    }

    /// How many requests were served.
    pub fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    /// The stored objects of a kind whose labels match `selector` (`k=v`).
    pub fn objects(&self, kind: Kind, selector: &str) -> Vec<Value> {
        let selector = parse_selector(selector);
        lock(&self.state)
            .objects
            .iter()
            .filter(|((k, _, _), o)| *k == kind && selects(&selector, o))
            .map(|(_, o)| o.clone())
            .collect()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    lock(state).requests += 1;
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let served = target(req.uri().path()).filter(|t| {
        let s = lock(state);
        !(t.kind.is_mcs() && s.no_mcs_crds || t.kind.is_route() && s.no_route_crds)
    });
    let Some(t) = served else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let method = req.method().clone();
    match (method, t.name.clone()) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true") => {
            watch(state, &t, &query)
        }
        (Method::GET, None) => list(state, &t, &query),
        (Method::GET, Some(name)) => get(state, &t, &name),
        (Method::PATCH, Some(_)) if namespace_missing(state, &t) => {
            status(StatusCode::NOT_FOUND, "NotFound", "namespaces not found")
        }
        (Method::PATCH, Some(name)) => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return status(StatusCode::BAD_REQUEST, "BadRequest", "body"),
            };
            if t.status {
                subresource::merge_status(state, &t, &name, &body)
            } else {
                apply_patch(state, &t, &name, &body)
            }
        }
        (Method::DELETE, Some(name)) => {
            let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
            let mut s = lock(state);
            match s.objects.get(&(t.kind, ns, name)).cloned() {
                Some(object) => {
                    s.change(t.kind, "DELETED", object.clone());
                    json_response(StatusCode::OK, &object)
                }
                None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not served by the fake API server",
        ),
    }
}

fn namespace_missing(state: &Mutex<State>, t: &Target) -> bool {
    let s = lock(state);
    t.namespace
        .as_ref()
        .is_some_and(|ns| s.missing_namespaces.contains(ns))
}

fn in_scope(t: &Target, selector: &[(String, String)], key: &Key, object: &Value) -> bool {
    key.0 == t.kind
        && t.namespace.as_ref().is_none_or(|ns| *ns == key.1)
        && selects(selector, object)
}

fn list(state: &Arc<Mutex<State>>, t: &Target, query: &BTreeMap<String, String>) -> Response<Body> {
    let selector = parse_selector(query.get("labelSelector").map_or("", String::as_str));
    let s = lock(state);
    let items: Vec<Value> = s
        .objects
        .iter()
        .filter(|(k, o)| in_scope(t, &selector, k, o))
        .map(|(_, o)| o.clone())
        .collect();
    let list = json!({
        "kind": format!("{}List", t.kind.name()),
        "apiVersion": t.kind.api_version(),
        "metadata": { "resourceVersion": s.version.to_string() },
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

fn watch(
    state: &Arc<Mutex<State>>,
    t: &Target,
    query: &BTreeMap<String, String>,
) -> Response<Body> {
    let selector = parse_selector(query.get("labelSelector").map_or("", String::as_str));
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut s = lock(state);
    // A version older than the log (after expire_watches): 410 Gone.
    let oldest = s.log.first().map_or(s.version, |(v, ..)| v - 1);
    if from < oldest {
        let _ = tx.send(gone());
        drop(tx);
    } else {
        let w = Watch {
            kind: t.kind,
            namespace: t.namespace.clone(),
            selector,
            tx,
        };
        for (v, event, kind, object) in &s.log {
            if *v > from && w.matches(*kind, object) {
                let _ = w.tx.send(event_line(event, object));
            }
        }
        s.watches.push(w);
    }
    drop(s);
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let frames = futures_map(stream);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(frames).boxed())
        .expect("watch response")
}

fn futures_map(
    s: tokio_stream::wrappers::UnboundedReceiverStream<Bytes>,
) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    use tokio_stream::StreamExt;
    s.map(|b| Ok(Frame::data(b)))
}

fn get(state: &Arc<Mutex<State>>, t: &Target, name: &str) -> Response<Body> {
    let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
    match lock(state).objects.get(&(t.kind, ns, name.to_string())) {
        Some(o) => json_response(StatusCode::OK, o),
        None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
    }
}

/// Server-side apply, simplified: the applied object replaces the stored
/// one, except that a Service keeps the ClusterIP it was given (allocated
/// from 127.96.0.0/16 on create, as a real API server allocates from its
/// service CIDR).
fn apply_patch(state: &Arc<Mutex<State>>, t: &Target, name: &str, body: &[u8]) -> Response<Body> {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "apply body is not JSON",
        );
    };
    let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
    object["metadata"]["namespace"] = json!(ns);
    object["metadata"]["name"] = json!(name);
    let mut s = lock(state);
    let key = (t.kind, ns, name.to_string());
    let existing = s.objects.get(&key).cloned();
    if t.kind.has_status() {
        // The status subresource: writes of the main resource keep it.
        subresource::keep_status(&mut object, existing.as_ref());
    }
    if t.kind == Kind::Service {
        let ip = match existing
            .as_ref()
            .and_then(|e| e["spec"]["clusterIP"].as_str())
        {
            Some(ip) => ip.to_string(),
            None => {
                s.next_cluster_ip += 1;
                let n = s.next_cluster_ip;
                format!("127.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
            }
        };
        object["spec"]["clusterIP"] = json!(ip);
        object["spec"]["clusterIPs"] = json!([ip]);
    }
    let event = if existing.is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    s.change(t.kind, event, object);
    let stored = s.objects.get(&key).cloned().unwrap_or_default();
    json_response(StatusCode::OK, &stored)
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("response")
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    json_response(code, &body)
}
