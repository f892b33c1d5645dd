//! Target-group runtime: settings, routable targets and target selection.

use super::*;
use crate::group_settings::Stickiness;
use berth_model::elb::TargetGroup;
use std::time::Duration;

fn group(attrs: serde_json::Value) -> Arc<GroupRuntime> {
    let tg: TargetGroup = serde_json::from_value(serde_json::json!({
        "targetGroupName": "web", "targetGroupArn": "arn:tg", "attributes": attrs
    }))
    .unwrap();
    GroupRuntime::new(
        "arn:tg",
        GroupSettings::from_model(&tg, &tg.validate().unwrap()).unwrap(),
        &Metrics::new(&prometheus::Registry::new()),
        Notifier::new(),
        Clock::new(),
        None,
    )
}

#[test]
fn settings_follow_the_model() {
    let g = group(serde_json::json!({
        "load_balancing.algorithm.type": "peak_ewma",
        "stickiness.enabled": "true",
        "stickiness.type": "app_cookie",
        "stickiness.app_cookie.cookie_name": "sid",
        "deregistration_delay.timeout_seconds": "7",
    }));
    let s = g.settings.load();
    assert_eq!(s.algorithm, Algorithm::PeakEwma);
    assert_eq!(s.deregistration_delay, Duration::from_secs(7));
    assert!(matches!(&s.stickiness, Some(Stickiness::AppCookie { name, .. }) if name == "sid"));
    assert_eq!(s.health.interval, Duration::from_secs(30));
    assert!(s.health.matches(200) && !s.health.matches(204));
}

#[tokio::test]
async fn routable_excludes_initial_and_draining_targets_until_fail_open() {
    let g = group(serde_json::json!({}));
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let pt = |addr, draining| ProxyTarget {
        id: "127.0.0.1".into(),
        port: addr_port(addr),
        addr,
        draining,
        mesh_hop: None,
    };
    fn addr_port(a: SocketAddr) -> u32 {
        a.port() as u32
    }
    let settings = g.settings.load_full();
    g.update((*settings).clone(), &[pt(a, false), pt(b, false)]);
    // Both initial: fail open to both.
    assert!(g.routable.load().fail_open);
    let ta = g.targets.load()[0].clone();
    ta.set_health(Health::Healthy, 0);
    g.recompute();
    let r = g.routable.load();
    assert!(!r.fail_open);
    assert_eq!(r.targets.len(), 1);
    assert_eq!(g.pick(&[], None).unwrap().target().addr, a);
    // a drains: b (initial) is all there is, so the group fails open to it.
    g.update((*settings).clone(), &[pt(a, true), pt(b, false)]);
    assert_eq!(g.pick(&[], None).unwrap().target().addr, b);
    assert_eq!(g.pick(&[b], None).map(|f| f.target().addr), None);
}

/// A group with `n` routable targets (health checks off), 10.0.x.y:8080.
fn group_of(attrs: serde_json::Value, n: u16) -> Arc<GroupRuntime> {
    let g = group(attrs);
    let mut settings = (**g.settings.load()).clone();
    settings.health.enabled = false;
    let targets: Vec<ProxyTarget> = (0..n).map(|i| pt(addr(i), false)).collect();
    g.update(settings, &targets);
    assert_eq!(g.routable.load().targets.len(), usize::from(n));
    g
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080))
}

fn pt(addr: SocketAddr, draining: bool) -> ProxyTarget {
    ProxyTarget {
        id: addr.ip().to_string(),
        port: 8080,
        addr,
        draining,
        mesh_hop: None,
    }
}

/// Holds `k` requests in flight on the `i`th target.
fn load(g: &GroupRuntime, i: usize, k: usize) -> Vec<InFlight> {
    let t = g.targets.load()[i].clone();
    (0..k).map(|_| t.try_acquire().unwrap()).collect()
}

#[tokio::test]
async fn least_outstanding_requests_picks_a_target_with_the_fewest_in_flight() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(3);
    for n in [1u16, 2, 17, 200] {
        let g = group_of(
            serde_json::json!({"load_balancing.algorithm.type": "least_outstanding_requests"}),
            n,
        );
        for _ in 0..20 {
            // Random loads, some targets idle or none; and some targets excluded.
            let idle = rng.random_bool(0.5);
            let mut held = Vec::new();
            for i in 0..usize::from(n) {
                held.extend(load(&g, i, rng.random_range(usize::from(!idle)..4)));
            }
            let exclude: Vec<SocketAddr> =
                (0..n).filter(|_| rng.random_bool(0.2)).map(addr).collect();
            let targets = g.targets.load();
            let least = targets
                .iter()
                .filter(|t| !exclude.contains(&t.addr))
                .map(|t| t.in_flight())
                .min();
            let got = g.pick(&exclude, None);
            match least {
                Some(least) => {
                    let got = got.expect("a usable target");
                    assert!(!exclude.contains(&got.target().addr));
                    // Counted in now: one more than it had.
                    assert_eq!(got.target().in_flight(), least + 1, "n={n}");
                }
                None => assert!(got.is_none()),
            }
        }
    }
}

#[tokio::test]
async fn least_outstanding_requests_shares_ties_round() {
    let g = group_of(
        serde_json::json!({"load_balancing.algorithm.type": "least_outstanding_requests"}),
        50,
    );
    let _busy = load(&g, 7, 1);
    let mut seen = std::collections::HashSet::new();
    // One pick per starting position: the one at the busy target passes to the next.
    for _ in 0..50 {
        let t = g.pick(&[], None).unwrap().target().addr;
        assert_ne!(t, addr(7), "the busy target is not the least loaded");
        seen.insert(t);
    }
    assert_eq!(seen.len(), 49, "idle targets take turns");
}

#[tokio::test]
async fn weighted_random_is_uniform_over_usable_targets() {
    let n = 10u16;
    let g = group_of(
        serde_json::json!({"load_balancing.algorithm.type": "weighted_random"}),
        n,
    );
    let exclude = [addr(2), addr(5), addr(9)];
    let draws = 70_000;
    let mut counts = std::collections::HashMap::new();
    for _ in 0..draws {
        let t = g.pick(&exclude, None).unwrap().target().addr;
        *counts.entry(t).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 7, "only the usable targets: {counts:?}");
    let expected = draws as f64 / 7.0;
    for (t, c) in counts {
        assert!(!exclude.contains(&t));
        // 10,000 expected each: 5 % is over 5 standard deviations.
        assert!(
            (f64::from(c) - expected).abs() < expected * 0.05,
            "{t}: {c} of {draws}"
        );
    }
}

#[tokio::test]
async fn a_sticky_target_is_found_among_many() {
    for alg in [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
    ] {
        let g = group_of(
            serde_json::json!({"load_balancing.algorithm.type": alg}),
            1000,
        );
        for i in [0u16, 1, 499, 777, 999] {
            let got = g.pick(&[], Some(addr(i))).unwrap();
            assert_eq!(got.target().addr, addr(i), "{alg}");
        }
        // A target the group does not have, or one the request already failed on.
        let gone: SocketAddr = "10.9.9.9:8080".parse().unwrap();
        assert!(g.pick(&[], Some(gone)).is_some());
        let got = g.pick(&[addr(3)], Some(addr(3))).unwrap();
        assert_ne!(got.target().addr, addr(3), "{alg}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_until_the_newest_target_is_through() {
    let g = group(serde_json::json!({"slow_start.duration_seconds": "30"}));
    let mut settings = (**g.settings.load()).clone();
    settings.health.enabled = false;
    g.update(settings, &[pt(addr(1), false), pt(addr(2), false)]);
    assert_eq!(g.routable.load().ramp_until_ms, 0, "no target healthy yet");
    let targets = g.targets.load_full();
    targets[0].set_health(Health::Healthy, 0);
    g.recompute();
    let first = g.routable.load().ramp_until_ms;
    assert_eq!(first, targets[0].healthy_since_ms() + 30_000);
    tokio::time::advance(Duration::from_secs(10)).await;
    targets[1].set_health(Health::Healthy, 0);
    g.recompute();
    assert_eq!(g.routable.load().ramp_until_ms, first + 10_000);
    for t in targets.iter() {
        t.mark_removed();
    }
}
