//! The watch fan-out shared by the backends.
//!
//! Every committed write is sent once on a broadcast channel as a [`Commit`]. Each watch
//! runs one task that subscribes to it *before* reading history, sends the history after
//! the requested revision, then forwards live commits whose revision is past what it has
//! sent (so nothing is missed and nothing repeats). When the task lags behind the
//! broadcast, or sees a revision gap, it re-reads history from the last revision it
//! forwarded. The task ends when its receiver is dropped or the store goes away; it holds
//! the store only weakly, so a forgotten watch keeps neither the store nor its file open.

use std::sync::{Arc, Weak};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use crate::{Event, Result, Revision, StoreError, Watch};

/// How many commits the broadcast holds before slow watch tasks lag and re-read history.
pub(crate) const BROADCAST_CAPACITY: usize = 256;
/// How many events a watch receiver buffers before its task waits.
pub(crate) const WATCH_BUFFER: usize = 256;

/// One committed write: its revision and its events in op order.
#[derive(Debug)]
pub(crate) struct Commit {
    pub revision: Revision,
    pub events: Vec<Event>,
}

pub(crate) type CommitSender = broadcast::Sender<Arc<Commit>>;
pub(crate) type CommitReceiver = broadcast::Receiver<Arc<Commit>>;

pub(crate) fn commit_channel() -> CommitSender {
    broadcast::channel(BROADCAST_CAPACITY).0
}

/// A backend as a watch sees it.
pub(crate) trait History: Send + Sync + 'static {
    /// A receiver of every commit from now on.
    fn subscribe(&self) -> CommitReceiver;

    /// The events under `prefix` with a revision greater than `after`, in order, and the
    /// store revision they were read at, from one consistent read. May block.
    fn read_history(&self, prefix: &str, after: Revision) -> Result<(Vec<Event>, Revision)>;
}

/// Starts a watch: fails right away with `Compacted` when history is too short.
pub(crate) async fn start<H: History>(
    history: &Arc<H>,
    prefix: &str,
    after: Revision,
) -> Result<Watch> {
    let commits = history.subscribe();
    let (events, head) = read_blocking(history.clone(), prefix.to_string(), after).await?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(forward(
        Arc::downgrade(history),
        commits,
        prefix.to_string(),
        tx,
        events,
        head.max(after),
    ));
    Ok(rx)
}

async fn read_blocking<H: History>(
    history: Arc<H>,
    prefix: String,
    after: Revision,
) -> Result<(Vec<Event>, Revision)> {
    tokio::task::spawn_blocking(move || history.read_history(&prefix, after))
        .await
        .map_err(|e| StoreError::Backend(format!("history read task failed: {e}")))?
}

/// Sends `events` in order; false when the receiver is gone.
async fn send_all(tx: &mpsc::Sender<Event>, events: impl IntoIterator<Item = Event>) -> bool {
    for event in events {
        if tx.send(event).await.is_err() {
            return false;
        }
    }
    true
}

async fn forward<H: History>(
    history: Weak<H>,
    mut commits: CommitReceiver,
    prefix: String,
    tx: mpsc::Sender<Event>,
    initial: Vec<Event>,
    // The revision up to which everything under `prefix` has been sent.
    mut sent_through: Revision,
) {
    if !send_all(&tx, initial).await {
        return;
    }
    loop {
        let received = tokio::select! {
            _ = tx.closed() => return,
            received = commits.recv() => received,
        };
        match received {
            Ok(commit) if commit.revision <= sent_through => {}
            Ok(commit) if commit.revision == sent_through + 1 => {
                sent_through = commit.revision;
                let events: Vec<Event> = commit
                    .events
                    .iter()
                    .filter(|e| e.key().starts_with(prefix.as_str()))
                    .cloned()
                    .collect();
                if !send_all(&tx, events).await {
                    return;
                }
            }
            // A gap (should not happen: commits are broadcast in order) or a lag: the
            // missed commits are in history.
            Ok(_) | Err(RecvError::Lagged(_)) => {
                let Some(store) = history.upgrade() else {
                    return;
                };
                match read_blocking(store, prefix.clone(), sent_through).await {
                    Ok((events, head)) => {
                        if !send_all(&tx, events).await {
                            return;
                        }
                        sent_through = sent_through.max(head);
                    }
                    Err(error) => {
                        tracing::warn!(%error, %prefix, sent_through, "watch ended: it fell behind the store's history");
                        return;
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}
