//! The server's side of the data plane's discovery DNS: [`RemoteDiscovery`], control's
//! `Discovery` served by `berth dataplane` over its socket, the way
//! [`super::client::RemoteDataPlane`] serves control's `DataPlane`.
//!
//! `publish` only stores the records as the latest; one background task sends the
//! latest to `PUT /v1/discovery-records`, so records reach the data plane in the order
//! they were built and a newer set overtakes an older one not yet sent. While the data
//! plane is unreachable the latest records are retried every [`RETRY_EVERY`] (logged
//! once per outage); a data plane that does not know the route (an older berth, which
//! the server replaces at start) is logged and not retried until newer records come.
//!
//! What it does not do: build records (the control plane does), answer queries (the
//! data plane does), or notice a data plane that restarted between two publishes with
//! the same records (it answers nothing until the next change).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_control::Discovery;
use berth_model::discovery::DiscoveryRecords;
use hyper::{Method, StatusCode};
use tokio::sync::watch;

use super::dns::RECORDS_ROUTE;
use super::protocol::{self, CallError};

/// Between attempts to reach an unreachable data plane.
const RETRY_EVERY: Duration = Duration::from_millis(200);
/// A request's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The records the control plane publishes, sent to the data plane on `socket`.
pub struct RemoteDiscovery {
    latest: watch::Sender<Option<Arc<DiscoveryRecords>>>,
}

/// How a delivery of records ended.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Answered,
    /// The data plane does not know the route: retrying will not help.
    Refused,
    /// Why not: no answer.
    Unreachable(String),
}

impl RemoteDiscovery {
    /// A client of the data plane on `socket`, its sending task started (it ends when
    /// the client is dropped).
    pub fn start(socket: &Path) -> Arc<RemoteDiscovery> {
        let (latest, rx) = watch::channel(None);
        tokio::spawn(send_latest(socket.to_path_buf(), rx));
        Arc::new(RemoteDiscovery { latest })
    }
}

impl Discovery for RemoteDiscovery {
    fn publish(&self, records: DiscoveryRecords) {
        self.latest.send_replace(Some(Arc::new(records)));
    }
}

/// Sends each newest set of records until the client is dropped.
async fn send_latest(socket: PathBuf, mut latest: watch::Receiver<Option<Arc<DiscoveryRecords>>>) {
    let mut unreachable_since: Option<tokio::time::Instant> = None;
    while latest.changed().await.is_ok() {
        loop {
            let Some(records) = latest.borrow_and_update().clone() else {
                break;
            };
            match deliver(&socket, &records).await {
                Delivery::Answered | Delivery::Refused => {
                    if let Some(since) = unreachable_since.take() {
                        tracing::info!(
                            after = ?since.elapsed(),
                            "the data plane has the discovery records again"
                        );
                    }
                    break;
                }
                Delivery::Unreachable(why) => {
                    if unreachable_since.is_none() {
                        tracing::warn!(
                            error = %why,
                            "sending the discovery records; retrying (the data plane answers the last ones it has)"
                        );
                        unreachable_since = Some(tokio::time::Instant::now());
                    }
                    // A newer set replaces this one; either way, try again.
                    tokio::select! {
                        changed = latest.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                        _ = tokio::time::sleep(RETRY_EVERY) => {}
                    }
                }
            }
        }
    }
}

/// One `PUT` of `records`.
async fn deliver(socket: &Path, records: &DiscoveryRecords) -> Delivery {
    let body = match serde_json::to_vec(records) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "encoding the discovery records");
            return Delivery::Refused;
        }
    };
    match protocol::call(
        socket,
        Method::PUT,
        RECORDS_ROUTE,
        Some(body),
        REQUEST_TIMEOUT,
    )
    .await
    {
        Ok((status, _)) if status.is_success() => {
            tracing::debug!(
                names = records.names.len(),
                "discovery records sent to the data plane"
            );
            Delivery::Answered
        }
        Ok((StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _)) => {
            tracing::warn!(
                "the data plane does not serve the discovery DNS (a berth older than this server); names do not resolve until the server starts a new one"
            );
            Delivery::Refused
        }
        Ok((status, body)) => {
            tracing::warn!(
                error = %CallError::Status { status, body: String::from_utf8_lossy(&body).into_owned() },
                "the data plane refused the discovery records; the previous ones keep answering"
            );
            Delivery::Refused
        }
        Err(e) => Delivery::Unreachable(e.to_string()),
    }
}

#[cfg(test)]
#[path = "discovery_client_tests.rs"]
mod tests;
