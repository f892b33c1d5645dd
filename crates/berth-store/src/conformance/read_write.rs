//! Conformance cases for reads and writes: revisions, listing, compare-and-put, batches.
//! Every revision is written relative to the store's revision when the case opened it
//! (`b`).

use super::{delete_op, open, put_op, values, Backend, HISTORY};
use crate::{Entry, Expect, Store, StoreError};

pub async fn get_put_delete<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    assert_eq!(store.get("a").await.unwrap(), None);

    assert_eq!(store.put("a", b"one".to_vec()).await.unwrap(), b + 1);
    let entry = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        entry,
        Entry {
            key: "a".into(),
            value: b"one".to_vec(),
            create_revision: b + 1,
            mod_revision: b + 1,
        }
    );

    assert_eq!(store.put("a", b"two".to_vec()).await.unwrap(), b + 2);
    let entry = store.get("a").await.unwrap().unwrap();
    assert_eq!(entry.value, b"two");
    assert_eq!((entry.create_revision, entry.mod_revision), (b + 1, b + 2));

    assert_eq!(store.delete("a").await.unwrap(), Some(b + 3));
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(store.delete("a").await.unwrap(), None);
    assert_eq!(
        store.revision().await.unwrap(),
        b + 3,
        "a no-op delete is no write"
    );

    assert_eq!(store.put("a", b"three".to_vec()).await.unwrap(), b + 4);
    let entry = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (entry.create_revision, entry.mod_revision),
        (b + 4, b + 4),
        "a recreated key has a new create revision"
    );
}

pub async fn list_by_prefix<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
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
    assert_eq!(listed[0].mod_revision, b + 1);

    store.delete("a/1").await.unwrap();
    assert_eq!(
        keys(store.list("a/").await.unwrap()),
        ["a/", "a/1/x", "a/2"]
    );
}

pub async fn list_with_revision<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    store.put("x/1", b"1".to_vec()).await.unwrap();
    store.put("y/1", b"1".to_vec()).await.unwrap();
    let (entries, revision) = store.list_with_revision("x/").await.unwrap();
    assert_eq!(values(&entries), [("x/1", b"1".as_slice())]);
    assert_eq!(revision, b + 2);
}

pub async fn revision_semantics<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    assert_eq!(store.batch(vec![]).await.unwrap(), b, "empty batch");
    assert_eq!(store.put("k1", b"1".to_vec()).await.unwrap(), b + 1);
    let revision = store
        .batch(vec![
            put_op("k2", "2", None),
            put_op("k3", "3", None),
            delete_op("k1", None),
        ])
        .await
        .unwrap();
    assert_eq!(revision, b + 2, "a batch is one revision");
    for key in ["k2", "k3"] {
        let entry = store.get(key).await.unwrap().unwrap();
        assert_eq!((entry.create_revision, entry.mod_revision), (b + 2, b + 2));
    }
    assert_eq!(store.get("k1").await.unwrap(), None);
    assert_eq!(
        store.batch(vec![delete_op("missing", None)]).await.unwrap(),
        b + 2,
        "a batch that changes nothing returns the current revision"
    );
    assert_eq!(store.revision().await.unwrap(), b + 2);
    assert_eq!(store.put("k4", b"4".to_vec()).await.unwrap(), b + 3);
}

pub async fn compare_and_put<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    let r1 = store
        .compare_and_put("k", Expect::Absent, b"1".to_vec())
        .await
        .unwrap();
    assert_eq!(r1, b + 1);

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
            assert_eq!(actual, Some(r1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let r2 = store
        .compare_and_put("k", Expect::ModRevision(r1), b"2".to_vec())
        .await
        .unwrap();
    assert_eq!(r2, b + 2);

    match store
        .compare_and_put("k", Expect::ModRevision(r1), b"stale".to_vec())
        .await
    {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(r2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    for absent_revision in [r1, 0] {
        match store
            .compare_and_put("other", Expect::ModRevision(absent_revision), b"x".to_vec())
            .await
        {
            Err(StoreError::Conflict { key, actual, .. }) => {
                assert_eq!(key, "other");
                assert_eq!(actual, None);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    let entry = store.get("k").await.unwrap().unwrap();
    assert_eq!(entry.value, b"2", "failed compares changed nothing");
    assert_eq!(store.revision().await.unwrap(), b + 2);
    assert_eq!(store.get("other").await.unwrap(), None);

    // Delete with an expectation goes through batch.
    let err = store
        .batch(vec![delete_op("k", Some(Expect::ModRevision(r1)))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let r3 = store
        .batch(vec![delete_op("k", Some(Expect::ModRevision(r2)))])
        .await
        .unwrap();
    assert_eq!(r3, b + 3);
    assert_eq!(store.get("k").await.unwrap(), None);
}

pub async fn batch_is_all_or_nothing<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
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
            // Fails: "keep" is at revision b + 1.
            put_op("keep", "newer", Some(Expect::ModRevision(b + 99))),
            // Fails too, but the first failing op is the one named.
            put_op("gone", "newer", Some(Expect::Absent)),
        ])
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict { key, actual, .. } => {
            assert_eq!(key, "keep");
            assert_eq!(actual, Some(b + 1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    assert_eq!(store.list("").await.unwrap(), before, "nothing changed");
    assert_eq!(store.revision().await.unwrap(), revision, "no new revision");
    // The failed batch made no event: the next one is the marker.
    super::assert_next_is(&store, &mut watch, "marker").await;
}

pub async fn batch_applies_every_op<B: Backend>() {
    let (store, _guard, b) = open::<B>(HISTORY).await;
    let r1 = store.put("keep", b"old".to_vec()).await.unwrap();
    store.put("gone", b"old".to_vec()).await.unwrap();
    let revision = store
        .batch(vec![
            put_op("keep", "new", Some(Expect::ModRevision(r1))),
            put_op("fresh", "new", Some(Expect::Absent)),
            delete_op("gone", Some(Expect::ModRevision(b + 2))),
        ])
        .await
        .unwrap();
    assert_eq!(revision, b + 3);
    let entries = store.list("").await.unwrap();
    assert_eq!(
        values(&entries),
        [("fresh", b"new".as_slice()), ("keep", b"new".as_slice())]
    );
    assert!(entries.iter().all(|e| e.mod_revision == b + 3));
    assert_eq!(entries[1].create_revision, b + 1);
}
