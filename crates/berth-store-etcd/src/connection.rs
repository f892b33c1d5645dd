//! The connection every [`crate::store::EtcdStore`] handle and its watches share, and the
//! small translations between etcd's answers and the store's: errors, response
//! revisions, entries. Its own module so the store and its watches use it without
//! importing each other.

use std::future::Future;
use std::time::Duration;

use berth_store::{Entry, Result, Revision, StoreError};
use etcd_client::{Client, KeyValue, KvClient, ResponseHeader, WatchClient};
use tokio::sync::watch as signal;

use crate::keys::Namespace;

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) kv: KvClient,
    pub(crate) watch: WatchClient,
    pub(crate) ns: Namespace,
    pub(crate) timeout: Duration,
    /// Dropped with the last store handle, which ends every watch.
    pub(crate) alive: signal::Sender<()>,
}

impl Inner {
    /// Runs one etcd request within the request timeout.
    pub(crate) async fn timed<T>(
        &self,
        what: &str,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(what, e)),
            Err(_) => Err(StoreError::Backend(format!(
                "etcd did not answer {what} within {:?}",
                self.timeout
            ))),
        }
    }

    pub(crate) fn entry(&self, kv: &KeyValue) -> Option<Entry> {
        Some(Entry {
            key: self.ns.store_key(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: kv.create_revision() as Revision,
            mod_revision: kv.mod_revision() as Revision,
        })
    }
}

pub(crate) fn backend(what: &str, e: etcd_client::Error) -> StoreError {
    let message = e.to_string();
    let hint = if message.contains("too many operations in txn request") {
        " (the batch has more ops than etcd's --max-txn-ops allows; raise it)"
    } else if message.contains("request is too large") {
        " (the batch is larger than etcd's --max-request-bytes allows; raise it)"
    } else {
        ""
    };
    StoreError::Backend(format!("etcd {what}: {message}{hint}"))
}

pub(crate) fn header_revision(header: Option<&ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision() as Revision)
        .ok_or_else(|| StoreError::Backend("etcd answered without a response header".into()))
}

pub(crate) fn to_etcd(revision: Revision) -> Result<i64> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Backend(format!("revision {revision} is beyond etcd's range")))
}
