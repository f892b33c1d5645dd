//! The server's side of the data plane process: [`RemoteDataPlane`], control's
//! `DataPlane` served by `berth dataplane` over its socket.
//!
//! - `apply` is a request; while the data plane is briefly unreachable (restarting,
//!   replaced) it is retried for [`APPLY_PATIENCE`], then answered as a refusal naming
//!   no load balancer, which the proxy feed logs and retries on its next pass.
//! - `target_statuses` answers a cache that a background task keeps fresh: a long poll
//!   returning on every status change and at least every second (request counts grow
//!   without a change notice); `subscribe` is bumped whenever the generation moves.
//! - The proxy's metric families are fetched every second, and on each scrape of the
//!   server's `/metrics` ([`MetricsBridge::refresh`]), into a collector registered in
//!   the server's registry ([`super::metric_families::BridgedFamilies`]).
//! - `check_certificates` runs here: same machine, same files.
//!
//! What it does not do: start the data plane (see `launch`), or ever end the server:
//! an unreachable data plane is logged once per outage and polled again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use berth_control::data_plane::BoundAddresses;
use berth_control::DataPlane;
use berth_model::dataplane::{CertificateRefusal, ConfigRefusal, ProxyConfig, TargetStatus};
use berth_model::elb::Listener;
use hyper::{Method, StatusCode};
use tokio::sync::watch;

use super::metric_families::{BridgedFamilies, Family};
use super::protocol::{self, Applied, ErrorBody, Statuses};

/// How long an apply keeps retrying an unreachable data plane.
pub const APPLY_PATIENCE: Duration = Duration::from_secs(10);
/// How long a status long poll waits for a change before answering anyway.
const STATUS_POLL: Duration = Duration::from_secs(1);
/// How often the metric families are fetched.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// Between attempts to reach an unreachable data plane.
const RETRY_EVERY: Duration = Duration::from_millis(200);
/// A request's bound (the long poll adds its wait).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RemoteDataPlane {
    socket: PathBuf,
    /// How long an apply keeps retrying an unreachable data plane.
    apply_patience: Duration,
    cache: RwLock<Cache>,
    changes: watch::Sender<u64>,
    metrics: MetricsBridge,
}

/// The data plane's metric families in the server's registry.
#[derive(Clone)]
pub struct MetricsBridge {
    socket: PathBuf,
    bridged: BridgedFamilies,
}

impl MetricsBridge {
    /// Fetches the families now (a scrape of `/metrics` sees them as they are); on
    /// failure the last ones fetched stay.
    pub async fn refresh(&self) {
        let answer: Result<Vec<Family>, _> = protocol::call_json(
            &self.socket,
            Method::GET,
            "/v1/metrics",
            None,
            REQUEST_TIMEOUT,
        )
        .await;
        if let Ok(families) = answer {
            self.bridged.set(&families);
        }
    }
}

struct Cache {
    /// The data plane's generation of `statuses` (None before the first answer).
    generation: Option<u64>,
    statuses: Vec<TargetStatus>,
}

impl RemoteDataPlane {
    /// A client of the data plane on `socket`, its statuses read once before it returns
    /// (so the first health pull sees what the data plane kept), and its background
    /// tasks started: statuses followed, metric families bridged into `registry`.
    pub async fn connect(
        socket: &Path,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Arc<RemoteDataPlane>> {
        Self::connect_with_patience(socket, registry, APPLY_PATIENCE).await
    }

    async fn connect_with_patience(
        socket: &Path,
        registry: &prometheus::Registry,
        apply_patience: Duration,
    ) -> anyhow::Result<Arc<RemoteDataPlane>> {
        let bridged = BridgedFamilies::default();
        if let Err(e) = registry.register(Box::new(bridged.clone())) {
            tracing::warn!(error = %e, "the data plane's metrics are not in this registry");
        }
        let metrics = MetricsBridge {
            socket: socket.to_path_buf(),
            bridged,
        };
        let dp = Arc::new(RemoteDataPlane {
            socket: socket.to_path_buf(),
            apply_patience,
            metrics: metrics.clone(),
            cache: RwLock::new(Cache {
                generation: None,
                statuses: Vec::new(),
            }),
            changes: watch::Sender::new(0),
        });
        let first: Statuses =
            protocol::call_json(socket, Method::GET, "/v1/statuses", None, REQUEST_TIMEOUT).await?;
        dp.take(first);
        metrics.refresh().await;
        tokio::spawn(follow_statuses(Arc::downgrade(&dp)));
        tokio::spawn(follow_metrics(metrics));
        Ok(dp)
    }

    /// Takes `answer` into the cache; bumps the change counter when its generation moved.
    fn take(&self, answer: Statuses) {
        let mut cache = self.cache.write().expect("status cache lock");
        let moved = cache.generation != Some(answer.generation);
        cache.generation = Some(answer.generation);
        cache.statuses = answer.statuses;
        drop(cache);
        if moved {
            self.changes.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// The data plane's metric families as the server's registry shows them.
    pub fn metrics(&self) -> MetricsBridge {
        self.metrics.clone()
    }

    fn generation(&self) -> Option<u64> {
        self.cache.read().expect("status cache lock").generation
    }
}

/// Follows the data plane's statuses until the client is dropped.
async fn follow_statuses(dp: std::sync::Weak<RemoteDataPlane>) {
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let Some(client) = dp.upgrade() else { return };
        let path = match client.generation() {
            Some(g) => format!("/v1/statuses?after={g}&waitMs={}", STATUS_POLL.as_millis()),
            None => "/v1/statuses".to_string(),
        };
        let socket = client.socket.clone();
        // Not held across the wait: dropping the last client ends the loop.
        drop(client);
        let answer: Result<Statuses, _> = protocol::call_json(
            &socket,
            Method::GET,
            &path,
            None,
            REQUEST_TIMEOUT + STATUS_POLL,
        )
        .await;
        let Some(client) = dp.upgrade() else { return };
        match answer {
            Ok(s) => {
                if let Some(since) = unreachable_since.take() {
                    tracing::info!(
                        after = ?since.elapsed(),
                        "the data plane answers again"
                    );
                }
                client.take(s);
            }
            Err(e) => {
                if unreachable_since.is_none() {
                    tracing::warn!(error = %e, "reading target statuses; the last ones known stand");
                    unreachable_since = Some(Instant::now());
                }
                drop(client);
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

/// Fetches the data plane's metric families every second, for as long as the server
/// runs.
async fn follow_metrics(metrics: MetricsBridge) {
    loop {
        tokio::time::sleep(METRICS_EVERY).await;
        metrics.refresh().await;
    }
}

/// The refusal an unreachable or confused data plane gets reported as.
fn refusal(reason: String) -> ConfigRefusal {
    ConfigRefusal {
        load_balancer_name: None,
        mesh_listener_port: None,
        reason,
    }
}

#[async_trait]
impl DataPlane for RemoteDataPlane {
    async fn apply(&self, config: ProxyConfig) -> Result<BoundAddresses, ConfigRefusal> {
        let body = serde_json::to_vec(&config)
            .map_err(|e| refusal(format!("encoding the configuration: {e}")))?;
        let deadline = Instant::now() + self.apply_patience;
        let (status, answer) = loop {
            match protocol::call(
                &self.socket,
                Method::PUT,
                "/v1/config",
                Some(body.clone()),
                REQUEST_TIMEOUT,
            )
            .await
            {
                Ok(a) => break a,
                Err(e) if Instant::now() >= deadline => return Err(refusal(e.to_string())),
                Err(_) => tokio::time::sleep(RETRY_EVERY).await,
            }
        };
        match status {
            StatusCode::OK => {
                let applied: Applied = serde_json::from_slice(&answer)
                    .map_err(|e| refusal(format!("the data plane's answer does not parse: {e}")))?;
                if let Some(s) = applied.statuses {
                    self.take(s);
                }
                Ok(applied.bound)
            }
            StatusCode::CONFLICT => Err(serde_json::from_slice(&answer).unwrap_or_else(|e| {
                refusal(format!("the data plane's refusal does not parse: {e}"))
            })),
            other => {
                let why = serde_json::from_slice::<ErrorBody>(&answer)
                    .map(|b| b.error)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&answer).into_owned());
                Err(refusal(format!("the data plane answered {other}: {why}")))
            }
        }
    }

    fn target_statuses(&self) -> Vec<TargetStatus> {
        self.cache
            .read()
            .expect("status cache lock")
            .statuses
            .clone()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn check_certificates(&self, listener: &Listener) -> Result<(), CertificateRefusal> {
        berth_proxy::check_certificates(listener)
            .map_err(|e| e.certificate_refusal(&listener.listener_arn))
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
