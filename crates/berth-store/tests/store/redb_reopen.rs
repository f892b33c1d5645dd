//! The redb backend across closing and reopening its file.

use std::time::Duration;

use berth_store::{Event, RedbStore, Store, StoreError};

#[tokio::test]
async fn data_and_revision_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/state.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store.put("a/1", b"one".to_vec()).await.unwrap(); // 1
        store.put("a/2", b"two".to_vec()).await.unwrap(); // 2
        store.put("a/1", b"uno".to_vec()).await.unwrap(); // 3
        store.delete("a/2").await.unwrap(); // 4
        store.put("b/1", b"bee".to_vec()).await.unwrap(); // 5
    }

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.revision().await.unwrap(), 5);
    let a1 = store.get("a/1").await.unwrap().unwrap();
    assert_eq!(a1.value, b"uno");
    assert_eq!((a1.create_revision, a1.mod_revision), (1, 3));
    assert_eq!(store.get("a/2").await.unwrap(), None);
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["a/1", "b/1"]);

    // The counter continues where it stopped.
    assert_eq!(store.put("c", b"see".to_vec()).await.unwrap(), 6);

    // History survives too: a watch replays writes made before the reopen.
    let mut watch = store.watch("a/", 2).await.unwrap();
    let third = watch.recv().await.unwrap();
    assert_eq!((third.key(), third.revision()), ("a/1", 3));
    assert_eq!(
        watch.recv().await.unwrap(),
        Event::Delete {
            key: "a/2".into(),
            mod_revision: 4
        }
    );
}

#[tokio::test]
async fn compaction_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let store = RedbStore::open_with_history(&path, 4).unwrap();
        for i in 0..10u8 {
            store.put("k", vec![i]).await.unwrap();
        }
    }
    let store = RedbStore::open_with_history(&path, 4).unwrap();
    assert!(matches!(
        store.watch("", 5).await,
        Err(StoreError::Compacted {
            requested: 5,
            oldest: 7
        })
    ));
    let mut watch = store.watch("", 6).await.unwrap();
    assert_eq!(watch.recv().await.unwrap().revision(), 7);
}

#[tokio::test]
async fn an_open_watch_does_not_keep_the_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = RedbStore::open(&path).unwrap();
    store.put("k", b"v".to_vec()).await.unwrap();
    let mut watch = store.watch("", 0).await.unwrap();
    assert_eq!(watch.recv().await.unwrap().revision(), 1);
    drop(store);

    // The watch ends with the store, and the file can be opened again.
    let end = tokio::time::timeout(Duration::from_secs(20), watch.recv())
        .await
        .expect("watch did not end");
    assert_eq!(end, None);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_an_error_not_a_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = RedbStore::open(&path).unwrap();
    store.put("k", b"v".to_vec()).await.unwrap();
    let second = RedbStore::open(&path);
    assert!(matches!(second, Err(StoreError::Backend(_))), "{second:?}");
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
}
