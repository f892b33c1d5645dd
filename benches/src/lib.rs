//! berth-benches: benchmarks of berth's load balancer against its peers.
//!
//! What it holds: the configuration the standalone proxy runner hands `berth-proxy`
//! ([`proxy_config`]), and the mesh hop benchmark's ([`mesh::mesh_proxy_config`], with a
//! mesh CA made at start, [`mesh::MeshBenchCa`]), built only from the proxy's public API
//! and berth's models, so the benchmarks measure exactly what the control plane would
//! configure.
//!
//! What it does not do: it does not install or start nginx, HAProxy, wrk or h2load;
//! `run.sh`, `mesh.sh` and `workloads.sh` check for them and drive every run.
//!
//! Layout:
//! - `src/lib.rs`: [`BenchConfig`], [`proxy_config`] and the backend ([`serve_backend`]).
//! - `src/bin/berth-bench-proxy.rs`: one ALB listener forwarding to one target, on a
//!   runtime with a chosen number of worker threads; prints `ready <addr>` once the
//!   listener is bound and the target is healthy.
//! - `src/bin/berth-bench-backend.rs`: the backend every run uses (HTTP/1.1 keep-alive,
//!   a small fixed response, one thread); `src/backend.rs`: what it answers (also
//!   `/bytes/<n>`, uploads and WebSocket upgrades for `workloads.sh`).
//! - `src/bin/berth-bench-handshake.rs`, `src/bin/berth-bench-idle.rs`: the load tools
//!   `workloads.sh` needs beyond wrk and h2load (TLS handshakes per second; many idle
//!   keep-alive connections or WebSockets held open).
//! - `src/mesh.rs`: the mesh hop's configuration and certificates.
//! - `src/bin/berth-bench-mesh.rs`: one node's proxy serving both ends of a mesh hop (mesh
//!   listener → mutual TLS → its own inbound listener → the backend); prints `ready
//!   <addr>` once a request has crossed the hop.
//! - `run.sh`: the peer comparison (direct, berth, nginx, HAProxy), one markdown table.
//! - `mesh.sh`: the mesh hop against nginx doing the same two hops, one markdown table.
//! - `workloads.sh`: berth against nginx and HAProxy on seven workload groups (new
//!   connections, TLS handshakes, HTTP/2, large bodies, idle connections, many rules and
//!   targets), one markdown table per group.
//! - `src/placement.rs` and `src/bin/berth-bench-placement.rs`: the scheduler placing
//!   10,000 tasks on 1,000 instances through the service reconciler's placement path;
//!   `placement.sh` builds it in release and prints its table.

pub mod backend;
pub mod mesh;
pub mod placement;

pub use backend::serve_backend;

/// Logs as `berth` itself does (a `tracing` subscriber on stderr, `BERTH_LOG` or
/// `info`): without a subscriber, `tracing` hands every span it creates to the `log`
/// crate instead, which costs the HTTP/2 library's per-frame spans work that `berth`
/// never does, so a bench proxy without one would measure code that does not run.
pub fn log_as_berth_does() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The tokio runtime a bench proxy runs on: `threads` worker threads, or one
/// current-thread runtime for 1 (or 0), as the peers run single-threaded.
pub fn bench_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

use std::net::SocketAddr;

use anyhow::{Context, Result};
use berth_model::arn;
use berth_model::elb::{LoadBalancer, TargetGroup};
use berth_proxy::{ProxyConfig, ProxyTarget, TargetGroupConfig};
use serde_json::json;

/// The backend's response body: 100 bytes, a typical small API response.
pub const BACKEND_BODY: &[u8] =
    b"{\"service\":\"berth-bench-backend\",\"status\":\"ok\",\"padding\":\"0123456789abcdef0123456789abcdef0123456\"}\n";

/// The load balancer's name in every benchmark configuration.
pub const LB_NAME: &str = "bench";
/// The target group's name in every benchmark configuration.
pub const TG_NAME: &str = "bench-backend";

/// What the benchmark listener looks like.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The listener's port (0 for one chosen by the system).
    pub listen_port: u16,
    /// The target every request is forwarded to (the first of [`BenchConfig::targets`]).
    pub backend: SocketAddr,
    /// Targets in the target group: 1 is `backend` alone; more are `backend`'s port on
    /// distinct loopback addresses ([`target_addrs`]), which reach a backend bound to
    /// 0.0.0.0.
    pub targets: usize,
    /// Path-pattern rules placed before the default action that never match a benchmark
    /// request, so every request is evaluated against all of them first.
    pub rules: usize,
    /// PEM certificate chain and private key: an HTTPS listener instead of HTTP.
    pub tls: Option<(String, String)>,
    /// The target group's health check interval (ALB allows 5–300 s).
    pub health_interval_seconds: u32,
    /// A network load balancer's TCP listener (bytes forwarded as they are) instead of an
    /// application load balancer's HTTP one.
    pub tcp: bool,
    /// The targets speak HTTPS (an HTTPS target group; the proxy does not verify their
    /// certificates, as an ALB does not).
    pub backend_https: bool,
}

impl BenchConfig {
    pub fn new(listen_port: u16, backend: SocketAddr) -> BenchConfig {
        BenchConfig {
            listen_port,
            backend,
            rules: 0,
            targets: 1,
            tls: None,
            health_interval_seconds: 5,
            tcp: false,
            backend_https: false,
        }
    }
}

/// The addresses of `n` targets at `backend`'s port: `backend` itself first, then
/// 127.0.x.y (y in 1..=254, skipping `backend`'s own address). At most 254 × 256 − 1.
pub fn target_addrs(backend: SocketAddr, n: usize) -> Result<Vec<SocketAddr>> {
    const MAX: usize = 254 * 256 - 1;
    if n == 0 || n > MAX {
        anyhow::bail!("targets: must be 1 to {MAX}, got {n}");
    }
    let mut out = vec![backend];
    let mut i = 0usize;
    while out.len() < n {
        let ip = std::net::Ipv4Addr::new(127, 0, (i / 254) as u8, (i % 254 + 1) as u8);
        i += 1;
        let addr = SocketAddr::new(ip.into(), backend.port());
        if addr != backend {
            out.push(addr);
        }
    }
    Ok(out)
}

/// The ARN of the benchmark listener.
pub fn listener_arn(port: u16) -> String {
    arn::listener("app", LB_NAME, port as u32)
}

/// One application load balancer with one listener whose default action forwards to one
/// target group holding `c.targets` targets (`c.backend` first), preceded by `c.rules`
/// non-matching path-pattern rules.
pub fn proxy_config(c: &BenchConfig) -> Result<ProxyConfig> {
    let tg_arn = arn::target_group(TG_NAME);
    let lb_arn = arn::load_balancer("app", LB_NAME);
    let port = c.listen_port as u32;

    let (lb_type, group_protocol, check) = if c.tcp {
        ("network", "TCP", json!({ "healthCheckProtocol": "TCP" }))
    } else if c.backend_https {
        ("application", "HTTPS", json!({ "healthCheckPath": "/" }))
    } else {
        ("application", "HTTP", json!({ "healthCheckPath": "/" }))
    };
    let mut group = json!({
        "targetGroupName": TG_NAME,
        "protocol": group_protocol,
        "port": c.backend.port(),
        "targetType": "ip",
        "healthCheckIntervalSeconds": c.health_interval_seconds,
        "healthCheckTimeoutSeconds": 2,
        "healthyThresholdCount": 2,
        "unhealthyThresholdCount": 2,
        "attributes": { "deregistration_delay.timeout_seconds": "0" },
    });
    if let (Some(g), Some(c)) = (group.as_object_mut(), check.as_object()) {
        g.extend(c.clone());
    }
    let mut group: TargetGroup =
        serde_json::from_value(group).context("building the target group")?;
    group.target_group_arn = tg_arn.clone();
    group.load_balancer_arns = vec![lb_arn.clone()];

    let forward = json!([{ "type": "forward", "targetGroupArn": tg_arn }]);
    let rules: Vec<serde_json::Value> = (0..c.rules)
        .map(|i| {
            json!({
                "priority": i + 1,
                "conditions": [{ "field": "path-pattern", "values": [format!("/svc{i}/*")] }],
                "actions": forward,
            })
        })
        .collect();
    let (protocol, certificates) = match &c.tls {
        _ if c.tcp => ("TCP", json!([])),
        Some((cert, key)) => (
            "HTTPS",
            json!([{ "certificateFile": cert, "privateKeyFile": key }]),
        ),
        None => ("HTTP", json!([])),
    };
    let mut lb: LoadBalancer = serde_json::from_value(json!({
        "loadBalancerName": LB_NAME,
        "type": lb_type,
        "scheme": "internal",
        "listeners": [{
            "port": port,
            "protocol": protocol,
            "certificates": certificates,
            "defaultActions": forward,
            "rules": rules,
        }],
    }))
    .context("building the load balancer")?;
    lb.load_balancer_arn = lb_arn;
    for l in &mut lb.listeners {
        l.listener_arn = listener_arn(c.listen_port);
        for r in &mut l.rules {
            r.rule_arn = arn::listener_rule("app", LB_NAME, port, r.priority);
        }
    }

    Ok(ProxyConfig {
        load_balancers: vec![lb],
        target_groups: vec![TargetGroupConfig {
            group,
            targets: target_addrs(c.backend, c.targets)?
                .into_iter()
                .map(|addr| ProxyTarget {
                    id: addr.ip().to_string(),
                    port: addr.port() as u32,
                    addr,
                    draining: false,
                    mesh_hop: None,
                })
                .collect(),
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn config_validates_with_100_rules() {
        let mut c = BenchConfig::new(0, "127.0.0.1:9".parse().unwrap());
        c.rules = 100;
        let cfg = proxy_config(&c).unwrap();
        for lb in &cfg.load_balancers {
            lb.validate().unwrap();
        }
        for tg in &cfg.target_groups {
            tg.group.validate().unwrap();
        }
        let l = &cfg.load_balancers[0].listeners[0];
        assert_eq!(l.rules.len(), 100);
        assert!(!l.listener_arn.is_empty());
        assert_eq!(
            l.default_actions[0].target_group_arn,
            cfg.target_groups[0].group.target_group_arn
        );
    }

    #[test]
    fn a_thousand_distinct_loopback_targets() {
        let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let addrs = target_addrs(backend, 1000).unwrap();
        assert_eq!(addrs.len(), 1000);
        assert_eq!(addrs[0], backend);
        let distinct: std::collections::HashSet<_> = addrs.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(addrs.iter().all(|a| a.port() == 9 && a.ip().is_loopback()));
        let e = target_addrs(backend, 0).unwrap_err().to_string();
        assert!(e.contains("targets"), "{e}");

        let mut c = BenchConfig::new(0, backend);
        c.targets = 1000;
        c.rules = 1000;
        let cfg = proxy_config(&c).unwrap();
        assert_eq!(cfg.target_groups[0].targets.len(), 1000);
        assert_eq!(cfg.load_balancers[0].listeners[0].rules.len(), 1000);
    }

    #[test]
    fn backend_body_is_100_bytes() {
        assert_eq!(BACKEND_BODY.len(), 100);
    }

    /// The benchmark path end to end: backend, berth with 100 rules, one request.
    #[tokio::test]
    async fn forwards_through_100_rules_to_the_backend() {
        use berth_model::elb::TargetHealthState;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        tokio::spawn(serve_backend(backend));

        let mut c = BenchConfig::new(0, backend_addr);
        c.rules = 100;
        let proxy = berth_proxy::Proxy::new(berth_proxy::ProxyOptions {
            bind_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: vec![],
            registry: prometheus::Registry::new(),
            data_plane_threads: 0,
        })
        .unwrap();
        let bound = proxy.apply(proxy_config(&c).unwrap()).await.unwrap();
        let addr = bound[&listener_arn(0)];

        let healthy = async {
            while !proxy
                .target_statuses()
                .iter()
                .all(|s| s.health.state == TargetHealthState::Healthy)
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), healthy)
            .await
            .expect("the backend becomes healthy");

        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(
            resp.ends_with(std::str::from_utf8(BACKEND_BODY).unwrap()),
            "{resp}"
        );
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn proxy_accepts_the_config() {
        let mut c = BenchConfig::new(0, "127.0.0.1:9".parse().unwrap());
        c.rules = 100;
        let proxy = berth_proxy::Proxy::new(berth_proxy::ProxyOptions {
            bind_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: vec![],
            registry: prometheus::Registry::new(),
            data_plane_threads: 0,
        })
        .unwrap();
        let bound = proxy.apply(proxy_config(&c).unwrap()).await.unwrap();
        assert_eq!(bound.len(), 1);
        assert!(bound.contains_key(&listener_arn(0)));
        proxy.shutdown().await;
    }
}
