//! The redb store's history is bounded by bytes as well as by revisions: large values
//! written again and again do not grow the file without end, and watches behind the
//! bound are told to re-list.

use berth_store::{RedbStore, Store, StoreError};

const VALUE: usize = 4096;

async fn write(store: &RedbStore, from: usize, n: usize) {
    for i in from..from + n {
        store
            .put(&format!("k/{}", i % 8), vec![i as u8; VALUE])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn history_is_kept_within_its_byte_budget_and_the_file_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let budget = 64 * 1024;
    let store = RedbStore::open_with_history_limits(&path, 10_000, budget).unwrap();
    write(&store, 0, 500).await;
    let size_after_500 = std::fs::metadata(&path).unwrap().len();
    write(&store, 500, 1500).await;
    let size_after_2000 = std::fs::metadata(&path).unwrap().len();
    assert_eq!(store.revision().await.unwrap(), 2000);
    assert!(
        size_after_2000 <= size_after_500,
        "the file grew from {size_after_500} to {size_after_2000} bytes"
    );

    // About budget / value size revisions are kept: older ones are compacted although
    // far fewer than 10,000 revisions were written.
    let Err(StoreError::Compacted { oldest, .. }) = store.watch("", 1000).await else {
        panic!("a watch from revision 1000 should find it compacted");
    };
    let kept = 2000 - oldest + 1;
    let fits = budget / VALUE as u64;
    assert!(kept >= fits / 2 && kept <= fits, "kept {kept} revisions");
    let mut watch = store.watch("", 2000 - kept / 2).await.unwrap();
    assert_eq!(watch.recv().await.unwrap().revision(), 2000 - kept / 2 + 1);
    drop(watch);
    drop(store);

    // The budget holds across a reopen: the log's size is stored with it.
    let store = RedbStore::open_with_history_limits(&path, 10_000, budget).unwrap();
    write(&store, 2000, 100).await;
    let Err(StoreError::Compacted { oldest: after, .. }) = store.watch("", 1).await else {
        panic!("still compacted");
    };
    assert_eq!(
        2100 - after + 1,
        kept,
        "the same number of revisions is kept"
    );
}
