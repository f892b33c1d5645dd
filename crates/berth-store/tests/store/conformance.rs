//! The conformance suite (`berth_store::conformance`) run against the memory and redb
//! backends.

use berth_store::conformance::Backend;
use berth_store::{MemoryStore, RedbStore};
use tempfile::TempDir;

struct MemoryBackend;
impl Backend for MemoryBackend {
    type Store = MemoryStore;
    type Guard = ();
    const FRESH_STORE_STARTS_AT_ZERO: bool = true;

    async fn open(history: u64) -> (MemoryStore, ()) {
        (MemoryStore::with_history(history), ())
    }

    async fn compact(_store: &MemoryStore, _history: u64) {}
}

struct RedbBackend;
impl Backend for RedbBackend {
    type Store = RedbStore;
    type Guard = TempDir;
    const FRESH_STORE_STARTS_AT_ZERO: bool = true;

    async fn open(history: u64) -> (RedbStore, TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open_with_history(&dir.path().join("state.redb"), history)
            .expect("open redb store");
        (store, dir)
    }

    async fn compact(_store: &RedbStore, _history: u64) {}
}

mod memory {
    berth_store::conformance_suite!(super::MemoryBackend);
}

mod redb {
    berth_store::conformance_suite!(super::RedbBackend);
}
