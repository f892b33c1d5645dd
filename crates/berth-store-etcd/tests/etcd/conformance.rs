//! The store conformance suite (`berth_store::conformance`) on a real etcd: each case
//! gets an etcd of its own, already holding other clusters' keys beside the store's
//! prefix, so the store starts at a revision above 0 and must see only its own keys.

use berth_store::conformance::Backend;
use berth_store::Store;
use berth_store_etcd::{EtcdConfig, EtcdStore};
use berth_testkit::Etcd;

struct EtcdBackend;

const PREFIX: &str = "/conformance";

impl Backend for EtcdBackend {
    type Store = EtcdStore;
    type Guard = Etcd;
    const FRESH_STORE_STARTS_AT_ZERO: bool = false;

    async fn open(_history: u64) -> (EtcdStore, Etcd) {
        let etcd = Etcd::start().await.expect("starting etcd");
        let endpoints = vec![etcd.endpoint()];
        // Another cluster on the same etcd, under a prefix that starts like this one.
        let other = EtcdStore::connect(&EtcdConfig::new(endpoints.clone(), "/conformance2"))
            .await
            .expect("connecting to etcd");
        for key in [
            "",
            "a",
            "/clusters/default",
            "s/1",
            "c/1",
            "w/a",
            "p/a",
            "k",
        ] {
            other.put(key, b"other".to_vec()).await.unwrap();
        }
        let mut client = other.client();
        // Keys right beside the prefix, and the election's keys.
        for key in ["/conformance", "/conformance.election/1", "/conformancea"] {
            client.put(key, "other", None).await.unwrap();
        }
        let store = EtcdStore::connect(&EtcdConfig::new(endpoints, PREFIX))
            .await
            .expect("connecting to etcd");
        (store, etcd)
    }

    async fn compact(store: &EtcdStore, history: u64) {
        let revision = store.revision().await.unwrap();
        store.compact(revision - history + 1).await.unwrap();
    }
}

berth_store::conformance_suite!(EtcdBackend);

#[tokio::test]
async fn a_server_waits_for_etcd_and_connects_when_it_answers() {
    let ports = berth_testkit::EtcdPorts::free().unwrap();
    let config = EtcdConfig::new(vec![ports.endpoint()], "/waiting");
    let mut connecting = tokio::spawn(async move { EtcdStore::connect_when_ready(&config).await });
    // etcd is not up: the store keeps waiting.
    let early = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut connecting).await;
    assert!(
        early.is_err(),
        "connect_when_ready returned while etcd was down: {early:?}"
    );
    let _etcd = Etcd::start_on(ports).await.unwrap();
    let store = tokio::time::timeout(std::time::Duration::from_secs(20), connecting)
        .await
        .expect("the store did not connect once etcd answered")
        .unwrap()
        .expect("connect_when_ready failed");
    let revision = store.put("/k", b"v".to_vec()).await.unwrap();
    assert_eq!(
        store.get("/k").await.unwrap().unwrap().mod_revision,
        revision
    );
}

#[tokio::test]
async fn a_bad_configuration_fails_without_waiting() {
    for (endpoints, prefix, field) in [
        (vec![], "/berth", "--etcd-endpoints"),
        (
            vec!["127.0.0.1:2379".to_string()],
            "/berth",
            "--etcd-endpoints",
        ),
        (
            vec!["http://127.0.0.1:2379".to_string()],
            "/",
            "--etcd-prefix",
        ),
    ] {
        let config = EtcdConfig::new(endpoints, prefix);
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            EtcdStore::connect_when_ready(&config),
        )
        .await
        {
            Ok(Err(berth_store::StoreError::Backend(message))) => {
                assert!(message.starts_with(field), "{message}");
            }
            Ok(Ok(_)) => panic!("{config:?} connected"),
            Ok(Err(other)) => panic!("{config:?}: {other:?}"),
            Err(_) => panic!("{config:?}: waited instead of failing"),
        }
    }
}

/// etcd's default `--max-txn-ops` (128) is below what one berth apply may write: the
/// error says which etcd setting to raise, and nothing is written.
#[tokio::test]
async fn a_batch_over_etcds_txn_limit_fails_naming_the_setting_and_writes_nothing() {
    let etcd = Etcd::start().await.unwrap();
    let store = EtcdStore::connect(&EtcdConfig::new(vec![etcd.endpoint()], "/limits"))
        .await
        .unwrap();
    let ok: Vec<_> = (0..200)
        .map(|i| berth_store::conformance::put_op(&format!("/k/{i}"), "v", None))
        .collect();
    store
        .batch(ok)
        .await
        .expect("the test etcd allows 10000 ops");
    let before = store.revision().await.unwrap();
    let too_many: Vec<_> = (0..10_001)
        .map(|i| berth_store::conformance::put_op(&format!("/x/{i}"), "v", None))
        .collect();
    match store.batch(too_many).await {
        Err(berth_store::StoreError::Backend(message)) => {
            assert!(message.contains("--max-txn-ops"), "{message}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(store.list("/x/").await.unwrap().is_empty());
    assert_eq!(store.revision().await.unwrap(), before);
}

/// When etcd goes away a watch ends (the caller re-lists and watches again, as the
/// `Store` contract asks); once etcd is back the same store writes again and a watch
/// from the last revision seen resumes without a gap.
#[tokio::test]
async fn a_watch_ends_when_etcd_goes_away_and_resumes_from_its_revision_after() {
    let mut etcd = Etcd::start().await.unwrap();
    let store = EtcdStore::connect(&EtcdConfig::new(vec![etcd.endpoint()], "/restart"))
        .await
        .unwrap();
    let seen = store.put("/k", b"1".to_vec()).await.unwrap();
    let mut watch = store.watch("/", seen).await.unwrap();
    etcd.kill();
    let end = tokio::time::timeout(std::time::Duration::from_secs(20), watch.recv())
        .await
        .expect("the watch outlived etcd");
    assert_eq!(end, None);
    assert!(
        matches!(
            store.get("/k").await,
            Err(berth_store::StoreError::Backend(_))
        ),
        "a read without etcd fails"
    );
    etcd.restart().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let written = loop {
        match store.put("/k", b"2".to_vec()).await {
            Ok(revision) => break revision,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "no write after etcd came back: {e}"
            ),
        }
    };
    let mut resumed = store.watch("/", seen).await.unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(20), resumed.recv())
        .await
        .expect("no event after etcd came back")
        .expect("watch ended");
    assert_eq!((event.key(), event.revision()), ("/k", written));
}
