//! In-memory backend (for tests): the same semantics as the redb backend, nothing kept
//! across processes.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::plan::{plan, KeyRevisions};
use crate::watch::{self, Commit, CommitReceiver, CommitSender, History};
use crate::{Entry, Event, Op, Result, Revision, Store, StoreError, Watch, DEFAULT_HISTORY};

/// A [`Store`] held in memory. Cloning gives another handle to the same store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    commits: CommitSender,
}

struct State {
    entries: BTreeMap<String, Stored>,
    revision: Revision,
    /// The commits of the retained revisions, oldest first.
    log: VecDeque<Arc<Commit>>,
    /// The newest revision dropped from `log` (0 when none was).
    compacted: Revision,
    /// How many revisions `log` keeps.
    history: u64,
}

struct Stored {
    value: Vec<u8>,
    create_revision: Revision,
    mod_revision: Revision,
}

impl Stored {
    fn entry(&self, key: &str) -> Entry {
        Entry {
            key: key.to_string(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MemoryStore")
            .field("keys", &state.entries.len())
            .field("revision", &state.revision)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store at revision 0 keeping [`DEFAULT_HISTORY`] revisions for watches.
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// An empty store keeping the last `revisions` revisions (at least 1) for watches.
    pub fn with_history(revisions: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    entries: BTreeMap::new(),
                    revision: 0,
                    log: VecDeque::new(),
                    compacted: 0,
                    history: revisions.max(1),
                }),
                commits: watch::commit_channel(),
            }),
        }
    }

    /// Applies `ops`; returns the revision and whether anything changed.
    fn apply(&self, ops: Vec<Op>) -> Result<(Revision, bool)> {
        let mut state = self.inner.lock();
        let next = state.revision + 1;
        let events = plan(ops, next, |key| {
            Ok(state.entries.get(key).map(|s| KeyRevisions {
                create_revision: s.create_revision,
                mod_revision: s.mod_revision,
            }))
        })?;
        if events.is_empty() {
            return Ok((state.revision, false));
        }
        for event in &events {
            match event {
                Event::Put(entry) => {
                    state.entries.insert(
                        entry.key.clone(),
                        Stored {
                            value: entry.value.clone(),
                            create_revision: entry.create_revision,
                            mod_revision: entry.mod_revision,
                        },
                    );
                }
                Event::Delete { key, .. } => {
                    state.entries.remove(key);
                }
            }
        }
        state.revision = next;
        let commit = Arc::new(Commit {
            revision: next,
            events,
        });
        state.log.push_back(commit.clone());
        while let Some(oldest) = state.log.front() {
            if oldest.revision + state.history > next {
                break;
            }
            state.compacted = oldest.revision;
            state.log.pop_front();
        }
        // Sent under the lock so commits reach the broadcast in revision order. An error
        // only means nobody watches.
        let _ = self.inner.commits.send(commit);
        Ok((next, true))
    }

    fn list_now(state: &State, prefix: &str) -> Vec<Entry> {
        state
            .entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, stored)| stored.entry(key))
            .collect()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed: every
        // change is made after all checks passed, by code that does not panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl History for Inner {
    fn subscribe(&self) -> CommitReceiver {
        self.commits.subscribe()
    }

    fn read_history(&self, prefix: &str, after: Revision) -> Result<(Vec<Event>, Revision)> {
        let state = self.lock();
        if after < state.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: state.compacted + 1,
            });
        }
        let events = state
            .log
            .iter()
            .filter(|commit| commit.revision > after)
            .flat_map(|commit| commit.events.iter())
            .filter(|event| event.key().starts_with(prefix))
            .cloned()
            .collect();
        Ok((events, state.revision))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.inner.lock().entries.get(key).map(|s| s.entry(key)))
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let (revision, changed) = self.apply(vec![Op::Delete {
            key: key.to_string(),
            expect: None,
        }])?;
        Ok(changed.then_some(revision))
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<Revision> {
        self.apply(ops).map(|(revision, _)| revision)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        Ok(Self::list_now(&self.inner.lock(), prefix))
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.inner.lock().revision)
    }

    async fn list_with_revision(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let state = self.inner.lock();
        Ok((Self::list_now(&state, prefix), state.revision))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        watch::start(&self.inner, prefix, after).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn until_no_watch_task(store: &MemoryStore) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while store.inner.commits.receiver_count() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the watch task did not end");
    }

    #[tokio::test]
    async fn a_dropped_watch_ends_its_task() {
        let store = MemoryStore::new();
        let watch = store.watch("", 0).await.unwrap();
        assert_eq!(store.inner.commits.receiver_count(), 1);
        drop(watch);
        until_no_watch_task(&store).await;
        assert_eq!(store.put("k", b"v".to_vec()).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_watch_dropped_while_its_task_is_blocked_sending_ends_it() {
        let store = MemoryStore::new();
        let watch = store.watch("", 0).await.unwrap();
        // More than the watch buffer: the task waits on a full channel.
        for i in 0..(watch::WATCH_BUFFER as u64 + 10) {
            store.put("k", i.to_string().into_bytes()).await.unwrap();
        }
        tokio::task::yield_now().await;
        drop(watch);
        until_no_watch_task(&store).await;
    }

    #[tokio::test]
    async fn history_keeps_only_the_last_revisions() {
        let store = MemoryStore::with_history(3);
        for i in 0..10u8 {
            store.put("k", vec![i]).await.unwrap();
        }
        let state = store.inner.lock();
        let kept: Vec<Revision> = state.log.iter().map(|c| c.revision).collect();
        assert_eq!(kept, [8, 9, 10]);
        assert_eq!(state.compacted, 7);
    }
}
