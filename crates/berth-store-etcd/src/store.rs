//! [`EtcdStore`]: [`Store`] on etcd. Reads are etcd ranges, every write is one etcd
//! transaction, revisions are etcd's.
//!
//! A batch becomes one transaction: a compare for each op's [`Expect`] (`Absent` as
//! create revision 0, `ModRevision(r)` as mod revision `r` of an existing key), then the
//! puts and deletes; when a compare fails, the other branch reads the expected keys in
//! the same transaction, and the first op whose expectation does not hold is the
//! [`StoreError::Conflict`]. etcd refuses a transaction that writes one key twice, so
//! ops on the same key collapse into the last one, in its place: the values after the
//! batch are the same, but such a batch reports one event for that key (and a key
//! deleted and put again keeps its create revision).
//!
//! What it does not do: retry. A request etcd does not answer within
//! [`EtcdConfig::request_timeout`] fails with [`StoreError::Backend`], and so does a
//! batch larger than etcd allows (`--max-txn-ops`, default 128, and
//! `--max-request-bytes`, default 1.5 MiB).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_store::{Entry, Expect, Op, Result, Revision, Store, StoreError, Watch};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::watch as signal;

use crate::config::{EtcdConfig, MAX_MESSAGE_BYTES};
use crate::connection::{backend, header_revision, to_etcd, Inner};
use crate::keys::Namespace;

/// A berth store on etcd. Clones share one connection; watches end when the last clone
/// is dropped.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.inner.ns)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects and reads the revision once; fails when etcd does not answer.
    pub async fn connect(config: &EtcdConfig) -> Result<EtcdStore> {
        config.validate().map_err(StoreError::Backend)?;
        let client = config
            .client()
            .await
            .map_err(|e| backend("connecting", e))?;
        let store = EtcdStore::with_client(client, config);
        store.revision().await?;
        Ok(store)
    }

    /// [`EtcdStore::connect`], retried every half second while etcd does not answer,
    /// logging that it waits (at once, then every 10 s). A bad configuration fails at
    /// once.
    pub async fn connect_when_ready(config: &EtcdConfig) -> Result<EtcdStore> {
        config.validate().map_err(StoreError::Backend)?;
        let started = Instant::now();
        let mut last_log: Option<Instant> = None;
        loop {
            match EtcdStore::connect(config).await {
                Ok(store) => {
                    if last_log.is_some() {
                        tracing::info!(
                            endpoints = ?config.endpoints,
                            waited = ?started.elapsed(),
                            "etcd answers"
                        );
                    }
                    return Ok(store);
                }
                Err(e) => {
                    if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            endpoints = ?config.endpoints,
                            error = %e,
                            "waiting for etcd to answer"
                        );
                        last_log = Some(Instant::now());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A store on an existing client.
    pub fn with_client(client: Client, config: &EtcdConfig) -> EtcdStore {
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let watch = client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        EtcdStore {
            inner: Arc::new(Inner {
                client,
                kv,
                watch,
                ns: Namespace::new(config.store_prefix()),
                timeout: config.request_timeout,
                alive: signal::channel(()).0,
            }),
        }
    }

    /// The etcd client this store talks through (the election shares it).
    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// Compacts etcd's history (of every key, not only this store's) before
    /// `revision`: watches from before it fail with [`StoreError::Compacted`].
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.inner.kv.clone();
        self.inner
            .timed("compact", kv.compact(to_etcd(revision)?, None))
            .await?;
        Ok(())
    }
}

/// The key an op writes and its expectation.
fn op_key(op: &Op) -> (&str, Option<&Expect>) {
    match op {
        Op::Put { key, expect, .. } | Op::Delete { key, expect } => (key, expect.as_ref()),
    }
}

/// The compares that make `expect` hold for `key` (in etcd).
fn compares(key: Vec<u8>, expect: &Expect) -> Result<Vec<Compare>> {
    Ok(match expect {
        Expect::Absent => vec![Compare::create_revision(key, CompareOp::Equal, 0)],
        Expect::ModRevision(r) => vec![
            Compare::create_revision(key.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(key, CompareOp::Equal, to_etcd(*r)?),
        ],
    })
}

/// The conflict the first op whose expectation does not hold against `actual` (mod
/// revisions of the expected keys, read in the failed transaction) makes.
fn first_conflict(ops: &[Op], actual: &HashMap<&str, Option<Revision>>) -> Option<StoreError> {
    ops.iter().find_map(|op| {
        let (key, expect) = op_key(op);
        let expect = expect?;
        let actual = actual.get(key).copied().flatten();
        let holds = match (expect, actual) {
            (Expect::Absent, None) => true,
            (Expect::ModRevision(want), Some(have)) => *want == have,
            _ => false,
        };
        (!holds).then(|| StoreError::Conflict {
            key: key.to_string(),
            expected: expect.clone(),
            actual,
        })
    })
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let mut kv = self.inner.kv.clone();
        let resp = self
            .inner
            .timed("get", kv.get(self.inner.ns.etcd_key(key), None))
            .await?;
        Ok(resp.kvs().first().and_then(|kv| self.inner.entry(kv)))
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let mut kv = self.inner.kv.clone();
        let resp = self
            .inner
            .timed("delete", kv.delete(self.inner.ns.etcd_key(key), None))
            .await?;
        if resp.deleted() == 0 {
            return Ok(None);
        }
        header_revision(resp.header()).map(Some)
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<Revision> {
        if ops.is_empty() {
            return self.revision().await;
        }
        let ns = &self.inner.ns;
        let mut when = Vec::new();
        let mut expected_keys: Vec<&str> = Vec::new();
        for op in &ops {
            if let (key, Some(expect)) = op_key(op) {
                when.extend(compares(ns.etcd_key(key), expect)?);
                if !expected_keys.contains(&key) {
                    expected_keys.push(key);
                }
            }
        }
        // The last op on each key, in op order.
        let mut seen = HashSet::new();
        let mut writes: Vec<TxnOp> = ops
            .iter()
            .rev()
            .filter(|op| seen.insert(op_key(op).0))
            .map(|op| match op {
                Op::Put { key, value, .. } => TxnOp::put(ns.etcd_key(key), value.clone(), None),
                Op::Delete { key, .. } => TxnOp::delete(ns.etcd_key(key), None),
            })
            .collect();
        writes.reverse();
        let reads: Vec<TxnOp> = expected_keys
            .iter()
            .map(|key| TxnOp::get(ns.etcd_key(key), Some(GetOptions::new().with_keys_only())))
            .collect();
        let txn = Txn::new().when(when).and_then(writes).or_else(reads);
        let mut kv = self.inner.kv.clone();
        let resp = self.inner.timed("batch", kv.txn(txn)).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        let mut actual = HashMap::new();
        for (key, read) in expected_keys.iter().zip(resp.op_responses()) {
            let TxnOpResponse::Get(get) = read else {
                return Err(StoreError::Backend(
                    "etcd answered a read of the failed batch with another kind of op".into(),
                ));
            };
            actual.insert(
                *key,
                get.kvs().first().map(|kv| kv.mod_revision() as Revision),
            );
        }
        Err(first_conflict(&ops, &actual).unwrap_or_else(|| {
            StoreError::Backend(
                "etcd refused the batch's compares, but every expectation holds".into(),
            )
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        Ok(self.list_with_revision(prefix).await?.0)
    }

    async fn revision(&self) -> Result<Revision> {
        let mut kv = self.inner.kv.clone();
        let resp = self
            .inner
            .timed(
                "revision",
                kv.get(
                    self.inner.ns.etcd_key(""),
                    Some(GetOptions::new().with_count_only()),
                ),
            )
            .await?;
        header_revision(resp.header())
    }

    async fn list_with_revision(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let mut kv = self.inner.kv.clone();
        let resp = self
            .inner
            .timed(
                "list",
                kv.get(
                    self.inner.ns.etcd_key(prefix),
                    Some(GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        let revision = header_revision(resp.header())?;
        let entries = resp
            .kvs()
            .iter()
            .filter_map(|kv| self.inner.entry(kv))
            .collect();
        Ok((entries, revision))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        crate::watch::start(&self.inner, prefix, after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, expect: Option<Expect>) -> Op {
        Op::Put {
            key: key.into(),
            value: vec![],
            expect,
        }
    }

    #[test]
    fn the_first_failing_op_is_the_conflict() {
        let ops = vec![
            put("a", Some(Expect::Absent)),
            put("b", Some(Expect::ModRevision(3))),
            put("c", Some(Expect::Absent)),
        ];
        let actual = HashMap::from([("a", None), ("b", Some(4)), ("c", Some(1))]);
        match first_conflict(&ops, &actual) {
            Some(StoreError::Conflict {
                key,
                expected,
                actual,
            }) => {
                assert_eq!(key, "b");
                assert_eq!(expected, Expect::ModRevision(3));
                assert_eq!(actual, Some(4));
            }
            other => panic!("expected b's conflict, got {other:?}"),
        }
        let holds = HashMap::from([("a", None), ("b", Some(3)), ("c", None)]);
        assert!(first_conflict(&ops, &holds).is_none());
    }
}
