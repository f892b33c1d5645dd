//! The request engine's decisions, without sockets: targets are never connected to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_model::dataplane::{MeshGroupSettings, OutlierDetection};
use berth_model::elb::TargetGroup;
use http::StatusCode;

use super::*;
use crate::clock::Clock;
use crate::config::ProxyTarget;
use crate::group_settings::GroupSettings;
use crate::mesh::{MeshGroup, MeshMetricsFamilies};
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// A round-robin group of `n` routable targets (health checks off).
fn group(n: u8) -> (Arc<GroupRuntime>, Vec<SocketAddr>) {
    group_with(n, None)
}

/// A mesh group of `n` routable targets with `outlier` detection.
fn mesh_group(n: u8, outlier: OutlierDetection) -> (Arc<GroupRuntime>, Vec<SocketAddr>) {
    group_with(
        n,
        Some(MeshGroupSettings {
            namespace: "internal".into(),
            discovery_name: "orders".into(),
            per_request_timeout_seconds: 15,
            outlier_detection: outlier,
        }),
    )
}

fn group_with(n: u8, mesh: Option<MeshGroupSettings>) -> (Arc<GroupRuntime>, Vec<SocketAddr>) {
    let tg: TargetGroup = serde_json::from_value(serde_json::json!({
        "targetGroupName": "web", "targetGroupArn": "arn:tg", "healthCheckEnabled": false
    }))
    .unwrap();
    let settings = GroupSettings::from_model(&tg, &tg.validate().unwrap()).unwrap();
    let registry = prometheus::Registry::new();
    let families = MeshMetricsFamilies::new(&registry);
    let g = GroupRuntime::new(
        "arn:tg",
        settings.clone(),
        &Metrics::new(&registry),
        Notifier::new(),
        Clock::new(),
        mesh.map(|m| MeshGroup::new(&m, &families)),
    );
    let addrs: Vec<SocketAddr> = (1..=n)
        .map(|i| SocketAddr::from(([127, 0, 0, i], 8080)))
        .collect();
    let targets: Vec<ProxyTarget> = addrs
        .iter()
        .map(|&addr| ProxyTarget {
            id: addr.ip().to_string(),
            port: 8080,
            addr,
            draining: false,
            mesh_hop: None,
        })
        .collect();
    g.update(settings, &targets);
    (g, addrs)
}

/// Requests it takes to earn one retry.
const RETRY_DEPOSITS_PER_RETRY: usize = 5;

fn drain_budget(g: &GroupRuntime) {
    while g.retry_budget.take_retry() {}
}

const ALL: [Failure; 8] = [
    Failure::Connect,
    Failure::Unsent,
    Failure::NoResponse,
    Failure::BadResponse,
    Failure::Timeout,
    Failure::ClientGone,
    Failure::Unavailable,
    Failure::Refused,
];

#[test]
fn every_failure_is_classified() {
    use Retry::*;
    use Side::*;
    use Stage::*;
    let sent = SentWithoutResponse;
    let table = [
        (Failure::Connect, NotSent, Upstream, Safe, 502),
        (Failure::Unsent, NotSent, Upstream, Safe, 502),
        (Failure::NoResponse, sent, Upstream, IfReplayable, 502),
        (Failure::BadResponse, Answered, Upstream, Never, 502),
        (Failure::Timeout, sent, Upstream, Never, 504),
        (Failure::ClientGone, sent, Downstream, Never, 502),
        (Failure::Unavailable, Answered, Upstream, IfReplayable, 503),
        (Failure::Refused, NotSent, Upstream, IfReplayable, 502),
    ];
    assert_eq!(table.len(), ALL.len());
    for (f, stage, side, retry, status) in table {
        assert_eq!(f.stage(), stage, "{f:?}");
        assert_eq!(f.side(), side, "{f:?}");
        assert_eq!(f.retry(), retry, "{f:?}");
        assert_eq!(f.status().as_u16(), status, "{f:?}");
    }
}

#[test]
fn idempotent_methods() {
    for m in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ] {
        assert!(is_idempotent(&m), "{m}");
    }
    for m in [Method::POST, Method::PATCH, Method::CONNECT] {
        assert!(!is_idempotent(&m), "{m}");
    }
}

#[test]
fn a_group_without_targets_is_a_503() {
    let (g, _) = group(0);
    let mut a = Attempts::start(&g, None, true);
    assert_eq!(a.next().err(), Some(StatusCode::SERVICE_UNAVAILABLE));
}

#[test]
fn the_preferred_target_is_tried_first() {
    let (g, addrs) = group(3);
    for &want in &addrs {
        let mut a = Attempts::start(&g, Some(want), false);
        assert_eq!(a.next().unwrap().target().addr, want);
    }
}

#[test]
fn a_connect_failure_ejects_and_excludes_the_target() {
    let (g, addrs) = group(2);
    let mut a = Attempts::start(&g, Some(addrs[0]), false);
    let first = a.next().unwrap().target().clone();
    assert_eq!(first.addr, addrs[0]);
    assert!(!first.is_ejected());
    assert_eq!(a.failed(&first, false, Failure::Connect), Verdict::Retry);
    assert!(first.is_ejected());
    assert_eq!(a.excluded(), &[addrs[0]]);
    // Even though it is preferred, the failed target is not tried again.
    assert_eq!(a.next().unwrap().target().addr, addrs[1]);
    assert_eq!(g.metrics.retries.get(), 1);
}

#[test]
fn running_out_of_targets_after_a_pick_is_a_502() {
    let (g, _) = group(1);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Connect), Verdict::Retry);
    assert_eq!(a.next().err(), Some(StatusCode::BAD_GATEWAY));
}

#[test]
fn attempts_stop_at_the_limit() {
    let (g, _) = group(5);
    let mut a = Attempts::start(&g, None, false);
    for _ in 0..MAX_ATTEMPTS {
        let t = a.next().unwrap().target().clone();
        assert_eq!(a.failed(&t, false, Failure::Connect), Verdict::Retry);
    }
    assert_eq!(a.excluded().len(), MAX_ATTEMPTS);
    assert_eq!(a.next().err(), Some(StatusCode::BAD_GATEWAY));
    // The first attempt is no retry.
    assert_eq!(g.metrics.retries.get(), MAX_ATTEMPTS as u64 - 1);
}

#[test]
fn a_spent_retry_budget_ends_the_request() {
    let (g, _) = group(3);
    drain_budget(&g);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Connect), Verdict::Retry);
    assert_eq!(a.next().err(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(g.metrics.retries.get(), 0);
}

#[test]
fn each_request_adds_to_the_budget() {
    let (g, _) = group(1);
    drain_budget(&g);
    for _ in 0..5 {
        Attempts::start(&g, None, false);
    }
    assert!(g.retry_budget.take_retry());
    assert!(!g.retry_budget.take_retry());
}

#[test]
fn a_stale_pooled_connection_replays_without_spending_an_attempt() {
    let (g, addrs) = group(2);
    // Replays need no budget: they are not retries.
    drain_budget(&g);
    let mut a = Attempts::start(&g, Some(addrs[0]), false);
    for _ in 0..MAX_STALE_REPLAYS {
        let t = a.next().unwrap().target().clone();
        assert_eq!(t.addr, addrs[0]);
        assert_eq!(a.failed(&t, true, Failure::Unsent), Verdict::Retry);
        assert!(!t.is_ejected());
        assert!(a.excluded().is_empty());
    }
    assert_eq!(g.metrics.retries.get(), 0);
    // Replays are bounded: the next stale failure counts against the target.
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, true, Failure::Unsent), Verdict::Retry);
    assert!(t.is_ejected());
    assert_eq!(a.excluded(), &[addrs[0]]);
}

#[test]
fn unsent_on_a_fresh_connection_ejects_the_target() {
    let (g, _) = group(2);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Unsent), Verdict::Retry);
    assert!(t.is_ejected());
    assert_eq!(a.excluded(), &[t.addr]);
}

#[test]
fn no_response_goes_again_only_when_replayable() {
    let (g, _) = group(2);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(
        a.failed(&t, false, Failure::NoResponse),
        Verdict::Answer(StatusCode::BAD_GATEWAY)
    );
    assert!(!t.is_ejected());
    assert!(a.excluded().is_empty());

    let mut a = Attempts::start(&g, None, true);
    assert!(a.replayable());
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::NoResponse), Verdict::Retry);
    assert!(
        t.is_ejected(),
        "a fresh connection failing mid-request ejects"
    );
    assert_eq!(a.excluded(), &[t.addr]);
}

#[test]
fn no_response_on_a_reused_connection_is_a_stale_replay_then_an_exclusion() {
    let (g, addrs) = group(2);
    let mut a = Attempts::start(&g, Some(addrs[0]), true);
    for _ in 0..MAX_STALE_REPLAYS {
        let t = a.next().unwrap().target().clone();
        assert_eq!(a.failed(&t, true, Failure::NoResponse), Verdict::Retry);
        assert!(a.excluded().is_empty());
    }
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, true, Failure::NoResponse), Verdict::Retry);
    assert_eq!(a.excluded(), &[addrs[0]]);
    assert!(
        !t.is_ejected(),
        "a reused connection failing after the request went out says nothing of the target"
    );
}

#[test]
fn failures_that_never_go_again_answer_without_ejecting() {
    let (g, _) = group(2);
    for (f, status) in [
        (Failure::BadResponse, StatusCode::BAD_GATEWAY),
        (Failure::Timeout, StatusCode::GATEWAY_TIMEOUT),
        (Failure::ClientGone, StatusCode::BAD_GATEWAY),
    ] {
        for reused in [false, true] {
            let mut a = Attempts::start(&g, None, true);
            let t = a.next().unwrap().target().clone();
            assert_eq!(a.failed(&t, reused, f), Verdict::Answer(status), "{f:?}");
            assert!(!t.is_ejected(), "{f:?}");
            assert!(a.excluded().is_empty(), "{f:?}");
        }
    }
}

#[test]
fn a_connection_that_opens_ends_the_ejection_and_counts_the_request() {
    let (g, _) = group(2);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    a.failed(&t, false, Failure::Connect);
    assert!(t.is_ejected());
    let requests = t.metrics.requests.get();
    a.connected(&t);
    assert!(!t.is_ejected());
    assert_eq!(t.metrics.requests.get(), requests + 1);
}

fn lenient() -> OutlierDetection {
    OutlierDetection {
        consecutive_failures: 1000,
        ..OutlierDetection::default()
    }
}

#[test]
fn a_503_goes_again_on_another_target_with_the_retry_taken_up_front() {
    let (g, addrs) = mesh_group(2, lenient());
    drain_budget(&g);
    // Budget for exactly one retry.
    for _ in 0..RETRY_DEPOSITS_PER_RETRY - 1 {
        g.retry_budget.deposit();
    }
    let mut a = Attempts::start(&g, Some(addrs[0]), true);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, true, Failure::Unavailable), Verdict::Retry);
    assert_eq!(a.excluded(), &[addrs[0]]);
    assert!(!t.is_ejected(), "a 503 alone ejects nothing");
    // The retry was paid for when the 503 was given up: the next attempt goes ahead.
    assert_eq!(a.next().unwrap().target().addr, addrs[1]);
    assert_eq!(g.metrics.retries.get(), 1);
}

#[test]
fn a_503_is_passed_on_when_it_cannot_go_again() {
    let unavailable = Verdict::Answer(StatusCode::SERVICE_UNAVAILABLE);
    // Not replayable.
    let (g, _) = mesh_group(2, lenient());
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Unavailable), unavailable);
    // No other target.
    let (g, _) = mesh_group(1, lenient());
    let mut a = Attempts::start(&g, None, true);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Unavailable), unavailable);
    // No budget.
    let (g, _) = mesh_group(2, lenient());
    drain_budget(&g);
    let mut a = Attempts::start(&g, None, true);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Unavailable), unavailable);
    assert!(a.excluded().is_empty());
}

#[test]
fn a_refused_stream_goes_again_only_when_replayable() {
    let (g, _) = mesh_group(1, lenient());
    let mut a = Attempts::start(&g, None, true);
    let t = a.next().unwrap().target().clone();
    assert_eq!(a.failed(&t, false, Failure::Refused), Verdict::Retry);
    assert!(!t.is_ejected());
    // The same (only) target may take it again: nothing was processed.
    assert_eq!(a.next().unwrap().target().addr, t.addr);
    let mut a = Attempts::start(&g, None, false);
    let t = a.next().unwrap().target().clone();
    assert_eq!(
        a.failed(&t, false, Failure::Refused),
        Verdict::Answer(StatusCode::BAD_GATEWAY)
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_of_failures_ejects_for_longer_each_time_within_the_cap() {
    let outlier = OutlierDetection {
        consecutive_failures: 2,
        base_ejection_seconds: 10,
        max_ejection_percent: 50,
    };
    let (g, addrs) = mesh_group(4, outlier);
    // Sent just now: what these tests count is the status, not the time.
    let sent = tokio::time::Instant::now;
    let target = |i: usize| {
        let mut a = Attempts::start(&g, Some(addrs[i]), false);
        let t = a.next().unwrap().target().clone();
        assert_eq!(t.addr, addrs[i]);
        t
    };
    let a = Attempts::start(&g, None, false);
    let t0 = target(0);
    // A success in between breaks the run.
    a.responded(&t0, 500, sent());
    a.responded(&t0, 200, sent());
    a.responded(&t0, 502, sent());
    assert!(!t0.is_outlier_ejected());
    a.responded(&t0, 503, sent());
    assert!(t0.is_outlier_ejected() && t0.is_ejected());
    // Connection failures count too.
    let t1 = target(1);
    let mut b = Attempts::start(&g, Some(addrs[1]), false);
    b.failed(&t1, false, Failure::Connect);
    b.failed(&t1, false, Failure::Connect);
    assert!(t1.is_outlier_ejected());
    // Half of four targets are out: the third is not ejected.
    let t2 = target(2);
    for _ in 0..5 {
        a.responded(&t2, 500, sent());
    }
    assert!(!t2.is_outlier_ejected());
    let mesh = g.mesh.as_ref().unwrap();
    assert_eq!(mesh.metrics.ejections.get(), 2);
    let mut statuses = Vec::new();
    g.statuses(&mut statuses);
    assert_eq!(statuses.iter().filter(|s| s.ejected).count(), 2);

    // Back after 10 s; ejected again, it stays out 20 s.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!t0.is_outlier_ejected() && !t0.is_ejected());
    a.responded(&t0, 500, sent());
    a.responded(&t0, 500, sent());
    assert!(t0.is_outlier_ejected());
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(t0.is_outlier_ejected());
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(!t0.is_outlier_ejected());
}

#[test]
fn load_balancer_groups_pass_5xx_on_and_never_eject_for_them() {
    let (g, _) = group(2);
    let a = Attempts::start(&g, None, true);
    assert!(!a.is_mesh());
    let t = g.pick(&[], None).unwrap().target().clone();
    for _ in 0..10 {
        a.responded(&t, 500, tokio::time::Instant::now());
    }
    assert!(!t.is_ejected());
}
