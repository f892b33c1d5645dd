//! Leader election on a real etcd: one of two candidates leads, and the other takes over
//! when the leader resigns, loses its lease, or dies; a leader cut off from etcd stops
//! leading within its lease's TTL.

use std::time::{Duration, Instant};

use berth_store_etcd::election::{current_leader, DEFAULT_TTL};
use berth_store_etcd::{Election, ElectionConfig, EtcdConfig};
use berth_testkit::Etcd;
use etcd_client::{Client, GetOptions};
use tokio::sync::watch;

const PREFIX: &str = "/election-test.election/";

async fn client(etcd: &Etcd) -> Client {
    EtcdConfig::new(vec![etcd.endpoint()], "/election-test")
        .client()
        .await
        .expect("etcd client")
}

/// A candidate on a connection of its own (as a server process has).
async fn candidate(etcd: &Etcd, name: &str) -> Election {
    Election::start(
        client(etcd).await,
        ElectionConfig {
            prefix: PREFIX.into(),
            candidate: name.into(),
            ttl: DEFAULT_TTL,
        },
    )
}

/// Waits until `leading` is `want`, failing after `within`; returns how long it took.
async fn until(leading: &mut watch::Receiver<bool>, want: bool, within: Duration) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(within, leading.wait_for(|l| *l == want))
        .await
        .unwrap_or_else(|_| panic!("leading did not become {want} within {within:?}"))
        .expect("the election ended");
    start.elapsed()
}

/// Waits until `n` candidates have their key under the election prefix.
async fn candidates(client: &mut Client, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = client
            .get(
                PREFIX,
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap()
            .count();
        if count == n {
            return;
        }
        assert!(Instant::now() < deadline, "{count} candidates, not {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `a`, waits until it leads, then starts `b` and waits until it campaigns.
async fn a_leads_b_waits(etcd: &Etcd) -> (Election, Election, Client) {
    let mut observer = client(etcd).await;
    let a = candidate(etcd, "a").await;
    until(&mut a.leading(), true, Duration::from_secs(10)).await;
    let b = candidate(etcd, "b").await;
    candidates(&mut observer, 2).await;
    assert!(a.is_leading());
    assert!(!b.is_leading(), "two leaders");
    assert_eq!(
        current_leader(&mut observer, PREFIX)
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    (a, b, observer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_leads_at_once_when_the_leader_resigns() {
    let etcd = Etcd::start().await.unwrap();
    let (a, b, mut observer) = a_leads_b_waits(&etcd).await;
    let mut a_leading = a.leading();
    a.resign().await;
    assert!(!*a_leading.borrow_and_update());
    let took = until(&mut b.leading(), true, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "took {took:?}, not at once");
    assert_eq!(
        current_leader(&mut observer, PREFIX)
            .await
            .unwrap()
            .as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_ends_the_leaders_term_and_the_follower_leads() {
    let etcd = Etcd::start().await.unwrap();
    let (a, b, mut observer) = a_leads_b_waits(&etcd).await;
    let leader_key = observer
        .get(
            PREFIX,
            Some(GetOptions::new().with_prefix().with_sort(
                etcd_client::SortTarget::Create,
                etcd_client::SortOrder::Ascend,
            )),
        )
        .await
        .unwrap()
        .kvs()[0]
        .clone();
    assert_eq!(leader_key.value(), b"a");
    observer.lease_revoke(leader_key.lease()).await.unwrap();
    let stepped_down = until(&mut a.leading(), false, Duration::from_secs(5)).await;
    assert!(
        stepped_down < Duration::from_secs(1),
        "a led {stepped_down:?} past losing its lease"
    );
    until(&mut b.leading(), true, Duration::from_secs(5)).await;
    // a campaigns again, behind b.
    candidates(&mut observer, 2).await;
    assert!(!a.is_leading(), "two leaders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_lease_expires_and_the_follower_leads_within_5s() {
    let etcd = Etcd::start().await.unwrap();
    let (a, b, _observer) = a_leads_b_waits(&etcd).await;
    // As kill -9: the keep-alives stop, nothing is revoked.
    drop(a);
    let took = until(&mut b.leading(), true, Duration::from_secs(5)).await;
    assert!(
        took >= DEFAULT_TTL - Duration::from_secs(1),
        "b led after {took:?}, before a's lease could expire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_steps_down_within_its_ttl_and_leads_again_after() {
    let mut etcd = Etcd::start().await.unwrap();
    let a = candidate(&etcd, "a").await;
    let mut leading = a.leading();
    until(&mut leading, true, Duration::from_secs(10)).await;
    etcd.kill();
    let took = until(&mut leading, false, DEFAULT_TTL + Duration::from_secs(2)).await;
    assert!(
        took <= DEFAULT_TTL,
        "led {took:?} without etcd, past the lease's TTL"
    );
    etcd.restart().await.unwrap();
    // The old key expires one TTL after etcd is back; then a leads on a new lease.
    until(&mut leading, true, Duration::from_secs(15)).await;
}
