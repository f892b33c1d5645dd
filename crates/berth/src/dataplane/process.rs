//! `berth dataplane`: the node's proxy in a long-lived process of its own, answering the
//! server on `<data-dir>/dataplane.sock` ([`super::protocol`]).
//!
//! It holds an exclusive lock on `<data-dir>/dataplane.lock` for as long as it runs (the
//! kernel drops it when the process dies, however it dies, so a leftover pid file or
//! socket is known stale when the lock is free), writes its pid to
//! `<data-dir>/dataplane.pid`, binds the mesh inbound listener and the discovery DNS
//! ([`super::dns`]), and serves the socket
//! (0600) until SIGTERM, SIGINT or a stop request; then it closes the listeners, lets
//! in-flight requests finish (bounded, as `Proxy::shutdown` does), removes its pid file
//! and socket, and exits. SIGHUP is ignored: a closed terminal does not stop it.
//!
//! What it does not do: decide what to serve (the server applies configurations), or
//! watch the server: it serves its last configuration for as long as it runs.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use berth_control::DataPlane;
use berth_model::dataplane::ProxyConfig;
use berth_proxy::{Proxy, ProxyOptions};
use tokio::sync::watch;

use super::metric_families::from_prometheus;
use super::protocol::{Applied, ErrorBody, Identity, Statuses, PROTOCOL_VERSION};
use super::{DataPlaneOptions, DataPlanePaths};
use crate::data_plane::ProxyDataPlane;

/// The longest a status long-poll waits.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// The largest configuration accepted (the mesh's certificates travel in it).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct DataPlaneArgs {
    /// The data dir whose node this data plane serves (its socket, pid file and log live
    /// there).
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub options: DataPlaneOptions,
}

/// An exclusive `flock` on a data dir's lock file, held while the file stays open.
pub struct DataPlaneLock {
    _file: std::fs::File,
}

impl DataPlaneLock {
    /// Takes the lock, or answers `None` when another process holds it.
    pub fn try_take(path: &Path) -> Result<Option<DataPlaneLock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        match rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(Some(DataPlaneLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

struct Shared {
    data_plane: ProxyDataPlane,
    registry: prometheus::Registry,
    identity: Identity,
    stop: watch::Sender<bool>,
}

/// Runs the data plane until it is told to stop.
pub async fn run(args: DataPlaneArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let paths = DataPlanePaths::of(&args.data_dir);
    let Some(_lock) = DataPlaneLock::try_take(&paths.lock)? else {
        let pid = std::fs::read_to_string(&paths.pid).unwrap_or_default();
        bail!(
            "a data plane already runs for {} (pid {})",
            args.data_dir.display(),
            pid.trim()
        );
    };
    let registry = prometheus::Registry::new();
    let proxy = Proxy::new(ProxyOptions {
        bind_ip: args.options.listen_ip,
        mesh_ips: args.options.mesh_ips.clone(),
        registry: registry.clone(),
    });
    let inbound = args.options.mesh_inbound_addr;
    let mesh_inbound = proxy.bind_mesh_inbound(inbound).await.with_context(|| {
        format!("binding the mesh inbound listener (--mesh-inbound-addr {inbound})")
    })?;
    let (dns, dns_addrs) = super::dns::serve(&args.options, &registry).await?;
    let _ = std::fs::remove_file(&paths.socket);
    let socket = tokio::net::UnixListener::bind(&paths.socket)
        .with_context(|| format!("binding {}", paths.socket.display()))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", paths.socket.display()))?;
    let pid = std::process::id();
    std::fs::write(&paths.pid, pid.to_string())
        .with_context(|| format!("writing {}", paths.pid.display()))?;
    tracing::info!(
        pid,
        socket = %paths.socket.display(),
        mesh_inbound = %mesh_inbound,
        "data plane serving"
    );
    let (stop, mut stopped) = watch::channel(false);
    let shared = Arc::new(Shared {
        data_plane: ProxyDataPlane {
            proxy: proxy.clone(),
        },
        registry,
        identity: Identity {
            protocol: PROTOCOL_VERSION,
            pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            options: args.options.clone(),
            mesh_inbound,
            dns_addrs,
        },
        stop: stop.clone(),
    });
    let routes = router(shared).merge(super::dns::routes(dns.clone()));
    let serving = tokio::spawn(async move {
        axum::serve(socket, routes)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    let why = wait_for_stop(stop.subscribe()).await;
    tracing::info!("data plane stopping ({why}): closing listeners, draining connections");
    let _ = stop.send(true);
    proxy.shutdown().await;
    dns.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), serving).await;
    remove_if_ours(&paths, pid);
    tracing::info!("data plane stopped");
    Ok(())
}

/// Waits for SIGTERM, SIGINT or a stop request; SIGHUP is caught and ignored.
async fn wait_for_stop(mut requested: watch::Receiver<bool>) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => tracing::info!("SIGHUP ignored: the data plane keeps serving"),
            _ = requested.wait_for(|s| *s) => return "asked to stop",
        }
    }
}

/// Removes the pid file and the socket, unless another data plane wrote them since.
fn remove_if_ours(paths: &DataPlanePaths, pid: u32) {
    let written = std::fs::read_to_string(&paths.pid).unwrap_or_default();
    if written.trim() == pid.to_string() {
        let _ = std::fs::remove_file(&paths.socket);
        let _ = std::fs::remove_file(&paths.pid);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/identity", get(identity))
        .route("/v1/config", put(apply))
        .route("/v1/statuses", get(statuses))
        .route("/v1/metrics", get(metrics))
        .route("/v1/stop", post(stop))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn identity(State(s): State<Arc<Shared>>) -> Json<Identity> {
    Json(s.identity.clone())
}

fn current(s: &Shared) -> Statuses {
    // The generation read first: a change racing the read shows as a newer generation
    // the next poll picks up.
    let generation = *s.data_plane.subscribe().borrow();
    Statuses {
        generation,
        statuses: s.data_plane.target_statuses(),
    }
}

async fn apply(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let config: ProxyConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody {
                    error: format!("the configuration does not parse: {e}"),
                }),
            )
                .into_response()
        }
    };
    match s.data_plane.apply(config).await {
        Ok(bound) => Json(Applied {
            bound,
            statuses: Some(current(&s)),
        })
        .into_response(),
        Err(refusal) => (StatusCode::CONFLICT, Json(refusal)).into_response(),
    }
}

async fn statuses(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let number = |name: &str| -> Result<Option<u64>, String> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: {v:?} is not a whole number")),
        }
    };
    let (after, wait_ms) = match (number("after"), number("waitMs")) {
        (Ok(a), Ok(w)) => (a, w.unwrap_or(0)),
        (Err(error), _) | (_, Err(error)) => {
            return (StatusCode::BAD_REQUEST, Json(ErrorBody { error })).into_response()
        }
    };
    if let Some(after) = after {
        let wait = Duration::from_millis(wait_ms).min(LONGEST_WAIT);
        let mut changes = s.data_plane.subscribe();
        let mut stopping = s.stop.subscribe();
        tokio::select! {
            _ = tokio::time::timeout(wait, changes.wait_for(|g| *g != after)) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }
    Json(current(&s)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Json<Vec<super::metric_families::Family>> {
    Json(from_prometheus(&s.registry.gather()))
}

async fn stop(State(s): State<Arc<Shared>>) -> StatusCode {
    let _ = s.stop.send(true);
    StatusCode::ACCEPTED
}

#[cfg(test)]
pub(crate) mod tests_support {
    //! A data plane served on a socket of a temporary directory, for the client's tests.
    use super::*;

    /// Serves a fresh proxy (listeners on 127.0.0.1) on `<dir>/dataplane.sock` until
    /// the returned sender turns true.
    pub async fn serve(dir: &Path) -> (watch::Sender<bool>, Arc<Proxy>) {
        let registry = prometheus::Registry::new();
        let proxy = Proxy::new(ProxyOptions {
            bind_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: Vec::new(),
            registry: registry.clone(),
        });
        let paths = DataPlanePaths::of(dir);
        let socket = tokio::net::UnixListener::bind(&paths.socket).unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            data_plane: ProxyDataPlane {
                proxy: proxy.clone(),
            },
            registry,
            identity: Identity {
                protocol: PROTOCOL_VERSION,
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                options: DataPlaneOptions {
                    listen_ip: "127.0.0.1".parse().unwrap(),
                    mesh_ips: Vec::new(),
                    mesh_inbound_addr: "127.0.0.1:0".parse().unwrap(),
                    dns: Default::default(),
                },
                mesh_inbound: "127.0.0.1:1".parse().unwrap(),
                dns_addrs: Vec::new(),
            },
            stop: stop.clone(),
        });
        tokio::spawn(async move {
            axum::serve(socket, router(shared))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        (stop, proxy)
    }
}
