//! HTTP forwarding, health gating, draining, retries and reconfiguration, end to end
//! through real sockets.

use std::time::Duration;

use crate::common::*;
use berth_model::elb::TargetHealthState;
use berth_proxy::{ProxyConfig, ProxyError};
use serde_json::json;

#[tokio::test]
async fn forwards_round_robin_once_targets_pass_their_first_check() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (p, _) = proxy();
    let cfg = simple_config(
        target_group(TG, "web", json!({})),
        vec![target(a.addr), target(b.addr)],
    );
    let addrs = p.apply(cfg).await.unwrap();
    let addr = addrs[LISTENER];
    assert_ne!(addr.port(), 0, "port 0 binds an ephemeral port");
    wait_for(&p, |s| all_healthy(s, 2)).await;
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, body) = get(&c, addr, "/").await;
        assert_eq!(status, 200);
        seen.push(body);
    }
    assert_eq!(a.count(), 5);
    assert_eq!(b.count(), 5);
    for w in seen.windows(2) {
        assert_ne!(w[0], w[1], "round robin alternates: {seen:?}");
    }
    p.shutdown().await;
}

#[tokio::test]
async fn a_new_target_gets_no_traffic_before_its_first_passing_check() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    b.health_status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let (p, _) = proxy();
    let addr = serve_group(&p, target_group(TG, "web", json!({})), vec![target(a.addr)]).await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    p.apply(simple_config(
        target_group(TG, "web", json!({})),
        vec![target(a.addr), target(b.addr)],
    ))
    .await
    .unwrap();
    let s = p.target_statuses();
    let bs = s.iter().find(|t| t.addr == b.addr).unwrap();
    assert_eq!(bs.health.state, TargetHealthState::Initial);
    assert_eq!(
        bs.health.reason.as_deref(),
        Some("Elb.InitialHealthChecking")
    );
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, addr, "/").await, (200, "a".to_string()));
    }
    assert_eq!(b.count(), 0);
    p.shutdown().await;
}

#[tokio::test]
async fn disabled_health_checks_make_targets_unavailable_and_routable() {
    let a = Backend::start("a").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(a.addr)]).await;
    let s = p.target_statuses();
    assert_eq!(s[0].health.state, TargetHealthState::Unavailable);
    assert_eq!(
        s[0].health.reason.as_deref(),
        Some("Target.HealthCheckDisabled")
    );
    assert_eq!(get(&client(), addr, "/").await, (200, "a".to_string()));
    p.shutdown().await;
}

#[tokio::test]
async fn no_targets_gives_503_and_connection_failures_502() {
    let (p, r) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg.clone(), vec![]).await;
    let c = client();
    let (status, body) = get(&c, addr, "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("503 Service Unavailable"));
    // A target nobody listens on: connection refused on every attempt.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    p.apply(simple_config(tg, vec![target(dead_addr)]))
        .await
        .unwrap();
    assert_eq!(get(&c, addr, "/").await.0, 502);
    assert_eq!(
        metric(&r, "berth_lb_elb_responses_total", &[("code", "503")]),
        1.0
    );
    assert_eq!(
        metric(&r, "berth_lb_elb_responses_total", &[("code", "502")]),
        1.0
    );
    assert!(
        metric(
            &r,
            "berth_lb_target_connection_errors_total",
            &[("target", &dead_addr.to_string())]
        ) >= 1.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_target_and_ejected() {
    let a = Backend::start("a").await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (p, r) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(dead_addr), target(a.addr)]).await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(get(&c, addr, "/").await, (200, "a".to_string()));
    }
    // Ejected after the first failure: later requests do not try it again.
    let errors = metric(
        &r,
        "berth_lb_target_connection_errors_total",
        &[("target", &dead_addr.to_string())],
    );
    assert_eq!(errors, 1.0, "the dead target is tried once, then ejected");
    assert_eq!(
        metric(&r, "berth_lb_retries_total", &[("target_group", "web")]),
        1.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn killed_target_process_does_not_fail_requests() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (p, _) = proxy();
    let addr = serve_group(
        &p,
        target_group(TG, "web", json!({})),
        vec![target(a.addr), target(b.addr)],
    )
    .await;
    wait_for(&p, |s| all_healthy(s, 2)).await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(get(&c, addr, "/").await.0, 200);
    }
    // b's process dies: its listener and its kept-alive connections go away.
    b.kill();
    for _ in 0..20 {
        assert_eq!(get(&c, addr, "/").await, (200, "a".to_string()));
    }
    p.shutdown().await;
}

#[tokio::test]
async fn draining_ends_when_the_last_in_flight_request_finishes() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"healthCheckEnabled": false, "attributes": {"load_balancing.algorithm.type": "least_outstanding_requests"}}),
    );
    let addr = serve_group(&p, tg.clone(), vec![target(a.addr), target(b.addr)]).await;
    // A slow request pinned on a (b has one outstanding below, so LOR picks a).
    let c = client();
    let c2 = c.clone();
    let slow_b = tokio::spawn(async move { get(&c2, addr, "/slow").await });
    tokio::select! {
        _ = a.slow_arrived.notified() => {}
        _ = b.slow_arrived.notified() => {}
    }
    let busy = p
        .target_statuses()
        .into_iter()
        .find(|t| t.in_flight == 1)
        .unwrap()
        .addr;
    let (busy_backend, idle_backend) = if busy == a.addr { (&a, &b) } else { (&b, &a) };

    p.apply(simple_config(
        tg.clone(),
        vec![draining(busy), target(idle_backend.addr)],
    ))
    .await
    .unwrap();
    let s = p.target_statuses();
    let st = s.iter().find(|t| t.addr == busy).unwrap();
    assert_eq!(st.health.state, TargetHealthState::Draining);
    assert_eq!(
        st.health.reason.as_deref(),
        Some("Target.DeregistrationInProgress")
    );
    assert!(!st.drained, "a request is still in flight");
    assert_eq!(st.in_flight, 1);
    let before = busy_backend.count();
    for _ in 0..5 {
        assert_eq!(get(&c, addr, "/").await, (200, idle_backend.name.clone()));
    }
    assert_eq!(
        busy_backend.count(),
        before,
        "a draining target gets no new request"
    );

    busy_backend.release.notify_one();
    assert_eq!(slow_b.await.unwrap(), (200, busy_backend.name.clone()));
    let s = wait_for(&p, |s| s.iter().any(|t| t.addr == busy && t.drained)).await;
    assert_eq!(state_of(&s, busy), TargetHealthState::Draining);
    // The control plane drops it.
    p.apply(simple_config(tg, vec![target(idle_backend.addr)]))
        .await
        .unwrap();
    assert_eq!(p.target_statuses().len(), 1);
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn draining_ends_after_the_deregistration_delay() {
    let a = Backend::start("a").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"healthCheckEnabled": false, "attributes": {"deregistration_delay.timeout_seconds": "30"}}),
    );
    let addr = serve_group(&p, tg.clone(), vec![target(a.addr)]).await;
    let c = client();
    let slow = tokio::spawn(async move { get(&c, addr, "/slow").await });
    a.slow_arrived.notified().await;
    p.apply(simple_config(tg, vec![draining(a.addr)]))
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let s = wait_for(&p, |s| s[0].drained).await;
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert_eq!(
        s[0].in_flight, 1,
        "drained by the timer, not by the request"
    );
    a.release.notify_one();
    assert_eq!(slow.await.unwrap().0, 200);
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn health_state_transitions_follow_thresholds() {
    let a = Backend::start("a").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"healthyThresholdCount": 3, "unhealthyThresholdCount": 2}),
    );
    p.apply(simple_config(tg, vec![target(a.addr)]))
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    wait_for(&p, |s| all_healthy(s, 1)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "one passing check suffices"
    );

    a.health_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let t1 = tokio::time::Instant::now();
    let s = wait_for(&p, |s| s[0].health.state == TargetHealthState::Unhealthy).await;
    assert_eq!(
        s[0].health.reason.as_deref(),
        Some("Target.ResponseCodeMismatch")
    );
    assert!(s[0].health.description.as_deref().unwrap().contains("503"));
    // Two failures, 5 s apart; the target's second check comes up to half an interval
    // late (checks of targets registered together are spread).
    assert!(
        t1.elapsed() >= Duration::from_secs(5)
            && t1.elapsed() < Duration::from_secs(10) + Duration::from_millis(2500),
        "{:?}",
        t1.elapsed()
    );

    a.health_status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let t2 = tokio::time::Instant::now();
    wait_for(&p, |s| all_healthy(s, 1)).await;
    // Three passes: at least two intervals.
    assert!(
        t2.elapsed() >= Duration::from_secs(10),
        "{:?}",
        t2.elapsed()
    );
    a.kill();
    let s = wait_for(&p, |s| s[0].health.state == TargetHealthState::Unhealthy).await;
    assert_eq!(
        s[0].health.reason.as_deref(),
        Some("Target.FailedHealthChecks")
    );
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn all_unhealthy_fails_open() {
    let a = Backend::start("a").await;
    a.health_status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let (p, r) = proxy();
    let addr = serve_group(&p, target_group(TG, "web", json!({})), vec![target(a.addr)]).await;
    wait_for(&p, |s| s[0].health.state == TargetHealthState::Unhealthy).await;
    assert_eq!(get(&client(), addr, "/").await, (200, "a".to_string()));
    assert_eq!(
        metric(&r, "berth_lb_unhealthy_hosts", &[("target_group", "web")]),
        1.0
    );
    assert_eq!(
        metric(&r, "berth_lb_healthy_hosts", &[("target_group", "web")]),
        0.0
    );
    assert_eq!(
        metric(
            &r,
            "berth_lb_unhealthy_routing_requests_total",
            &[("target_group", "web")]
        ),
        1.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn an_invalid_config_changes_nothing() {
    let a = Backend::start("a").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg.clone(), vec![target(a.addr)]).await;
    // A forward to a target group that is not in the configuration.
    let mut bad = simple_config(tg.clone(), vec![]);
    bad.target_groups.clear();
    assert!(matches!(p.apply(bad).await, Err(ProxyError::Config { .. })));
    // A model validation failure.
    let mut bad = simple_config(
        target_group(TG, "web", json!({"healthCheckIntervalSeconds": 1})),
        vec![],
    );
    bad.load_balancers[0].listeners[0].port = 0;
    assert!(matches!(
        p.apply(bad).await,
        Err(ProxyError::Invalid { .. })
    ));
    assert_eq!(get(&client(), addr, "/").await, (200, "a".to_string()));
    assert_eq!(p.target_statuses().len(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn removing_a_listener_closes_its_port_and_keeps_others() {
    let a = Backend::start("a").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let mut cfg = simple_config(tg, vec![target(a.addr)]);
    let mut second = cfg.load_balancers[0].listeners[0].clone();
    second.listener_arn = format!("{LISTENER}-2");
    cfg.load_balancers[0].listeners.push(second);
    let addrs = p.apply(cfg.clone()).await.unwrap();
    assert_eq!(addrs.len(), 2);
    let (one, two) = (addrs[LISTENER], addrs[&format!("{LISTENER}-2")]);
    let c = client();
    assert_eq!(get(&c, two, "/").await.0, 200);
    cfg.load_balancers[0].listeners.pop();
    let again = p.apply(cfg).await.unwrap();
    assert_eq!(
        again[LISTENER], one,
        "an unchanged listener keeps its socket"
    );
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(two).await.is_err() {
            closed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(closed, "the removed listener's port is closed");
    assert_eq!(get(&c, one, "/").await.0, 200);
    p.shutdown().await;
    assert!(tokio::net::TcpStream::connect(one).await.is_err());
    assert!(matches!(
        p.apply(ProxyConfig::default()).await,
        Err(ProxyError::ShutDown)
    ));
}

#[tokio::test]
async fn targets_change_under_load_without_a_failed_request() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"attributes": {"deregistration_delay.timeout_seconds": "5"}}),
    );
    let addr = serve_group(&p, tg.clone(), vec![target(backends[0].addr)]).await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && ok + failed < 50_000 {
                let req = hyper::Request::post(format!("http://{addr}/"))
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
                    .unwrap();
                match c.request(req).await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    // Roll a -> b -> c the way the control plane does: add, wait healthy, drain, drop.
    // Each step waits for traffic to reach the backends it expects.
    async fn traffic(b: &Backend, n: u64) {
        let want = b.count() + n;
        for _ in 0..10_000 {
            if b.count() >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("no traffic reached {}", b.name);
    }
    for i in 1..3 {
        let (old, new) = (&backends[i - 1], &backends[i]);
        traffic(old, 50).await;
        p.apply(simple_config(
            tg.clone(),
            vec![target(old.addr), target(new.addr)],
        ))
        .await
        .unwrap();
        wait_for(&p, |s| all_healthy(s, 2)).await;
        p.apply(simple_config(
            tg.clone(),
            vec![draining(old.addr), target(new.addr)],
        ))
        .await
        .unwrap();
        wait_for(&p, |s| s.iter().any(|t| t.addr == old.addr && t.drained)).await;
        p.apply(simple_config(tg.clone(), vec![target(new.addr)]))
            .await
            .unwrap();
        old.kill();
    }
    traffic(&backends[2], 50).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut failed) = (0, 0);
    for l in load {
        let (o, f) = l.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(failed, 0, "{ok} ok");
    assert!(ok > 0);
    assert!(backends[2].count() > 0);
    p.shutdown().await;
}

#[tokio::test]
async fn target_statuses_carry_request_counts_that_restart_with_the_target() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({}));
    let addr = serve_group(&p, tg.clone(), vec![target(a.addr), target(b.addr)]).await;
    wait_for(&p, |s| all_healthy(s, 2)).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, addr, "/").await.0, 200);
    }
    let count = |s: &[berth_proxy::TargetStatus], t: std::net::SocketAddr| {
        s.iter().find(|x| x.addr == t).map(|x| x.request_count)
    };
    let s = p.target_statuses();
    assert_eq!(count(&s, a.addr), Some(a.count()));
    assert_eq!(count(&s, b.addr), Some(b.count()));
    assert_eq!(a.count() + b.count(), 10);
    // Removed and registered again: a new target whose count starts from 0.
    p.apply(simple_config(tg.clone(), vec![target(a.addr)]))
        .await
        .unwrap();
    p.apply(simple_config(tg, vec![target(a.addr), target(b.addr)]))
        .await
        .unwrap();
    let s = p.target_statuses();
    assert_eq!(count(&s, b.addr), Some(0));
    assert_eq!(count(&s, a.addr), Some(a.count()));
    p.shutdown().await;
}
