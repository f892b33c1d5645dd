//! Unit tests of the redb backend: its file layout and the history it trims.

use super::*;

#[test]
fn events_round_trip() {
    let events = vec![
        Event::Put(Entry {
            key: "a/1".into(),
            value: b"one".to_vec(),
            create_revision: 3,
            mod_revision: 7,
        }),
        Event::Delete {
            key: "a/2".into(),
            mod_revision: 7,
        },
        Event::Put(Entry {
            key: "".into(),
            value: Vec::new(),
            create_revision: 7,
            mod_revision: 7,
        }),
    ];
    assert_eq!(decode_events(7, &encode_events(&events)).unwrap(), events);
}

#[test]
fn truncated_records_are_errors_not_panics() {
    let events = vec![Event::Put(Entry {
        key: "k".into(),
        value: b"value".to_vec(),
        create_revision: 1,
        mod_revision: 1,
    })];
    let bytes = encode_events(&events);
    for len in 1..bytes.len() {
        assert!(
            decode_events(1, &bytes[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
    assert!(decode_stored(&[0; 15]).is_err());
}

#[test]
fn stored_entry_round_trips() {
    let revisions = KeyRevisions {
        create_revision: 4,
        mod_revision: 9,
    };
    let bytes = encode_stored(revisions, b"v");
    let (decoded, value) = decode_stored(&bytes).unwrap();
    assert_eq!(decoded, revisions);
    assert_eq!(value, b"v");
}

#[tokio::test]
async fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/state.redb");
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.put("k", b"v".to_vec()).await.unwrap(), 1);
    assert!(path.exists());
    assert_eq!(store.path(), path);
}

#[tokio::test]
async fn history_is_trimmed_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open_with_history(&dir.path().join("s.redb"), 3).unwrap();
    for i in 0..10 {
        store.put("k", vec![i]).await.unwrap();
    }
    let inner = store.inner.clone();
    let kept: Vec<u64> = tokio::task::spawn_blocking(move || {
        let guard = inner.db.read().unwrap();
        let txn = guard.as_ref().unwrap().begin_read().unwrap();
        let log = txn.open_table(LOG).unwrap();
        log.iter()
            .unwrap()
            .map(|item| item.unwrap().0.value())
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(kept, vec![8, 9, 10]);
}
