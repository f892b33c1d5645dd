//! Store watches on etcd watches.
//!
//! A watch after revision `r` is an etcd watch of the store's key prefix from `r + 1`.
//! Before opening it, a count-only range at `r + 1` tells whether etcd still has that
//! revision; when it was compacted, the watch's compaction notice says where history
//! starts now, and the caller gets [`StoreError::Compacted`]. One task per watch forwards
//! etcd's events (a transaction's in op order) and ends the watch when etcd cancels it
//! (compaction overtook a slow watcher), the stream breaks (etcd went away), the
//! receiver is dropped, or the last store handle is.
//!
//! What it does not do: resume a broken etcd watch by itself; the caller watches again
//! from the last revision it saw, as the `Store` contract asks.

use std::time::Duration;

use berth_store::{Event, Result, Revision, StoreError, Watch};
use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::mpsc;

use crate::connection::{backend, to_etcd, Inner};

/// How many events a watch receiver buffers before its task waits (and etcd holds the
/// rest).
const WATCH_BUFFER: usize = 256;

/// How long etcd may take to confirm a new watch, or to say it was compacted (it checks
/// unsynced watchers every 100 ms).
const WATCH_SETUP: Duration = Duration::from_secs(10);

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision has been compacted"))
}

fn is_future(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision is a future revision"))
}

pub(crate) async fn start(inner: &Inner, prefix: &str, after: Revision) -> Result<Watch> {
    let key = inner.ns.etcd_key(prefix);
    let start = to_etcd(after + 1)?;
    let mut kv = inner.kv.clone();
    let probe = GetOptions::new()
        .with_prefix()
        .with_revision(start)
        .with_count_only();
    let compacted = match inner
        .timed("watch", async {
            Ok(kv.get(key.clone(), Some(probe)).await)
        })
        .await?
    {
        Ok(_) => false,
        Err(e) if is_compacted(&e) => true,
        Err(e) if is_future(&e) => false,
        Err(e) => return Err(backend("watch", e)),
    };

    let mut client = inner.watch.clone();
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = inner
        .timed("watch", client.watch(key, Some(options)))
        .await?;
    let created = next_message(&mut stream).await?;
    if !created.created() {
        return Err(StoreError::Backend(
            "etcd answered a new watch with something else than its creation".into(),
        ));
    }
    let compact_revision = if created.compact_revision() > 0 {
        Some(created.compact_revision())
    } else if compacted || created.canceled() {
        let notice = next_message(&mut stream).await?;
        (notice.compact_revision() > 0).then_some(notice.compact_revision())
    } else {
        None
    };
    if let Some(oldest) = compact_revision {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: oldest as Revision,
        });
    }
    if created.canceled() {
        return Err(StoreError::Backend(format!(
            "etcd canceled the watch: {}",
            created.cancel_reason()
        )));
    }

    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let ns = inner.ns.clone();
    let mut alive = inner.alive.subscribe();
    tokio::spawn(async move {
        loop {
            let response = tokio::select! {
                _ = alive.changed() => return,
                _ = tx.closed() => return,
                response = stream.message() => response,
            };
            let response = match response {
                Ok(Some(response)) => response,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "etcd watch broke");
                    return;
                }
            };
            if response.canceled() || response.compact_revision() > 0 {
                return;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = ns.store_key(kv.key()) else {
                    continue;
                };
                let event = match event.event_type() {
                    EventType::Put => Event::Put(berth_store::Entry {
                        key,
                        value: kv.value().to_vec(),
                        create_revision: kv.create_revision() as Revision,
                        mod_revision: kv.mod_revision() as Revision,
                    }),
                    EventType::Delete => Event::Delete {
                        key,
                        mod_revision: kv.mod_revision() as Revision,
                    },
                };
                tokio::select! {
                    _ = alive.changed() => return,
                    sent = tx.send(event) => if sent.is_err() { return },
                }
            }
        }
    });
    Ok(rx)
}

/// The next message of a watch being set up.
async fn next_message(stream: &mut WatchStream) -> Result<WatchResponse> {
    match tokio::time::timeout(WATCH_SETUP, stream.message()).await {
        Ok(Ok(Some(response))) => Ok(response),
        Ok(Ok(None)) => Err(StoreError::Backend(
            "etcd closed a watch while setting it up".into(),
        )),
        Ok(Err(e)) => Err(backend("watch", e)),
        Err(_) => Err(StoreError::Backend(format!(
            "etcd did not confirm a watch within {WATCH_SETUP:?}"
        ))),
    }
}
