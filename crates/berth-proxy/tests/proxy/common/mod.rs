//! Test helpers: small hyper backends, configuration builders and a client.
#![allow(dead_code)]

pub mod mesh_ca;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_model::elb::{LoadBalancer, TargetGroup, TargetHealthState};
use berth_proxy::{Proxy, ProxyConfig, ProxyOptions, ProxyTarget, TargetGroupConfig, TargetStatus};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A test backend: answers `name` on every path; `/health` answers `health_status`.
/// `/slow` waits until `release` is notified. Counts requests (health checks apart).
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub health_status: Arc<AtomicU16>,
    /// The status of every answer but `/health`'s (200 unless set).
    pub status: Arc<AtomicU16>,
    pub release: Arc<Notify>,
    /// Notified when a `/slow` request arrives.
    pub slow_arrived: Arc<Notify>,
    /// The last request's headers, as `name: value` lines.
    pub last_headers: Arc<std::sync::Mutex<String>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(name, listener)
    }

    pub fn serve(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let shared = BackendShared {
            name: name.to_string(),
            requests: Arc::new(AtomicU64::new(0)),
            health_status: Arc::new(AtomicU16::new(200)),
            status: Arc::new(AtomicU16::new(200)),
            release: Arc::new(Notify::new()),
            slow_arrived: Arc::new(Notify::new()),
            last_headers: Arc::new(std::sync::Mutex::new(String::new())),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut accept_stop = stop_rx.clone();
        let backend = shared.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
                    _ = accept_stop.changed() => return,
                };
                let backend = backend.clone();
                let mut conn_stop = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let backend = backend.clone();
                        async move { Ok::<_, Infallible>(backend.answer(req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(s), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = conn_stop.changed() => {}
                    }
                });
            }
        });
        Backend {
            name: shared.name,
            addr,
            requests: shared.requests,
            health_status: shared.health_status,
            status: shared.status,
            release: shared.release,
            slow_arrived: shared.slow_arrived,
            last_headers: shared.last_headers,
            stop,
        }
    }

    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The process dies: the port is closed (connections get refused) and open
    /// connections are dropped.
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }
}

type BackendBody = http_body_util::Either<
    Full<Bytes>,
    http_body_util::StreamBody<
        futures::stream::Iter<std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, Infallible>>>,
    >,
>;

/// What a backend's connections share with the [`Backend`] handle.
#[derive(Clone)]
struct BackendShared {
    name: String,
    requests: Arc<AtomicU64>,
    health_status: Arc<AtomicU16>,
    status: Arc<AtomicU16>,
    release: Arc<Notify>,
    slow_arrived: Arc<Notify>,
    last_headers: Arc<std::sync::Mutex<String>>,
}

impl BackendShared {
    async fn answer(&self, req: Request<Incoming>) -> Response<BackendBody> {
        if req.uri().path() == "/health" {
            let code = self.health_status.load(Ordering::SeqCst);
            let mut resp =
                Response::new(http_body_util::Either::Left(Full::new(Bytes::from("ok"))));
            *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            return resp;
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut hs = format!("version: {:?}\n", req.version());
        for (k, v) in req.headers() {
            hs.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        *self.last_headers.lock().unwrap() = hs;
        if req.uri().path() == "/trailers" {
            let mut t = hyper::HeaderMap::new();
            t.insert("grpc-status", "0".parse().unwrap());
            let frames = vec![
                Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(self.name.clone()))),
                Ok(hyper::body::Frame::trailers(t)),
            ];
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            return Response::new(http_body_util::Either::Right(body));
        }
        if req.uri().path() == "/slow" {
            self.slow_arrived.notify_one();
            self.release.notified().await;
        }
        let path = req.uri().path().to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = if body.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, String::from_utf8_lossy(&body))
        };
        let mut resp = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(text))));
        *resp.status_mut() =
            hyper::StatusCode::from_u16(self.status.load(Ordering::SeqCst)).unwrap();
        if path == "/setcookie" {
            resp.headers_mut()
                .insert("set-cookie", "session=abc".parse().unwrap());
        }
        resp
    }
}

/// A proxy whose mesh listeners bind on `mesh_ips`.
pub fn mesh_proxy(mesh_ips: &[&str]) -> (Arc<Proxy>, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let p = Proxy::new(ProxyOptions {
        bind_ip: "127.0.0.1".parse().unwrap(),
        mesh_ips: mesh_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        registry: registry.clone(),
        data_plane_threads: 0,
    })
    .unwrap();
    (p, registry)
}

/// A proxy whose listeners' connections are served on `threads` worker threads.
pub fn proxy_on_workers(threads: usize) -> (Arc<Proxy>, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let mut options = ProxyOptions::new("127.0.0.1".parse().unwrap(), registry.clone());
    options.data_plane_threads = threads;
    (Proxy::new(options).unwrap(), registry)
}

pub fn proxy() -> (Arc<Proxy>, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let p = Proxy::new(ProxyOptions {
        bind_ip: "127.0.0.1".parse().unwrap(),
        mesh_ips: vec![],
        registry: registry.clone(),
        data_plane_threads: 0,
    })
    .unwrap();
    (p, registry)
}

pub const TG: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/web/1";
pub const LISTENER: &str = "arn:berth:elasticloadbalancing:local:0:listener/app/web/1/80";

pub fn target_group(arn: &str, name: &str, extra: serde_json::Value) -> TargetGroup {
    let mut v = serde_json::json!({
        "targetGroupName": name,
        "targetGroupArn": arn,
        "healthCheckPath": "/health",
        "healthCheckIntervalSeconds": 5,
        "healthCheckTimeoutSeconds": 2,
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, val) in m {
            v[k] = val;
        }
    }
    serde_json::from_value(v).unwrap()
}

pub fn target(addr: SocketAddr) -> ProxyTarget {
    ProxyTarget {
        id: addr.ip().to_string(),
        port: addr.port() as u32,
        addr,
        draining: false,
        mesh_hop: None,
    }
}

pub fn draining(addr: SocketAddr) -> ProxyTarget {
    ProxyTarget {
        draining: true,
        ..target(addr)
    }
}

/// A load balancer with one HTTP listener on port 0 forwarding to `TG`, plus `rules`.
pub fn load_balancer(rules: serde_json::Value, attributes: serde_json::Value) -> LoadBalancer {
    serde_json::from_value(serde_json::json!({
        "loadBalancerName": "web",
        "attributes": attributes,
        "listeners": [{
            "port": 0, "protocol": "HTTP", "listenerArn": LISTENER,
            "defaultActions": [{"type": "forward", "targetGroupArn": TG}],
            "rules": rules,
        }]
    }))
    .unwrap()
}

pub fn simple_config(group: TargetGroup, targets: Vec<ProxyTarget>) -> ProxyConfig {
    ProxyConfig {
        load_balancers: vec![load_balancer(serde_json::json!([]), serde_json::json!({}))],
        target_groups: vec![TargetGroupConfig {
            group,
            targets,
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    }
}

/// Serves `group` with `targets` behind the listener of [`simple_config`]; returns the
/// listener's address.
/// An HTTP/2 client connection to `addr` over h2c (prior knowledge), its connection
/// driven by a task of its own.
pub async fn h2c_client<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

pub async fn serve_group(p: &Proxy, group: TargetGroup, targets: Vec<ProxyTarget>) -> SocketAddr {
    p.apply(simple_config(group, targets)).await.unwrap()[LISTENER]
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn get(c: &HttpClient, addr: SocketAddr, path: &str) -> (u16, String) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GETs `path`, with `cookie` as the Cookie header when given: the response's headers and
/// body.
pub async fn get_with_cookie(
    c: &HttpClient,
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> (hyper::HeaderMap, String) {
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let resp = c
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("request");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.headers, String::from_utf8_lossy(&body).into_owned())
}

/// Waits (on the proxy's change notifications) until `f` holds for the statuses.
pub async fn wait_for(p: &Proxy, f: impl Fn(&[TargetStatus]) -> bool) -> Vec<TargetStatus> {
    let mut rx = p.subscribe();
    let fut = async {
        loop {
            let s = p.target_statuses();
            if f(&s) {
                return s;
            }
            rx.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("condition reached")
}

pub fn state_of(s: &[TargetStatus], addr: SocketAddr) -> TargetHealthState {
    s.iter()
        .find(|t| t.addr == addr)
        .map(|t| t.health.state)
        .expect("target listed")
}

pub fn all_healthy(s: &[TargetStatus], n: usize) -> bool {
    s.len() == n
        && s.iter()
            .all(|t| t.health.state == TargetHealthState::Healthy)
}

/// The value of a metric sample with the given labels.
pub fn metric(r: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for mf in r.gather() {
        if mf.name() != name {
            continue;
        }
        for m in mf.get_metric() {
            let ok = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if ok {
                return match mf.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => m.get_histogram().get_sample_count() as f64,
                };
            }
        }
    }
    0.0
}
