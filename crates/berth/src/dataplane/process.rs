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
//! Started with `--take-over` while another data plane holds the lock, it takes that one's
//! listening sockets, configuration and health over instead ([`super::upgrade`]); a
//! data plane asked to hand over (`POST /v1/handover`) stops once the new one serves.
//!
//! What it does not do: decide what to serve (the server applies configurations), or
//! watch the server: it serves its last configuration for as long as it runs.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
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

use super::dns::NodeDns;
use super::handover::{HandedOver, HandoverRequest};
use super::lock::DataPlaneLock;
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
    /// When a data plane already runs for the data dir: take its listening sockets,
    /// configuration and health over (it stops once this one serves).
    #[arg(long, hide = true)]
    pub take_over: bool,
}

struct Shared {
    data_plane: ProxyDataPlane,
    registry: prometheus::Registry,
    identity: Identity,
    stop: watch::Sender<bool>,
    /// The last configuration applied; held while one applies or a handover runs.
    last_config: tokio::sync::Mutex<Option<ProxyConfig>>,
    /// Where this data plane answers, and a descriptor of its lock (a handover sends it);
    /// `None` in tests serving a bare socket.
    handover: Option<(DataPlanePaths, std::os::fd::OwnedFd)>,
    /// Set once this data plane handed over: the new one's pid.
    handed_to: std::sync::Mutex<Option<u32>>,
    /// The node's discovery DNS (`None` in tests serving a bare socket).
    dns: Option<Arc<NodeDns>>,
}

/// Runs the data plane until it is told to stop.
pub async fn run(args: DataPlaneArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let paths = DataPlanePaths::of(&args.data_dir);
    let registry = prometheus::Registry::new();
    let proxy = Proxy::new(ProxyOptions {
        bind_ip: args.options.listen_ip,
        mesh_ips: args.options.mesh_ips.clone(),
        registry: registry.clone(),
        data_plane_threads: args.options.data_plane_threads,
    })?;
    let (lock, mesh_inbound, config, mut taken) = match DataPlaneLock::try_take(&paths.lock)? {
        Some(lock) => {
            let inbound = args.options.mesh_inbound_addr;
            let mesh_inbound = proxy.bind_mesh_inbound(inbound).await.with_context(|| {
                format!("binding the mesh inbound listener (--mesh-inbound-addr {inbound})")
            })?;
            (lock, mesh_inbound, None, None)
        }
        None if args.take_over => {
            let mut taken = super::upgrade::take(&paths, &proxy, &args.options)
                .await
                .context("taking over from the running data plane")?;
            let lock = taken.lock.take().context("the handover carried no lock")?;
            (lock, taken.mesh_inbound, taken.config.take(), Some(taken))
        }
        None => {
            let pid = std::fs::read_to_string(&paths.pid).unwrap_or_default();
            bail!(
                "a data plane already runs for {} (pid {})",
                args.data_dir.display(),
                pid.trim()
            );
        }
    };
    let handed_dns = taken
        .as_mut()
        .map(|t| std::mem::take(&mut t.dns_sockets))
        .unwrap_or_default();
    let (dns, dns_addrs) = super::dns::serve(&args.options, &registry, handed_dns).await?;
    if let Some(records) = taken.as_mut().and_then(|t| t.discovery_records.take()) {
        dns.publish(records);
    }
    let socket = bind_socket(&paths)?;
    let pid = std::process::id();
    write_pid(&paths)?;
    tracing::info!(
        pid,
        socket = %paths.socket.display(),
        mesh_inbound = %mesh_inbound,
        "data plane serving"
    );
    if let Some(taken) = taken {
        tracing::info!(
            old_pid = taken.from_pid,
            inherited_health = taken.inherited_health,
            "took over from the old data plane"
        );
        taken.confirm().await;
    }
    let stop = watch::Sender::new(false);
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
            executable: super::executable::fingerprint(),
        },
        stop: stop.clone(),
        last_config: tokio::sync::Mutex::new(config),
        handover: Some((paths.clone(), lock.descriptor()?)),
        handed_to: std::sync::Mutex::new(None),
        dns: Some(dns.clone()),
    });
    let serving = tokio::spawn(serve_socket(socket, shared.clone()));
    let why = wait_for_stop(stop.subscribe()).await;
    let why = match *shared.handed_to.lock().expect("handed_to lock") {
        Some(new_pid) => format!("handed over to pid {new_pid}"),
        None => why.to_string(),
    };
    tracing::info!("data plane stopping ({why}): closing listeners, draining connections");
    let _ = stop.send(true);
    // The DNS first: after a handover the new process answers on the same sockets, with
    // records the server may already have updated there.
    dns.server.shutdown().await;
    proxy.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), serving).await;
    remove_if_ours(&paths, pid);
    drop(lock);
    tracing::info!("data plane stopped");
    Ok(())
}

/// Serves the control socket until the data plane stops.
async fn serve_socket(socket: tokio::net::UnixListener, shared: Arc<Shared>) {
    let mut stopped = shared.stop.subscribe();
    let mut routes = router(shared.clone());
    if let Some(dns) = shared.dns.clone() {
        routes = routes.merge(super::dns::routes(dns));
    }
    let served = axum::serve(socket, routes)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "serving the data plane socket");
    }
}

/// Binds the control socket beside its path and renames it over the path, so the path
/// always reaches a data plane: the one before until the rename, this one after.
fn bind_socket(paths: &DataPlanePaths) -> Result<tokio::net::UnixListener> {
    let pid = std::process::id();
    let beside = paths.socket.with_extension(format!("sock.{pid}"));
    let _ = std::fs::remove_file(&beside);
    let socket = tokio::net::UnixListener::bind(&beside)
        .with_context(|| format!("binding {}", beside.display()))?;
    std::fs::set_permissions(&beside, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", beside.display()))?;
    std::fs::rename(&beside, &paths.socket)
        .with_context(|| format!("moving {} to {}", beside.display(), paths.socket.display()))?;
    Ok(socket)
}

/// Writes this process's pid to the pid file, whole.
fn write_pid(paths: &DataPlanePaths) -> Result<()> {
    crate::whole_file::write_whole(&paths.pid, &std::process::id().to_string())
        .with_context(|| format!("writing {}", paths.pid.display()))
}

/// `POST /v1/handover`: hands this data plane over to the process listening on the
/// body's socket, then stops. Configurations wait until the handover ends.
async fn handover(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let fail =
        |status: StatusCode, error: String| (status, Json(ErrorBody { error })).into_response();
    let request: HandoverRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("the handover request does not parse: {e}"),
            )
        }
    };
    let Some((paths, lock)) = &s.handover else {
        return fail(
            StatusCode::CONFLICT,
            "this data plane cannot hand over".into(),
        );
    };
    let config = s.last_config.lock().await;
    if s.handed_to.lock().expect("handed_to lock").is_some() || *s.stop.borrow() {
        return fail(StatusCode::CONFLICT, "this data plane is stopping".into());
    }
    let old_pid = std::process::id();
    tracing::info!(new_pid = request.pid, "handing the data plane over");
    let dns = s.dns.as_deref();
    match super::upgrade::give(&s.data_plane.proxy, dns, config.clone(), lock, &request).await {
        Ok(new_pid) => {
            *s.handed_to.lock().expect("handed_to lock") = Some(new_pid);
            let _ = s.stop.send(true);
            Json(HandedOver { old_pid, new_pid }).into_response()
        }
        Err(e) => {
            tracing::warn!(new_pid = request.pid, error = %format!("{e:#}"), "the handover failed; serving on");
            if request.pid != old_pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(request.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            take_back(paths, &s).await;
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the handover failed: {e:#}"),
            )
        }
    }
}

/// After a failed handover: the socket path and the pid file are this process's again
/// (the new process may have moved them before it failed).
async fn take_back(paths: &DataPlanePaths, s: &Arc<Shared>) {
    let ours = super::protocol::identity(&paths.socket, Duration::from_secs(2))
        .await
        .is_ok_and(|i| i.pid == std::process::id());
    if !ours {
        match bind_socket(paths) {
            Ok(socket) => {
                tokio::spawn(serve_socket(socket, s.clone()));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "taking the data plane socket back")
            }
        }
    }
    if let Err(e) = write_pid(paths) {
        tracing::error!(error = %format!("{e:#}"), "taking the pid file back");
    }
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
        .route("/v1/handover", post(handover))
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
    let mut last = s.last_config.lock().await;
    if let Some(new_pid) = *s.handed_to.lock().expect("handed_to lock") {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody {
                error: format!("this data plane handed over to pid {new_pid}"),
            }),
        )
            .into_response();
    }
    let applied = s.data_plane.apply(config.clone()).await;
    if applied.is_ok() {
        *last = Some(config);
    }
    drop(last);
    match applied {
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
    use std::path::Path;

    /// Serves a fresh proxy (listeners on 127.0.0.1) on `<dir>/dataplane.sock` until
    /// the returned sender turns true.
    pub async fn serve(dir: &Path) -> (watch::Sender<bool>, Arc<Proxy>) {
        let registry = prometheus::Registry::new();
        let proxy = Proxy::new(ProxyOptions {
            bind_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: Vec::new(),
            registry: registry.clone(),
            data_plane_threads: 0,
        })
        .unwrap();
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
                    data_plane_threads: 0,
                    dns: Default::default(),
                },
                mesh_inbound: "127.0.0.1:1".parse().unwrap(),
                dns_addrs: Vec::new(),
                executable: None,
            },
            stop: stop.clone(),
            last_config: tokio::sync::Mutex::new(None),
            handover: None,
            handed_to: std::sync::Mutex::new(None),
            dns: None,
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
