//! The conformance suite every [`Store`] backend runs (cargo feature `conformance`).
//!
//! A backend's tests describe how to open a fresh store ([`Backend`]) and call
//! [`conformance_suite!`](crate::conformance_suite), which makes one `#[tokio::test]` per
//! case. The cases check the trait's contract: revisions, compare-and-put, atomic
//! batches, ordered listing, and watches (replay, live events, op order, compaction,
//! slow and dropped watchers).
//!
//! Revisions are compared relative to the store's revision when the case opened it, so
//! a backend whose fresh store does not start at 0 (a new key prefix in a used etcd)
//! runs the same checks; backends that do start at 0 say so and the suite checks it.
//!
//! What it does not do: open stores itself, or test what is particular to one backend
//! (durability across a crash, reopening a file).

use std::future::Future;
use std::time::Duration;

use crate::{Entry, Event, Op, Revision, Store, Watch};

pub mod read_write;
pub mod watches;

/// A backend under test: how to make a fresh store.
pub trait Backend {
    type Store: Store + Clone;
    /// What keeps the store's resources (files, a server) alive while a case runs.
    type Guard;
    /// Whether a fresh store's revision is 0; otherwise the suite only compares
    /// revisions relative to the one it finds.
    const FRESH_STORE_STARTS_AT_ZERO: bool;

    /// A fresh, empty store keeping at least `history` revisions.
    fn open(history: u64) -> impl Future<Output = (Self::Store, Self::Guard)>;

    /// Makes history reach back only `history` revisions from the latest, for backends
    /// whose history is not bounded by `open` (etcd compacts on request); the others do
    /// nothing.
    fn compact(store: &Self::Store, history: u64) -> impl Future<Output = ()>;
}

/// The history the cases open stores with unless they test compaction.
pub const HISTORY: u64 = 10_000;

/// Opens a fresh store and returns it with its starting revision, checked to be 0 where
/// the backend promises it.
pub async fn open<B: Backend>(history: u64) -> (B::Store, B::Guard, Revision) {
    let (store, guard) = B::open(history).await;
    let base = store.revision().await.expect("revision of a fresh store");
    if B::FRESH_STORE_STARTS_AT_ZERO {
        assert_eq!(base, 0, "a fresh store starts at revision 0");
    }
    assert!(
        store.list("").await.expect("list").is_empty(),
        "a fresh store is empty"
    );
    (store, guard, base)
}

pub fn put_op(key: &str, value: &str, expect: Option<crate::Expect>) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        expect,
    }
}

pub fn delete_op(key: &str, expect: Option<crate::Expect>) -> Op {
    Op::Delete {
        key: key.to_string(),
        expect,
    }
}

/// The next event, failing the test instead of hanging.
pub async fn next(watch: &mut Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(20), watch.recv())
        .await
        .expect("timed out waiting for a watch event")
        .expect("watch ended")
}

/// Asserts nothing is ready on the watch right now after a write that it must not see:
/// a later write it does see must be the next event.
pub async fn assert_next_is<S: Store>(store: &S, watch: &mut Watch, key: &str) -> Revision {
    let revision = store.put(key, b"marker".to_vec()).await.unwrap();
    let event = next(watch).await;
    assert_eq!(event.key(), key, "unexpected event {event:?}");
    assert_eq!(event.revision(), revision);
    revision
}

pub fn put_event(event: &Event) -> &Entry {
    match event {
        Event::Put(entry) => entry,
        other => panic!("expected a put event, got {other:?}"),
    }
}

pub fn values(entries: &[Entry]) -> Vec<(&str, &[u8])> {
    entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_slice()))
        .collect()
}

/// Makes one `#[tokio::test]` per conformance case for a [`Backend`] type:
/// `berth_store::conformance_suite!(MyBackend);` at the top level of a test file.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ty) => {
        $crate::conformance_suite!(@cases $backend:
            read_write::get_put_delete,
            read_write::list_by_prefix,
            read_write::list_with_revision,
            read_write::revision_semantics,
            read_write::compare_and_put,
            read_write::batch_is_all_or_nothing,
            read_write::batch_applies_every_op,
            watches::watch_replays_then_streams,
            watches::watch_from_the_start_replays_everything,
            watches::watch_batch_events_share_revision,
            watches::watch_from_the_future_waits,
            watches::watch_compacted,
            watches::watch_has_no_gap_or_duplicate_under_concurrent_writes,
            watches::slow_watcher_catches_up,
            watches::watchers_do_not_block_writers,
            watches::watch_ends_when_store_is_dropped,
        );
    };
    (@cases $backend:ty: $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::conformance::$module::$case::<$backend>().await;
            }
        )*
    };
}
