//! berth-store: a versioned key-value store with watches, the one place berth keeps
//! accepted state.
//!
//! Every write bumps a store-wide revision (as etcd does); each entry remembers the
//! revision that created it and the one that last changed it, so callers can do
//! compare-and-put and watch for changes from a revision on. Keys are `/`-separated
//! strings; values are bytes (berth stores JSON).
//!
//! A batch of puts and deletes is atomic and gets one new revision; each op may carry an
//! [`Expect`] (absent, or exactly this mod revision) checked against the state before the
//! batch. A watch replays the retained history after a revision and then streams live
//! events, in revision order, without gaps or duplicates. History is bounded (by default
//! the last [`DEFAULT_HISTORY`] revisions); watching from before it fails with
//! [`StoreError::Compacted`], and the caller re-lists and watches from the list's revision
//! ([`Store::list_with_revision`]).
//!
//! What it does not do: interpret values, know about berth's resources, expire keys
//! (no leases), or replicate: both backends keep one server's state on that server
//! (`berth-store-etcd` implements [`Store`] on etcd for servers that share state).
//!
//! Layout:
//! - [`Store`]: the trait every backend implements, with [`Entry`], [`Event`], [`Op`],
//!   [`Expect`] and [`StoreError`].
//! - [`memory`]: an in-memory backend for tests ([`MemoryStore`]).
//! - [`redb_store`]: the embedded default, one redb file under `--data-dir`
//!   ([`RedbStore`]); writes are fsynced before they are acknowledged.
//! - [`conformance`] (cargo feature `conformance`): the suite every backend's tests run.
//! - `watch` (private): the fan-out shared by both backends: one broadcast of commits,
//!   one task per watch that replays history, then forwards live commits, and re-reads
//!   history when it lags behind the broadcast.

use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod memory;
mod plan;
pub mod redb_store;
mod watch;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// A store-wide revision number; 0 means "before any write".
pub type Revision = u64;

/// How many revisions of history backends keep for watches unless told otherwise.
pub const DEFAULT_HISTORY: u64 = 10_000;

/// How many bytes of history (events with their values) the redb backend keeps unless
/// told otherwise: revisions beyond it are compacted even when fewer than
/// [`DEFAULT_HISTORY`], so a store whose values are large does not hold ten thousand of
/// them.
pub const DEFAULT_HISTORY_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the write that last changed the key.
    pub mod_revision: Revision,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Entry),
    Delete { key: String, mod_revision: Revision },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put(e) => &e.key,
            Event::Delete { key, .. } => key,
        }
    }

    pub fn revision(&self) -> Revision {
        match self {
            Event::Put(e) => e.mod_revision,
            Event::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// A precondition on one key, checked atomically with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this `mod_revision`.
    ModRevision(Revision),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        expect: Option<Expect>,
    },
    Delete {
        key: String,
        expect: Option<Expect>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("compare failed on {key}: expected {expected:?}, found mod revision {actual:?}")]
    Conflict {
        key: String,
        expected: Expect,
        actual: Option<Revision>,
    },
    /// A watch asked for events after `requested`, but history only reaches back to
    /// `oldest` (watching is possible when `requested + 1 >= oldest`).
    #[error("watch from revision {requested} is no longer possible: history starts at {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A stream of events for keys under a prefix, in revision order.
pub type Watch = tokio::sync::mpsc::Receiver<Event>;

/// A versioned key-value store. All methods are atomic; a write that returned `Ok` is
/// durable (it survives a crash of the process right after).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Puts `value` at `key`; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        self.batch(vec![Op::Put {
            key: key.to_string(),
            value,
            expect: None,
        }])
        .await
    }

    /// Puts `value` at `key` only if `expect` holds; returns the new revision.
    async fn compare_and_put(&self, key: &str, expect: Expect, value: Vec<u8>) -> Result<Revision> {
        self.batch(vec![Op::Put {
            key: key.to_string(),
            value,
            expect: Some(expect),
        }])
        .await
    }

    /// Deletes `key`; returns the new revision, or `None` when the key did not exist.
    async fn delete(&self, key: &str) -> Result<Option<Revision>>;

    /// Applies all `ops` in one atomic write, or none of them if any expectation fails
    /// (then the error is [`StoreError::Conflict`] for the first failing op).
    /// Expectations are checked against the state before the batch; ops apply in order.
    /// Returns the revision of the write (every op shares it). A batch that changes
    /// nothing (empty, or only deletes of absent keys) makes no new revision and returns
    /// the current one.
    async fn batch(&self, ops: Vec<Op>) -> Result<Revision>;

    /// All entries whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<Entry>>;

    /// The latest revision.
    async fn revision(&self) -> Result<Revision>;

    /// [`Store::list`] together with the revision it reflects, read atomically, so a
    /// caller can list and then `watch(prefix, revision)` without missing a change.
    ///
    /// The default reads the revision first and then lists; entries may then be newer
    /// than the revision, so a watch from it may repeat changes (never miss one).
    /// Backends override it with an atomic read.
    async fn list_with_revision(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let revision = self.revision().await?;
        let entries = self.list(prefix).await?;
        Ok((entries, revision))
    }

    /// Events for keys under `prefix` with revision greater than `after`, then live ones.
    ///
    /// Fails with [`StoreError::Compacted`] when history no longer reaches back to
    /// `after + 1`. `after` may be ahead of the store; the watch then waits. Events of one
    /// batch share a revision and arrive in op order. The watch ends (the receiver yields
    /// `None`) when the store is dropped, or when the receiver fell so far behind that
    /// the history it still needed was compacted; re-list and watch again then. Dropping
    /// the receiver ends the watch; a slow receiver never blocks writers.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;
}

pub type DynStore = Arc<dyn Store>;
