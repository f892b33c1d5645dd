//! The redb store on a full filesystem (a small tmpfs mounted by the test, which needs
//! root and fails loudly without it): a write that finds no space fails with an error
//! naming the cause, nothing stored before is lost or changed, and once space returns
//! the next write succeeds without reopening the store.

use berth_store::{RedbStore, Store, StoreError};
use berth_testkit::small_fs::SmallFs;

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_loses_nothing() {
    let fs = SmallFs::mount("8m");
    let path = fs.path().join("berth.redb");
    let store = RedbStore::open(&path).unwrap();
    for i in 0..20u32 {
        store
            .put(&format!("/kept/{i}"), vec![i as u8; 1000])
            .await
            .unwrap();
    }
    let filler = fs.fill();
    // Writes until one fails for lack of space.
    let mut failed = None;
    for i in 0..2000u32 {
        match store.put(&format!("/more/{i}"), vec![1; 16 * 1024]).await {
            Ok(_) => {}
            Err(e) => {
                failed = Some((i, e));
                break;
            }
        }
    }
    let (first_failed, e) = failed.expect("a write fails on a full filesystem");
    let message = e.to_string();
    assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
    assert!(
        message.contains(&format!(
            "no space left on the filesystem of {}",
            path.display()
        )),
        "{message}"
    );
    // Reads still answer, with everything acknowledged before.
    for i in 0..20u32 {
        let v = store.get(&format!("/kept/{i}")).await.unwrap().unwrap();
        assert_eq!(v.value, vec![i as u8; 1000]);
    }
    // Still full: the next write fails the same way (the store is opened again first).
    let again = store.put("/while-full", vec![1; 16 * 1024]).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no space left")),
        "{again:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    store
        .put("/after", b"space again".to_vec())
        .await
        .expect("a write once space is back");
    assert!(store.get("/while-full").await.unwrap().is_none());
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    for i in 0..20u32 {
        assert!(store.get(&format!("/kept/{i}")).await.unwrap().is_some());
    }
    for i in 0..first_failed {
        assert!(store.get(&format!("/more/{i}")).await.unwrap().is_some());
    }
    assert_eq!(
        store.get("/after").await.unwrap().unwrap().value,
        b"space again"
    );
}
