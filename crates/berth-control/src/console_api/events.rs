//! `GET /v1/events/stream`: Server-Sent Events fed by a watch on the whole store.
//!
//! The first event is `hello` with the store revision the stream starts after; then one
//! `change` event per written or deleted key, with `{"key", "revision", "kind"}` (`put` or
//! `delete`) as data, so a page knows which resource changed and reads it again through
//! the API. Values are not sent: the page reads them as the CLI would. When the watch
//! ends (its history compacted, the store's watch cancelled) a `resync` event says that
//! changes may have been missed and the stream continues from the store's current
//! revision. Comments keep idle connections alive every 15 s. Writes under `/iam/` (users,
//! roles, access keys) and `/secrets/` are not reported.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use berth_store::{DynStore, Event as StoreEvent};
use futures::Stream;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::db::Db;

/// How long the stream waits before watching again after its watch ended.
const REWATCH_DELAY: Duration = Duration::from_millis(200);
/// How many events may wait for a slow client before the forwarder waits for it.
const BUFFER: usize = 256;

/// What a `change` event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    pub revision: u64,
    pub kind: &'static str,
}

impl Change {
    pub fn of(e: &StoreEvent) -> Self {
        Change {
            key: e.key().to_string(),
            revision: e.revision(),
            kind: match e {
                StoreEvent::Put(_) => "put",
                StoreEvent::Delete { .. } => "delete",
            },
        }
    }
}

/// What the forwarder hands the response stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Hello { revision: u64 },
    Change(Change),
    Resync { revision: u64 },
}

impl StreamItem {
    fn event(&self) -> Event {
        match self {
            StreamItem::Hello { revision } => Event::default()
                .event("hello")
                .data(serde_json::json!({ "revision": revision }).to_string()),
            StreamItem::Change(c) => Event::default()
                .event("change")
                .id(c.revision.to_string())
                .data(serde_json::to_string(c).unwrap_or_default()),
            StreamItem::Resync { revision } => Event::default()
                .event("resync")
                .data(serde_json::json!({ "revision": revision }).to_string()),
        }
    }
}

/// Watches `store` from its current revision and sends every change to `tx` until the
/// receiver is dropped or `stop` turns true (the server is shutting down: an open
/// stream would hold its graceful shutdown forever).
pub async fn forward(
    store: DynStore,
    tx: mpsc::Sender<StreamItem>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = forward_changes(store, tx) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Keys the stream does not report: IAM's users, roles and access keys, and secrets
/// (their names and key ids are IAM's and Secrets Manager's to show, and the stream
/// needs only ECS read actions).
fn is_private(key: &str) -> bool {
    key.starts_with("/iam/") || key.starts_with("/secrets/")
}

async fn forward_changes(store: DynStore, tx: mpsc::Sender<StreamItem>) {
    let mut rev = store.revision().await.unwrap_or(0);
    if tx.send(StreamItem::Hello { revision: rev }).await.is_err() {
        return;
    }
    loop {
        match store.watch("/", rev).await {
            Ok(mut w) => loop {
                tokio::select! {
                    ev = w.recv() => match ev {
                        Some(ev) => {
                            rev = ev.revision();
                            if is_private(ev.key()) {
                                continue;
                            }
                            if tx.send(StreamItem::Change(Change::of(&ev))).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    _ = tx.closed() => return,
                }
            },
            Err(e) => tracing::debug!(error = %e, "event stream: watch failed; resyncing"),
        }
        tokio::time::sleep(REWATCH_DELAY).await;
        rev = store.revision().await.unwrap_or(rev);
        if tx.send(StreamItem::Resync { revision: rev }).await.is_err() {
            return;
        }
    }
}

/// The response stream of items from a forwarder.
fn events(rx: mpsc::Receiver<StreamItem>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((Ok(item.event()), rx))
    })
}

/// What the stream's handler needs.
#[derive(Clone)]
struct StreamState {
    store: DynStore,
    stop: watch::Receiver<bool>,
}

async fn stream(State(s): State<StreamState>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(forward(s.store.clone(), tx, s.stop.clone()));
    Sse::new(events(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `GET /v1/events/stream`; every open stream ends when `stop` turns true.
pub fn routes(db: &Db, stop: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/v1/events/stream", get(stream))
        .with_state(StreamState {
            store: db.store.clone(),
            stop,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_says_hello_then_each_change_in_order_but_iams_and_secrets() {
        let store: DynStore = std::sync::Arc::new(berth_store::MemoryStore::new());
        store.put("/clusters/a", b"{}".to_vec()).await.unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(forward(store.clone(), tx, stop));
        let hello = rx.recv().await.unwrap();
        assert_eq!(hello, StreamItem::Hello { revision: 1 });
        store
            .put("/iam/accesskeys/AKIAEXAMPLE", b"{}".to_vec())
            .await
            .unwrap();
        store.put("/secrets/db", b"{}".to_vec()).await.unwrap();
        store
            .put("/services/default/web", b"{}".to_vec())
            .await
            .unwrap();
        store.delete("/clusters/a").await.unwrap();
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            first,
            StreamItem::Change(Change {
                key: "/services/default/web".into(),
                revision: 4,
                kind: "put"
            })
        );
        assert_eq!(
            second,
            StreamItem::Change(Change {
                key: "/clusters/a".into(),
                revision: 5,
                kind: "delete"
            })
        );
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the forwarder ends when its client goes")
            .unwrap();
    }

    #[tokio::test]
    async fn a_stream_ends_when_the_server_stops() {
        let store: DynStore = std::sync::Arc::new(berth_store::MemoryStore::new());
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(forward(store, tx, stop));
        assert!(matches!(rx.recv().await, Some(StreamItem::Hello { .. })));
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the forwarder ends when the server stops")
            .unwrap();
        assert_eq!(rx.recv().await, None, "the stream ends");
    }

    #[test]
    fn a_change_event_carries_key_revision_and_kind() {
        let c = Change {
            key: "/tasks/default/abc".into(),
            revision: 7,
            kind: "put",
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"key":"/tasks/default/abc","revision":7,"kind":"put"}"#
        );
    }
}
