//! redb backend: the embedded default, one file.
//!
//! Tables:
//! - `kv`: key → create revision (u64 LE), mod revision (u64 LE), then the value bytes.
//! - `log`: revision → the events of that revision (see `encode_events`); the last
//!   `history` revisions are kept, and no more than `history_bytes` of them (the newest
//!   revision always), older ones are removed by the write that passes either bound.
//! - `meta`: `revision` (the store-wide counter), `compacted` (the newest revision
//!   removed from `log`) and `log_bytes` (the size of what `log` holds).
//!
//! Both bounds keep the file from growing with the number of writes: redb reuses the
//! pages compaction frees (the file never shrinks, but stops growing).
//!
//! Each write is one redb write transaction committed with redb's default durability
//! (fsync before `commit` returns), so an acknowledged write survives `kill -9` and power
//! loss. redb calls block, so they run on tokio's blocking pool; a write whose future is
//! dropped after it started still completes (or fails) as a whole.
//!
//! A write redb fails (a full filesystem: the error then says so) stores nothing, and
//! redb refuses every later write until the file is opened again: the next write does
//! that first, so writes succeed again as soon as space returns. Reads keep using the
//! file as open.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use crate::plan::{plan, KeyRevisions};
use crate::watch::{self, Commit, CommitReceiver, CommitSender, History};
use crate::{
    Entry, Event, Op, Result, Revision, Store, StoreError, Watch, DEFAULT_HISTORY,
    DEFAULT_HISTORY_BYTES,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_LOG_BYTES: &str = "log_bytes";

/// A [`Store`] in one redb file. Cloning gives another handle to the same store; the file
/// closes when the last handle is dropped.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The open file; `None` after a reopen failed (the next operation tries again).
    db: RwLock<Option<Database>>,
    /// Set when a write failed in redb: redb refuses every later write ("Previous I/O
    /// error occurred") until the file is opened again, which the next write does.
    needs_reopen: AtomicBool,
    path: PathBuf,
    commits: CommitSender,
    /// Held from the start of a write transaction until its commit is broadcast, so
    /// watchers receive commits in revision order.
    write_lock: Mutex<()>,
    /// How many revisions the `log` table keeps.
    history: u64,
    /// How many bytes of events the `log` table keeps at most.
    history_bytes: u64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .field("history", &self.inner.history)
            .field("history_bytes", &self.inner.history_bytes)
            .finish()
    }
}

fn backend(context: &str) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

/// Maps any redb error (they all convert into `redb::Error`) to a backend error.
trait RedbResultExt<T> {
    fn or_backend(self, context: &str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> RedbResultExt<T> for std::result::Result<T, E> {
    fn or_backend(self, context: &str) -> Result<T> {
        self.map_err(|e| backend(context)(e.into()))
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating the file and its parent directories when
    /// missing, keeping [`DEFAULT_HISTORY`] revisions for watches. Blocks on file I/O
    /// (and on recovery after a crash): call it at startup, not on a busy runtime thread.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_history(path, DEFAULT_HISTORY)
    }

    /// [`RedbStore::open`] keeping the last `revisions` revisions (at least 1) for watches.
    pub fn open_with_history(path: &Path, revisions: u64) -> Result<Self> {
        Self::open_with_history_limits(path, revisions, DEFAULT_HISTORY_BYTES)
    }

    /// [`RedbStore::open`] keeping the last `revisions` revisions (at least 1), and of
    /// them no more than `bytes` of events (the newest revision always), for watches.
    pub fn open_with_history_limits(path: &Path, revisions: u64, bytes: u64) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("creating directory {}: {e}", parent.display()))
            })?;
        }
        let context = format!("opening {}", path.display());
        let db = Database::create(path).or_backend(&context)?;
        let txn = db.begin_write().or_backend(&context)?;
        {
            txn.open_table(KV).or_backend(&context)?;
            let log = txn.open_table(LOG).or_backend(&context)?;
            let mut meta = txn.open_table(META).or_backend(&context)?;
            // A store written before the log's size was kept: measure it once.
            if meta.get(META_LOG_BYTES).or_backend(&context)?.is_none() {
                let mut total = 0u64;
                for item in log.iter().or_backend(&context)? {
                    let (_, bytes) = item.or_backend(&context)?;
                    total += bytes.value().len() as u64;
                }
                meta.insert(META_LOG_BYTES, total).or_backend(&context)?;
            }
        }
        txn.commit().or_backend(&context)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                needs_reopen: AtomicBool::new(false),
                path: path.to_path_buf(),
                commits: watch::commit_channel(),
                write_lock: Mutex::new(()),
                history: revisions.max(1),
                history_bytes: bytes,
            }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

impl Inner {
    /// The open database, opened again first when a write failed or a reopen did
    /// (`after_failed_write`: only then for a write; a read keeps using the file as
    /// open, which still answers).
    fn database(&self, after_failed_write: bool) -> Result<RwLockReadGuard<'_, Option<Database>>> {
        let reopen = |guard: &Option<Database>| {
            guard.is_none() || (after_failed_write && self.needs_reopen.load(Ordering::SeqCst))
        };
        {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            if !reopen(&guard) {
                return Ok(guard);
            }
        }
        {
            let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
            if reopen(&guard) {
                // Closes the file first: redb holds a lock on it while open.
                *guard = None;
                let db = Database::create(&self.path)
                    .or_backend(&format!("opening {} again", self.path.display()))
                    .map_err(|e| self.explain(e))?;
                *guard = Some(db);
                self.needs_reopen.store(false, Ordering::SeqCst);
                tracing::info!(path = %self.path.display(), "store opened again after a failed write");
            }
        }
        Ok(self.db.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Says what a full filesystem means for the store (the I/O error alone reads as
    /// "No space left on device (os error 28)").
    fn explain(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Backend(m) if m.contains("No space left on device") => {
                StoreError::Backend(format!(
                    "no space left on the filesystem of {}: the write was not stored, and writes fail until space is freed ({m})",
                    self.path.display()
                ))
            }
            other => other,
        }
    }

    /// Applies `ops` in one write transaction; returns the revision and whether anything
    /// changed. A write redb fails makes the next one open the file again.
    fn apply(&self, ops: Vec<Op>) -> Result<(Revision, bool)> {
        let _writing = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let guard = self.database(true)?;
        let db = guard.as_ref().expect("database() returns an open file");
        let result = self.apply_in(db, ops);
        if let Err(StoreError::Backend(_)) = &result {
            self.needs_reopen.store(true, Ordering::SeqCst);
        }
        result.map_err(|e| self.explain(e))
    }

    fn apply_in(&self, db: &Database, ops: Vec<Op>) -> Result<(Revision, bool)> {
        let txn = db.begin_write().or_backend("starting a write")?;
        let commit = {
            let mut kv = txn.open_table(KV).or_backend("opening kv")?;
            let mut log = txn.open_table(LOG).or_backend("opening log")?;
            let mut meta = txn.open_table(META).or_backend("opening meta")?;
            let current = meta
                .get(META_REVISION)
                .or_backend("reading the revision")?
                .map(|g| g.value())
                .unwrap_or(0);
            let next = current + 1;
            let events = plan(ops, next, |key| {
                let stored = kv.get(key).or_backend("reading a key")?;
                stored
                    .map(|g| decode_stored(g.value()).map(|(revisions, _)| revisions))
                    .transpose()
            })?;
            if events.is_empty() {
                // Dropping the transaction aborts it.
                return Ok((current, false));
            }
            for event in &events {
                match event {
                    Event::Put(entry) => {
                        let stored = encode_stored(
                            KeyRevisions {
                                create_revision: entry.create_revision,
                                mod_revision: entry.mod_revision,
                            },
                            &entry.value,
                        );
                        kv.insert(entry.key.as_str(), stored.as_slice())
                            .or_backend("writing a key")?;
                    }
                    Event::Delete { key, .. } => {
                        kv.remove(key.as_str()).or_backend("deleting a key")?;
                    }
                }
            }
            let encoded = encode_events(&events);
            log.insert(next, encoded.as_slice())
                .or_backend("writing the event log")?;
            meta.insert(META_REVISION, next)
                .or_backend("writing the revision")?;
            let mut log_bytes = meta
                .get(META_LOG_BYTES)
                .or_backend("reading the log size")?
                .map(|g| g.value())
                .unwrap_or(0)
                + encoded.len() as u64;
            let by_count = next.saturating_sub(self.history);
            let mut compacted = None;
            loop {
                let oldest = log
                    .first()
                    .or_backend("reading the event log")?
                    .map(|(k, v)| (k.value(), v.value().len() as u64));
                match oldest {
                    Some((revision, len))
                        if revision < next
                            && (revision <= by_count || log_bytes > self.history_bytes) =>
                    {
                        log.remove(revision)
                            .or_backend("compacting the event log")?;
                        log_bytes = log_bytes.saturating_sub(len);
                        compacted = Some(revision);
                    }
                    _ => break,
                }
            }
            meta.insert(META_LOG_BYTES, log_bytes)
                .or_backend("writing the log size")?;
            let before = meta
                .get(META_COMPACTED)
                .or_backend("reading the compacted revision")?
                .map(|g| g.value())
                .unwrap_or(0);
            let compacted = compacted.unwrap_or(0).max(by_count).max(before);
            if compacted > before {
                meta.insert(META_COMPACTED, compacted)
                    .or_backend("writing the compacted revision")?;
            }
            Commit {
                revision: next,
                events,
            }
        };
        txn.commit().or_backend("committing")?;
        let revision = commit.revision;
        // An error only means nobody watches.
        let _ = self.commits.send(Arc::new(commit));
        Ok((revision, true))
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let guard = self.database(false)?;
        let db = guard.as_ref().expect("database() returns an open file");
        let txn = db.begin_read().or_backend("starting a read")?;
        let kv = txn.open_table(KV).or_backend("opening kv")?;
        let stored = kv.get(key).or_backend("reading a key")?;
        stored.map(|g| entry(key, g.value())).transpose()
    }

    fn list_with_revision(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let guard = self.database(false)?;
        let db = guard.as_ref().expect("database() returns an open file");
        let txn = db.begin_read().or_backend("starting a read")?;
        let kv = txn.open_table(KV).or_backend("opening kv")?;
        let meta = txn.open_table(META).or_backend("opening meta")?;
        let mut entries = Vec::new();
        for item in kv.range::<&str>(prefix..).or_backend("listing keys")? {
            let (key, value) = item.or_backend("listing keys")?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            entries.push(entry(key, value.value())?);
        }
        let revision = meta
            .get(META_REVISION)
            .or_backend("reading the revision")?
            .map(|g| g.value())
            .unwrap_or(0);
        Ok((entries, revision))
    }

    fn revision(&self) -> Result<Revision> {
        let guard = self.database(false)?;
        let db = guard.as_ref().expect("database() returns an open file");
        let txn = db.begin_read().or_backend("starting a read")?;
        let meta = txn.open_table(META).or_backend("opening meta")?;
        let revision = meta
            .get(META_REVISION)
            .or_backend("reading the revision")?
            .map(|g| g.value())
            .unwrap_or(0);
        Ok(revision)
    }
}

impl History for Inner {
    fn subscribe(&self) -> CommitReceiver {
        self.commits.subscribe()
    }

    fn read_history(&self, prefix: &str, after: Revision) -> Result<(Vec<Event>, Revision)> {
        let guard = self.database(false)?;
        let db = guard.as_ref().expect("database() returns an open file");
        let txn = db.begin_read().or_backend("starting a read")?;
        let log = txn.open_table(LOG).or_backend("opening log")?;
        let meta = txn.open_table(META).or_backend("opening meta")?;
        let read = |name: &str| -> Result<Revision> {
            Ok(meta
                .get(name)
                .or_backend("reading meta")?
                .map(|g| g.value())
                .unwrap_or(0))
        };
        let head = read(META_REVISION)?;
        let compacted = read(META_COMPACTED)?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted + 1,
            });
        }
        let mut events = Vec::new();
        for item in log
            .range(after.saturating_add(1)..)
            .or_backend("reading the event log")?
        {
            let (revision, bytes) = item.or_backend("reading the event log")?;
            events.extend(
                decode_events(revision.value(), bytes.value())?
                    .into_iter()
                    .filter(|e| e.key().starts_with(prefix)),
            );
        }
        Ok((events, head))
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let key = key.to_string();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let ops = vec![Op::Delete {
            key: key.to_string(),
            expect: None,
        }];
        let (revision, changed) = self.blocking(move |inner| inner.apply(ops)).await?;
        Ok(changed.then_some(revision))
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<Revision> {
        let (revision, _) = self.blocking(move |inner| inner.apply(ops)).await?;
        Ok(revision)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        Ok(self.list_with_revision(prefix).await?.0)
    }

    async fn revision(&self) -> Result<Revision> {
        self.blocking(|inner| inner.revision()).await
    }

    async fn list_with_revision(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.list_with_revision(&prefix))
            .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        watch::start(&self.inner, prefix, after).await
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what} in the store file"))
}

fn encode_stored(revisions: KeyRevisions, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&revisions.create_revision.to_le_bytes());
    out.extend_from_slice(&revisions.mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_stored(bytes: &[u8]) -> Result<(KeyRevisions, &[u8])> {
    let mut reader = Reader { bytes };
    let create_revision = reader.u64().ok_or_else(|| corrupt("entry"))?;
    let mod_revision = reader.u64().ok_or_else(|| corrupt("entry"))?;
    Ok((
        KeyRevisions {
            create_revision,
            mod_revision,
        },
        reader.bytes,
    ))
}

fn entry(key: &str, bytes: &[u8]) -> Result<Entry> {
    let (revisions, value) = decode_stored(bytes)?;
    Ok(Entry {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision: revisions.create_revision,
        mod_revision: revisions.mod_revision,
    })
}

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;

/// The events of one revision: for each, a tag byte, the key (u64 LE length, bytes) and,
/// for a put, the create revision (u64 LE) and the value (u64 LE length, bytes). The mod
/// revision is the log key.
fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    for event in events {
        match event {
            Event::Put(entry) => {
                out.push(TAG_PUT);
                bytes(&mut out, entry.key.as_bytes());
                out.extend_from_slice(&entry.create_revision.to_le_bytes());
                bytes(&mut out, &entry.value);
            }
            Event::Delete { key, .. } => {
                out.push(TAG_DELETE);
                bytes(&mut out, key.as_bytes());
            }
        }
    }
    out
}

fn decode_events(revision: Revision, bytes: &[u8]) -> Result<Vec<Event>> {
    let mut reader = Reader { bytes };
    let mut events = Vec::new();
    let bad = || corrupt("event log record");
    while let Some(tag) = reader.u8() {
        let key = reader.chunk().ok_or_else(bad)?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| bad())?;
        match tag {
            TAG_PUT => {
                let create_revision = reader.u64().ok_or_else(bad)?;
                let value = reader.chunk().ok_or_else(bad)?.to_vec();
                events.push(Event::Put(Entry {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                }));
            }
            TAG_DELETE => events.push(Event::Delete {
                key,
                mod_revision: revision,
            }),
            _ => return Err(bad()),
        }
    }
    Ok(events)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("took 8 bytes")))
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }
}

#[cfg(test)]
#[path = "redb_store_tests.rs"]
mod tests;
