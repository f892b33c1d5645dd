//! The reconcile loop ([`ControlPlane::run_reconcilers`]) on a paused clock: a settled
//! control plane passes about once a second, a target status change starts a pass, and
//! the loop ends when its shutdown sender is gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::data_plane::fake::FakeDataPlane;
use crate::test_fixtures::NoNodes;
use crate::ControlPlane;

fn passes(registry: &prometheus::Registry) -> u64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == "berth_control_passes_total")
        .map_or(0, |f| f.get_metric()[0].get_counter().get_value() as u64)
}

async fn control_plane() -> (Arc<ControlPlane>, Arc<FakeDataPlane>, prometheus::Registry) {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let dp = Arc::new(FakeDataPlane::default());
    let registry = prometheus::Registry::new();
    let cp = ControlPlane::new(db, dp.clone(), Arc::new(NoNodes), &registry);
    (cp, dp, registry)
}

/// Lets the loop run `d` of paused time.
async fn run_for(d: Duration) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_settled_control_plane_passes_once_a_second_and_on_status_changes() {
    let (cp, dp, registry) = control_plane().await;
    let (stop, stop_rx) = watch::channel(false);
    let reconcilers = tokio::spawn(cp.clone().run_reconcilers(stop_rx));
    run_for(Duration::from_secs(2)).await;
    let settled = passes(&registry);
    assert!(settled >= 1, "the first pass ran");

    run_for(Duration::from_secs(10)).await;
    let quiet = passes(&registry) - settled;
    assert!(
        (9..=11).contains(&quiet),
        "{quiet} passes in 10 s with nothing changing"
    );

    // Within 10 ms, not at the next second's pass (which a window this short rarely
    // holds).
    let before = passes(&registry);
    dp.changes.send_modify(|v| *v += 1);
    run_for(Duration::from_millis(10)).await;
    assert!(passes(&registry) > before, "a status change starts a pass");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), reconcilers)
        .await
        .expect("the loop ends when told to")
        .unwrap();
}

/// On real time and two threads: a loop that kept passing instead would hold its thread,
/// and the timeout on the other would fail the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_ends_when_its_shutdown_sender_is_gone() {
    let (cp, _dp, registry) = control_plane().await;
    let (stop, stop_rx) = watch::channel(false);
    let reconcilers = tokio::spawn(cp.run_reconcilers(stop_rx));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), reconcilers)
        .await
        .expect("the loop ends instead of passing without pause")
        .unwrap();
    assert!(passes(&registry) <= 2, "{} passes", passes(&registry));
}
