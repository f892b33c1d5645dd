//! Sockets and health handed from one proxy to another in the same test process (the
//! descriptors are copies, as SCM_RIGHTS would give another process).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_model::elb::TargetHealthState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::{ProxyConfig, ProxyOptions};

const LISTENER: &str = "arn:listener/web";
const GROUP: &str = "arn:targetgroup/web";

fn proxy() -> Arc<Proxy> {
    Proxy::new(ProxyOptions {
        bind_ip: "127.0.0.1".parse().unwrap(),
        mesh_ips: Vec::new(),
        registry: prometheus::Registry::new(),
        data_plane_threads: 0,
    })
    .unwrap()
}

/// One HTTP listener on `port` answering 200 "handed" itself.
fn fixed_config(port: u16) -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "loadBalancers": [{
            "loadBalancerName": "web",
            "listeners": [{
                "port": port, "protocol": "HTTP", "listenerArn": LISTENER,
                "defaultActions": [{"type": "fixed-response", "fixedResponseConfig":
                    {"statusCode": "200", "contentType": "text/plain", "messageBody": "handed"}}],
            }]
        }],
        "targetGroups": [],
    }))
    .unwrap()
}

/// A listener forwarding to one target group whose only target is `target`.
fn forward_config(target: SocketAddr) -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "loadBalancers": [{
            "loadBalancerName": "web",
            "listeners": [{
                "port": 0, "protocol": "HTTP", "listenerArn": LISTENER,
                "defaultActions": [{"type": "forward", "targetGroupArn": GROUP}],
            }]
        }],
        "targetGroups": [{
            "group": {"targetGroupName": "web", "targetGroupArn": GROUP,
                      "healthCheckPath": "/health", "healthCheckIntervalSeconds": 30,
                      "healthCheckTimeoutSeconds": 20},
            "targets": [{"id": "127.0.0.1", "port": target.port(), "addr": target.to_string(),
                         "draining": false}],
        }],
    }))
    .unwrap()
}

fn std_listener(s: ListeningSocket) -> std::net::TcpListener {
    std::net::TcpListener::from(s.fd)
}

async fn get(addr: SocketAddr) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    out
}

#[tokio::test]
async fn a_handed_over_listener_serves_connections_queued_while_nobody_accepted() {
    let old = proxy();
    let addr = old.apply(fixed_config(0)).await.unwrap()[LISTENER];
    let mut sockets = old.listening_sockets().await.unwrap();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let handed = sockets.pop().unwrap();
    assert_eq!(handed.role, SocketRole::Listener(LISTENER.to_string()));
    assert_eq!(handed.addr, addr);
    // The old proxy stops accepting; the socket lives on in the handed descriptor, so a
    // client connecting now waits in the accept queue instead of being refused.
    old.shutdown().await;
    let mut queued = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the kernel still accepts on the handed socket");
    queued
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();

    let new = proxy();
    new.adopt_listeners(HashMap::from([(
        LISTENER.to_string(),
        std_listener(handed),
    )]))
    .await;
    let bound = new.apply(fixed_config(0)).await.unwrap();
    assert_eq!(bound[LISTENER], addr, "the listener kept its port");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), queued.read_to_string(&mut answer))
        .await
        .expect("the queued connection is answered")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("handed"), "{answer}");
    // And connections made afterwards.
    assert!(get(addr).await.ends_with("handed"));
    new.shutdown().await;
}

#[tokio::test]
async fn a_handed_socket_on_another_port_is_closed_and_the_listener_binds_its_own() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let wanted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = wanted.local_addr().unwrap().port();
    drop(wanted);
    let p = proxy();
    p.adopt_listeners(HashMap::from([(LISTENER.to_string(), other)]))
        .await;
    let bound = p.apply(fixed_config(port)).await.unwrap();
    assert_eq!(bound[LISTENER].port(), port);
    assert!(
        tokio::net::TcpStream::connect(other_addr).await.is_err(),
        "the socket that did not fit was closed"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn the_mesh_inbound_listener_is_handed_over_with_its_address() {
    let old = proxy();
    let addr = old
        .bind_mesh_inbound("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sockets = old.listening_sockets().await.unwrap();
    let inbound = sockets
        .into_iter()
        .find(|s| s.role == SocketRole::MeshInbound)
        .expect("the inbound listener is listed");
    assert_eq!(inbound.addr, addr);
    old.shutdown().await;
    let new = proxy();
    assert_eq!(new.adopt_mesh_inbound(std_listener(inbound)).unwrap(), addr);
    // It accepts (and, with no mesh TLS configured, closes the connection).
    tokio::net::TcpStream::connect(addr)
        .await
        .expect("the inbound port accepts");
    new.shutdown().await;
}

#[tokio::test]
async fn targets_in_their_initial_state_take_the_health_handed_over() {
    // A target that accepts connections and never answers: its checks take 20 s, so it
    // stays `initial` here unless told otherwise.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _silent = &silent;
    let target = silent.local_addr().unwrap();
    let p = proxy();
    p.apply(forward_config(target)).await.unwrap();
    let before = p.target_statuses();
    assert_eq!(before[0].health.state, TargetHealthState::Initial);

    let mut seen = before.clone();
    seen[0].health.state = TargetHealthState::Healthy;
    seen[0].health.reason = None;
    let mut unknown = seen[0].clone();
    unknown.target_group_arn = "arn:targetgroup/gone".into();
    assert_eq!(p.inherit_health(&[unknown, seen[0].clone()]), 1);
    let after = p.target_statuses();
    assert_eq!(
        after[0].health.state,
        TargetHealthState::Healthy,
        "{after:?}"
    );
    // Taken once: a target no longer initial keeps what its own checks decide.
    seen[0].health.state = TargetHealthState::Unhealthy;
    assert_eq!(p.inherit_health(&seen), 0);
    assert_eq!(
        p.target_statuses()[0].health.state,
        TargetHealthState::Healthy
    );
    p.shutdown().await;
}

#[test]
fn unhealthy_reasons_map_back_to_their_health() {
    let status = |state, reason: Option<&str>, description: Option<&str>| TargetStatus {
        target_group_arn: GROUP.into(),
        addr: "127.0.0.1:1".parse().unwrap(),
        health: berth_model::elb::TargetHealth {
            state,
            reason: reason.map(str::to_string),
            description: description.map(str::to_string),
        },
        in_flight: 0,
        request_count: 0,
        drained: false,
        ejected: false,
    };
    use TargetHealthState::*;
    assert_eq!(
        checked_health(&status(
            Unhealthy,
            Some("Target.ResponseCodeMismatch"),
            Some("Health checks failed with these codes: [503]")
        )),
        Some((Health::UnhealthyMismatch, 503))
    );
    assert_eq!(
        checked_health(&status(Unhealthy, Some("Target.Timeout"), None)),
        Some((Health::UnhealthyTimeout, 0))
    );
    assert_eq!(checked_health(&status(Initial, None, None)), None);
    assert_eq!(checked_health(&status(Draining, None, None)), None);
}

/// Reads one response of `fixed_config`'s listener (its body is `handed`).
async fn read_response(c: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.ends_with(b"handed") {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// A keep-alive HTTP/1.1 target answering every request 200 `handed`.
async fn answering_target() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhanded";
                        if c.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match c.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_keep_alive_connection_answers_one_more_request_once_its_listener_closed() {
    let p = proxy();
    let target = answering_target().await;
    let addr = p.apply(forward_config(target)).await.unwrap()[LISTENER];
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut c).await;
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    // The listener closes (as an old data plane's does after a handover) while the
    // connection sits between requests.
    let closing = tokio::spawn({
        let p = p.clone();
        async move { p.shutdown().await }
    });
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener closed"
    );
    // The client had not seen the close yet: its next request still gets an answer,
    // which closes the connection.
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut c).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the last answer");
    closing.await.unwrap();
}
