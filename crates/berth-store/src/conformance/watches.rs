//! Conformance cases for watches: replay then live events, prefixes, op order within a
//! revision, compaction, concurrent writers, slow and dropped watchers. Every revision
//! is written relative to the store's revision when the case opened it (`b`).

use std::time::Duration;

use super::{delete_op, next, open, put_event, put_op, Backend, HISTORY};
use crate::{Event, Store, StoreError};

pub async fn watch_replays_then_streams<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    store.put("w/a", b"1".to_vec()).await.unwrap(); // b + 1
    let after = store.revision().await.unwrap();
    store.put("w/b", b"2".to_vec()).await.unwrap(); // b + 2
    store.put("x/a", b"other".to_vec()).await.unwrap(); // b + 3
    store.put("w/a", b"3".to_vec()).await.unwrap(); // b + 4

    let mut watch = store.watch("w/", after).await.unwrap();
    let e = next(&mut watch).await;
    assert_eq!((e.key(), e.revision()), ("w/b", b + 2));
    let e = next(&mut watch).await;
    assert_eq!((e.key(), e.revision()), ("w/a", b + 4));
    let entry = put_event(&e);
    assert_eq!(entry.value, b"3");
    assert_eq!(entry.create_revision, b + 1);

    // Live events, filtered by prefix, deletes included.
    store.put("x/b", b"other".to_vec()).await.unwrap(); // b + 5
    store.put("w/c", b"5".to_vec()).await.unwrap(); // b + 6
    store.delete("w/a").await.unwrap(); // b + 7
    let e = next(&mut watch).await;
    assert_eq!((e.key(), e.revision()), ("w/c", b + 6));
    assert_eq!(put_event(&e).value, b"5");
    assert_eq!(
        next(&mut watch).await,
        Event::Delete {
            key: "w/a".into(),
            mod_revision: b + 7
        }
    );
    assert!(watch.try_recv().is_err(), "no event for other prefixes");
}

pub async fn watch_from_the_start_replays_everything<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    store.put("a", b"1".to_vec()).await.unwrap();
    store.delete("a").await.unwrap();
    store.put("b", b"2".to_vec()).await.unwrap();
    let mut watch = store.watch("", b).await.unwrap();
    let events = [
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
    ];
    assert!(matches!(&events[0], Event::Put(e) if e.key == "a" && e.mod_revision == b + 1));
    assert_eq!(
        events[1],
        Event::Delete {
            key: "a".into(),
            mod_revision: b + 2
        }
    );
    assert!(matches!(&events[2], Event::Put(e) if e.key == "b" && e.mod_revision == b + 3));
}

pub async fn watch_batch_events_share_revision<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    store.put("p/old", b"x".to_vec()).await.unwrap();
    let mut watch = store.watch("p/", b + 1).await.unwrap();
    let revision = store
        .batch(vec![
            put_op("p/z", "1", None),
            delete_op("p/old", None),
            put_op("q/a", "ignored", None),
            put_op("p/a", "2", None),
        ])
        .await
        .unwrap();
    let events = [
        next(&mut watch).await,
        next(&mut watch).await,
        next(&mut watch).await,
    ];
    assert_eq!(
        events.iter().map(|e| e.key()).collect::<Vec<_>>(),
        ["p/z", "p/old", "p/a"],
        "op order"
    );
    assert!(events.iter().all(|e| e.revision() == revision));
    assert!(matches!(events[1], Event::Delete { .. }));
}

pub async fn watch_from_the_future_waits<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    store.put("k", b"1".to_vec()).await.unwrap();
    let mut watch = store.watch("k", b + 3).await.unwrap();
    store.put("k", b"2".to_vec()).await.unwrap(); // b + 2
    store.put("k", b"3".to_vec()).await.unwrap(); // b + 3
    store.put("k", b"4".to_vec()).await.unwrap(); // b + 4
    let e = next(&mut watch).await;
    assert_eq!(e.revision(), b + 4);
    assert_eq!(put_event(&e).value, b"4");
}

pub async fn watch_compacted<B: Backend>() {
    let (store, _guard, b) = open::<B>(5).await;
    for i in 1..=20u8 {
        store.put("k", vec![i]).await.unwrap();
    }
    B::compact(&store, 5).await;
    match store.watch("", b).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, b);
            assert_eq!(oldest, b + 16);
        }
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    match store.watch("", b + 14).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (b + 14, b + 16));
        }
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    let mut watch = store.watch("", b + 15).await.unwrap();
    for i in 16..=20 {
        let e = next(&mut watch).await;
        assert_eq!(e.revision(), b + i);
        assert_eq!(put_event(&e).value, vec![i as u8]);
    }
    // The live part still works.
    let revision = store.put("k", vec![21]).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), revision);
}

/// Watches opened while a writer runs see exactly the revisions after their start,
/// each once, in order. The writer writes in chunks; watches are opened while each
/// chunk is being written, and the writer waits for them only at the chunk's end.
pub async fn watch_has_no_gap_or_duplicate_under_concurrent_writes<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
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
            assert!(after >= b + chunk * CHUNK && after <= b + (chunk + 1) * CHUNK);
            watches.push((after, store.watch("c/", after).await.unwrap()));
        }
        watch_opened.send(()).await.unwrap();
    }
    writer.await.unwrap();
    assert_eq!(watches.len() as u64, CHUNKS * WATCHES_PER_CHUNK);
    for (after, mut watch) in watches {
        for expected in after + 1..=b + WRITES {
            let e = next(&mut watch).await;
            assert_eq!(e.revision(), expected, "watch from {after}");
            assert_eq!(
                put_event(&e).value,
                (expected - b - 1).to_string().into_bytes()
            );
        }
        assert!(
            watch.try_recv().is_err(),
            "watch from {after}: extra events"
        );
    }
}

/// A watcher that does not read while many commits happen falls behind, and still gets
/// every event in order.
pub async fn slow_watcher_catches_up<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    let mut watch = store.watch("s/", b).await.unwrap();
    const WRITES: u64 = 1200;
    for i in 1..=WRITES {
        store
            .put(&format!("s/{}", i % 5), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    for i in 1..=WRITES {
        let e = next(&mut watch).await;
        assert_eq!(e.revision(), b + i);
        assert_eq!(put_event(&e).value, i.to_string().into_bytes());
    }
    let revision = store.put("s/live", b"x".to_vec()).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), revision);
}

/// Writers never wait for watchers, whether they were dropped or just never read.
pub async fn watchers_do_not_block_writers<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    let dropped = store.watch("", b).await.unwrap();
    drop(dropped);
    let _never_read = store.watch("", b).await.unwrap();
    let writes = async {
        for i in 0..700u64 {
            store.put("k", i.to_string().into_bytes()).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), writes)
        .await
        .expect("writes stalled behind watchers");
    assert_eq!(store.revision().await.unwrap(), b + 700);
}

pub async fn watch_ends_when_store_is_dropped<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    let mut watch = store.watch("", b).await.unwrap();
    store.put("k", b"v".to_vec()).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), b + 1);
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(20), watch.recv())
        .await
        .expect("watch did not end");
    assert_eq!(end, None);
}
