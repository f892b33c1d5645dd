//! One conformance suite, run against every backend.

use std::time::Duration;

use berth_store::{
    Entry, Event, Expect, MemoryStore, Op, RedbStore, Revision, Store, StoreError, Watch,
};
use tempfile::TempDir;

/// A backend under test: how to make a fresh store.
trait Backend {
    type S: Store + Clone;
    /// A fresh, empty store keeping `history` revisions; the guard keeps its files.
    fn open(history: u64) -> (Self::S, Option<TempDir>);
}

struct MemoryBackend;
impl Backend for MemoryBackend {
    type S = MemoryStore;
    fn open(history: u64) -> (MemoryStore, Option<TempDir>) {
        (MemoryStore::with_history(history), None)
    }
}

struct RedbBackend;
impl Backend for RedbBackend {
    type S = RedbStore;
    fn open(history: u64) -> (RedbStore, Option<TempDir>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open_with_history(&dir.path().join("state.redb"), history)
            .expect("open redb store");
        (store, Some(dir))
    }
}

const HISTORY: u64 = 10_000;

fn put_op(key: &str, value: &str, expect: Option<Expect>) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        expect,
    }
}

fn delete_op(key: &str, expect: Option<Expect>) -> Op {
    Op::Delete {
        key: key.to_string(),
        expect,
    }
}

/// The next event, failing the test instead of hanging.
async fn next(watch: &mut Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(20), watch.recv())
        .await
        .expect("timed out waiting for a watch event")
        .expect("watch ended")
}

/// Asserts nothing is ready on the watch right now after a write that it must not see:
/// a later write it does see must be the next event.
async fn assert_next_is<S: Store>(store: &S, watch: &mut Watch, key: &str) -> Revision {
    let revision = store.put(key, b"marker".to_vec()).await.unwrap();
    let event = next(watch).await;
    assert_eq!(event.key(), key, "unexpected event {event:?}");
    assert_eq!(event.revision(), revision);
    revision
}

fn put_event(event: &Event) -> &Entry {
    match event {
        Event::Put(entry) => entry,
        other => panic!("expected a put event, got {other:?}"),
    }
}

fn values(entries: &[Entry]) -> Vec<(&str, &[u8])> {
    entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_slice()))
        .collect()
}

mod cases {
    use super::*;

    pub async fn get_put_delete<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        assert_eq!(store.revision().await.unwrap(), 0);
        assert_eq!(store.get("a").await.unwrap(), None);

        assert_eq!(store.put("a", b"one".to_vec()).await.unwrap(), 1);
        let entry = store.get("a").await.unwrap().unwrap();
        assert_eq!(
            entry,
            Entry {
                key: "a".into(),
                value: b"one".to_vec(),
                create_revision: 1,
                mod_revision: 1,
            }
        );

        assert_eq!(store.put("a", b"two".to_vec()).await.unwrap(), 2);
        let entry = store.get("a").await.unwrap().unwrap();
        assert_eq!(entry.value, b"two");
        assert_eq!((entry.create_revision, entry.mod_revision), (1, 2));

        assert_eq!(store.delete("a").await.unwrap(), Some(3));
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.delete("a").await.unwrap(), None);
        assert_eq!(
            store.revision().await.unwrap(),
            3,
            "a no-op delete is no write"
        );

        assert_eq!(store.put("a", b"three".to_vec()).await.unwrap(), 4);
        let entry = store.get("a").await.unwrap().unwrap();
        assert_eq!(
            (entry.create_revision, entry.mod_revision),
            (4, 4),
            "a recreated key has a new create revision"
        );
    }

    pub async fn list_by_prefix<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        for key in ["b/1", "a/2", "ab", "a/", "a/1", "a/1/x", "a"] {
            store.put(key, key.as_bytes().to_vec()).await.unwrap();
        }
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.list("a/").await.unwrap()),
            ["a/", "a/1", "a/1/x", "a/2"]
        );
        assert_eq!(
            keys(store.list("a").await.unwrap()),
            ["a", "a/", "a/1", "a/1/x", "a/2", "ab"]
        );
        assert_eq!(
            keys(store.list("").await.unwrap()),
            ["a", "a/", "a/1", "a/1/x", "a/2", "ab", "b/1"]
        );
        assert!(store.list("c").await.unwrap().is_empty());
        let listed = store.list("b/").await.unwrap();
        assert_eq!(values(&listed), [("b/1", b"b/1".as_slice())]);
        assert_eq!(listed[0].mod_revision, 1);

        store.delete("a/1").await.unwrap();
        assert_eq!(
            keys(store.list("a/").await.unwrap()),
            ["a/", "a/1/x", "a/2"]
        );
    }

    pub async fn list_with_revision<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("x/1", b"1".to_vec()).await.unwrap();
        store.put("y/1", b"1".to_vec()).await.unwrap();
        let (entries, revision) = store.list_with_revision("x/").await.unwrap();
        assert_eq!(values(&entries), [("x/1", b"1".as_slice())]);
        assert_eq!(revision, 2);
    }

    pub async fn revision_semantics<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        assert_eq!(store.batch(vec![]).await.unwrap(), 0, "empty batch");
        assert_eq!(store.put("k1", b"1".to_vec()).await.unwrap(), 1);
        let revision = store
            .batch(vec![
                put_op("k2", "2", None),
                put_op("k3", "3", None),
                delete_op("k1", None),
            ])
            .await
            .unwrap();
        assert_eq!(revision, 2, "a batch is one revision");
        for key in ["k2", "k3"] {
            let entry = store.get(key).await.unwrap().unwrap();
            assert_eq!((entry.create_revision, entry.mod_revision), (2, 2));
        }
        assert_eq!(store.get("k1").await.unwrap(), None);
        assert_eq!(
            store.batch(vec![delete_op("missing", None)]).await.unwrap(),
            2,
            "a batch that changes nothing returns the current revision"
        );
        assert_eq!(store.revision().await.unwrap(), 2);
        assert_eq!(store.put("k4", b"4".to_vec()).await.unwrap(), 3);
    }

    pub async fn compare_and_put<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        let r1 = store
            .compare_and_put("k", Expect::Absent, b"1".to_vec())
            .await
            .unwrap();
        assert_eq!(r1, 1);

        match store
            .compare_and_put("k", Expect::Absent, b"x".to_vec())
            .await
        {
            Err(StoreError::Conflict {
                key,
                expected,
                actual,
            }) => {
                assert_eq!(key, "k");
                assert_eq!(expected, Expect::Absent);
                assert_eq!(actual, Some(1));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }

        let r2 = store
            .compare_and_put("k", Expect::ModRevision(r1), b"2".to_vec())
            .await
            .unwrap();
        assert_eq!(r2, 2);

        match store
            .compare_and_put("k", Expect::ModRevision(r1), b"stale".to_vec())
            .await
        {
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(2)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        match store
            .compare_and_put("other", Expect::ModRevision(1), b"x".to_vec())
            .await
        {
            Err(StoreError::Conflict { key, actual, .. }) => {
                assert_eq!(key, "other");
                assert_eq!(actual, None);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }

        let entry = store.get("k").await.unwrap().unwrap();
        assert_eq!(entry.value, b"2", "failed compares changed nothing");
        assert_eq!(store.revision().await.unwrap(), 2);
        assert_eq!(store.get("other").await.unwrap(), None);

        // Delete with an expectation goes through batch.
        let err = store
            .batch(vec![delete_op("k", Some(Expect::ModRevision(1)))])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
        let r3 = store
            .batch(vec![delete_op("k", Some(Expect::ModRevision(2)))])
            .await
            .unwrap();
        assert_eq!(r3, 3);
        assert_eq!(store.get("k").await.unwrap(), None);
    }

    pub async fn batch_is_all_or_nothing<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("keep", b"old".to_vec()).await.unwrap();
        store.put("gone", b"old".to_vec()).await.unwrap();
        let before = store.list("").await.unwrap();
        let revision = store.revision().await.unwrap();
        let mut watch = store.watch("", revision).await.unwrap();

        let err = store
            .batch(vec![
                put_op("keep", "new", None),
                put_op("fresh", "new", Some(Expect::Absent)),
                delete_op("gone", None),
                // Fails: "keep" is at revision 1.
                put_op("keep", "newer", Some(Expect::ModRevision(99))),
            ])
            .await
            .unwrap_err();
        match err {
            StoreError::Conflict { key, actual, .. } => {
                assert_eq!(key, "keep");
                assert_eq!(actual, Some(1));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }

        assert_eq!(store.list("").await.unwrap(), before, "nothing changed");
        assert_eq!(store.revision().await.unwrap(), revision, "no new revision");
        // The failed batch made no event: the next one is the marker.
        assert_next_is(&store, &mut watch, "marker").await;
    }

    pub async fn batch_applies_every_op<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        let r1 = store.put("keep", b"old".to_vec()).await.unwrap();
        store.put("gone", b"old".to_vec()).await.unwrap();
        let revision = store
            .batch(vec![
                put_op("keep", "new", Some(Expect::ModRevision(r1))),
                put_op("fresh", "new", Some(Expect::Absent)),
                delete_op("gone", Some(Expect::ModRevision(2))),
            ])
            .await
            .unwrap();
        assert_eq!(revision, 3);
        let entries = store.list("").await.unwrap();
        assert_eq!(
            values(&entries),
            [("fresh", b"new".as_slice()), ("keep", b"new".as_slice())]
        );
        assert!(entries.iter().all(|e| e.mod_revision == 3));
        assert_eq!(entries[1].create_revision, 1);
    }

    pub async fn watch_replays_then_streams<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("w/a", b"1".to_vec()).await.unwrap(); // 1
        let after = store.revision().await.unwrap();
        store.put("w/b", b"2".to_vec()).await.unwrap(); // 2
        store.put("x/a", b"other".to_vec()).await.unwrap(); // 3
        store.put("w/a", b"3".to_vec()).await.unwrap(); // 4

        let mut watch = store.watch("w/", after).await.unwrap();
        let e = next(&mut watch).await;
        assert_eq!((e.key(), e.revision()), ("w/b", 2));
        let e = next(&mut watch).await;
        assert_eq!((e.key(), e.revision()), ("w/a", 4));
        let entry = put_event(&e);
        assert_eq!(entry.value, b"3");
        assert_eq!(entry.create_revision, 1);

        // Live events, filtered by prefix, deletes included.
        store.put("x/b", b"other".to_vec()).await.unwrap(); // 5
        store.put("w/c", b"5".to_vec()).await.unwrap(); // 6
        store.delete("w/a").await.unwrap(); // 7
        let e = next(&mut watch).await;
        assert_eq!((e.key(), e.revision()), ("w/c", 6));
        assert_eq!(put_event(&e).value, b"5");
        assert_eq!(
            next(&mut watch).await,
            Event::Delete {
                key: "w/a".into(),
                mod_revision: 7
            }
        );
        assert!(watch.try_recv().is_err(), "no event for other prefixes");
    }

    pub async fn watch_from_zero_replays_everything<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("a", b"1".to_vec()).await.unwrap();
        store.delete("a").await.unwrap();
        store.put("b", b"2".to_vec()).await.unwrap();
        let mut watch = store.watch("", 0).await.unwrap();
        let revisions = [
            next(&mut watch).await,
            next(&mut watch).await,
            next(&mut watch).await,
        ];
        assert!(matches!(&revisions[0], Event::Put(e) if e.key == "a" && e.mod_revision == 1));
        assert_eq!(
            revisions[1],
            Event::Delete {
                key: "a".into(),
                mod_revision: 2
            }
        );
        assert!(matches!(&revisions[2], Event::Put(e) if e.key == "b" && e.mod_revision == 3));
    }

    pub async fn watch_batch_events_share_revision<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("p/old", b"x".to_vec()).await.unwrap();
        let mut watch = store.watch("p/", 1).await.unwrap();
        let revision = store
            .batch(vec![
                put_op("p/z", "1", None),
                delete_op("p/old", None),
                put_op("q/a", "ignored", None),
                put_op("p/a", "2", None),
            ])
            .await
            .unwrap();
        let keys = [
            next(&mut watch).await,
            next(&mut watch).await,
            next(&mut watch).await,
        ];
        assert_eq!(
            keys.iter().map(|e| e.key()).collect::<Vec<_>>(),
            ["p/z", "p/old", "p/a"],
            "op order"
        );
        assert!(keys.iter().all(|e| e.revision() == revision));
        assert!(matches!(keys[1], Event::Delete { .. }));
    }

    pub async fn watch_from_the_future_waits<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        store.put("k", b"1".to_vec()).await.unwrap();
        let mut watch = store.watch("k", 3).await.unwrap();
        store.put("k", b"2".to_vec()).await.unwrap(); // 2
        store.put("k", b"3".to_vec()).await.unwrap(); // 3
        store.put("k", b"4".to_vec()).await.unwrap(); // 4
        let e = next(&mut watch).await;
        assert_eq!(e.revision(), 4);
        assert_eq!(put_event(&e).value, b"4");
    }

    pub async fn watch_compacted<B: Backend>() {
        let (store, _guard) = B::open(5);
        for i in 1..=20u8 {
            store.put("k", vec![i]).await.unwrap();
        }
        match store.watch("", 0).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!(requested, 0);
                assert_eq!(oldest, 16);
            }
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted, got a watch"),
        }
        assert!(matches!(
            store.watch("", 14).await,
            Err(StoreError::Compacted {
                requested: 14,
                oldest: 16
            })
        ));
        let mut watch = store.watch("", 15).await.unwrap();
        for revision in 16..=20 {
            let e = next(&mut watch).await;
            assert_eq!(e.revision(), revision);
            assert_eq!(put_event(&e).value, vec![revision as u8]);
        }
        // The live part still works.
        let revision = store.put("k", vec![21]).await.unwrap();
        assert_eq!(next(&mut watch).await.revision(), revision);
    }

    /// Watches opened while a writer runs see exactly the revisions after their start,
    /// each once, in order. The writer writes in chunks; watches are opened while each
    /// chunk is being written, and the writer waits for them only at the chunk's end.
    pub async fn watch_has_no_gap_or_duplicate_under_concurrent_writes<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        const CHUNKS: u64 = 8;
        const CHUNK: u64 = 100;
        const WATCHES_PER_CHUNK: u64 = 4;
        const WRITES: u64 = CHUNKS * CHUNK;
        let (chunk_started, mut started) = tokio::sync::mpsc::channel::<u64>(1);
        let (watch_opened, mut opened) = tokio::sync::mpsc::channel::<()>(1);
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for chunk in 0..CHUNKS {
                    chunk_started.send(chunk).await.unwrap();
                    for i in chunk * CHUNK..(chunk + 1) * CHUNK {
                        store
                            .put(&format!("c/{}", i % 7), i.to_string().into_bytes())
                            .await
                            .unwrap();
                    }
                    opened.recv().await.unwrap();
                }
            })
        };
        let mut watches = Vec::new();
        while let Some(chunk) = started.recv().await {
            for _ in 0..WATCHES_PER_CHUNK {
                let after = store.revision().await.unwrap();
                assert!(after >= chunk * CHUNK && after <= (chunk + 1) * CHUNK);
                watches.push((after, store.watch("c/", after).await.unwrap()));
            }
            watch_opened.send(()).await.unwrap();
        }
        writer.await.unwrap();
        assert_eq!(watches.len() as u64, CHUNKS * WATCHES_PER_CHUNK);
        for (after, mut watch) in watches {
            for expected in after + 1..=WRITES {
                let e = next(&mut watch).await;
                assert_eq!(e.revision(), expected, "watch from {after}");
                assert_eq!(put_event(&e).value, (expected - 1).to_string().into_bytes());
            }
            assert!(
                watch.try_recv().is_err(),
                "watch from {after}: extra events"
            );
        }
    }

    /// A watcher that does not read while many commits happen falls behind the
    /// broadcast, and still gets every event in order.
    pub async fn slow_watcher_catches_up<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        let mut watch = store.watch("s/", 0).await.unwrap();
        const WRITES: u64 = 1200;
        for i in 1..=WRITES {
            store
                .put(&format!("s/{}", i % 5), i.to_string().into_bytes())
                .await
                .unwrap();
        }
        for expected in 1..=WRITES {
            let e = next(&mut watch).await;
            assert_eq!(e.revision(), expected);
            assert_eq!(put_event(&e).value, expected.to_string().into_bytes());
        }
        let revision = store.put("s/live", b"x".to_vec()).await.unwrap();
        assert_eq!(next(&mut watch).await.revision(), revision);
    }

    /// Writers never wait for watchers, whether they were dropped or just never read.
    pub async fn watchers_do_not_block_writers<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        let dropped = store.watch("", 0).await.unwrap();
        drop(dropped);
        let _never_read = store.watch("", 0).await.unwrap();
        let writes = async {
            for i in 0..700u64 {
                store.put("k", i.to_string().into_bytes()).await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(120), writes)
            .await
            .expect("writes stalled behind watchers");
        assert_eq!(store.revision().await.unwrap(), 700);
    }

    pub async fn watch_ends_when_store_is_dropped<B: Backend>() {
        let (store, _guard) = B::open(HISTORY);
        let mut watch = store.watch("", 0).await.unwrap();
        store.put("k", b"v".to_vec()).await.unwrap();
        assert_eq!(next(&mut watch).await.revision(), 1);
        drop(store);
        let end = tokio::time::timeout(Duration::from_secs(20), watch.recv())
            .await
            .expect("watch did not end");
        assert_eq!(end, None);
    }
}

macro_rules! suite {
    ($module:ident => $backend:ident: $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::cases::$case::<super::$backend>().await;
                }
            )*
        }
    };
}

macro_rules! suites {
    ($($case:ident),* $(,)?) => {
        suite!(memory => MemoryBackend: $($case),*);
        suite!(redb => RedbBackend: $($case),*);
    };
}

suites!(
    get_put_delete,
    list_by_prefix,
    list_with_revision,
    revision_semantics,
    compare_and_put,
    batch_is_all_or_nothing,
    batch_applies_every_op,
    watch_replays_then_streams,
    watch_from_zero_replays_everything,
    watch_batch_events_share_revision,
    watch_from_the_future_waits,
    watch_compacted,
    watch_has_no_gap_or_duplicate_under_concurrent_writes,
    slow_watcher_catches_up,
    watchers_do_not_block_writers,
    watch_ends_when_store_is_dropped,
);
