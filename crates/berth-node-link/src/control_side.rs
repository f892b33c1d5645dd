//! The control plane's side of the link: an HTTPS (HTTP/2, mutual TLS) server that
//! answers the calls of remote agents with berth-control's [`AgentService`] and
//! [`NodeJoin`], and tracks which agents are connected.
//!
//! Every call but the join must come with a node certificate, and a node speaks only for
//! its own container instance: it registers, lists the tasks of, streams the changes for
//! and reports the task states of that instance alone, and reads the secret values of
//! the tasks placed on it alone (403 otherwise). An agent is
//! connected while it holds its change stream open; once it has held none for
//! [`DISCONNECT_AFTER`], its instance is marked `agentConnected: false`.
//!
//! What it does not do: decide anything about tasks (the control plane's services do).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_control::node_join::{node_of, JoinError, NodeJoin};
use berth_control::{AgentService, ApiError};
use berth_model::agent::TaskStateChange;
use berth_model::arn;
use berth_model::ecs::ContainerInstance;
use berth_model::mesh_identity::SpiffeId;
use berth_model::node_link::{paths, ChangeNotice, JoinRequest, TaskCredentialsRequest};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::tls::{control_server_config, peer_identity, ReloadableKey, TlsError};

/// How long an agent may hold no change stream before its instance is marked
/// disconnected: a few missed heartbeats, not a blip.
pub const DISCONNECT_AFTER: Duration = Duration::from_secs(15);

/// How often the change stream repeats its last notice when nothing changed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer of a connection, as its certificate names it.
#[derive(Clone)]
pub(crate) struct Peer(pub(crate) Option<SpiffeId>);

/// Open change streams per container instance ARN, and a generation that moves on each
/// open, so a disconnect timer knows whether the agent came back meanwhile.
#[derive(Default)]
struct Presence {
    open: Mutex<HashMap<String, (usize, u64)>>,
}

#[derive(Clone)]
struct LinkState {
    join: NodeJoin,
    agents: AgentService,
    presence: Arc<Presence>,
    disconnect_after: Duration,
}

/// What the server needs from the control plane.
pub struct ControlLink {
    pub join: NodeJoin,
    pub agents: AgentService,
    /// [`DISCONNECT_AFTER`] unless a test wants it shorter.
    pub disconnect_after: Duration,
}

/// The control plane's certificate on the link (renewed in place) and the authority's,
/// shared by its server for agents and its client of the nodes' APIs.
#[derive(Clone)]
pub struct ControlIdentity {
    pub key: Arc<ReloadableKey>,
    pub authority_pem: String,
}

/// Serves the link on `listener` until `stop` turns true; renews the control plane's
/// own certificate at half its lifetime. Returns the control plane's identity for its
/// calls to the nodes.
pub async fn serve(
    link: ControlLink,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<ControlIdentity, TlsError> {
    let creds = link
        .join
        .control_credentials()
        .await
        .map_err(|e| TlsError(format!("issuing the control plane's certificate: {e}")))?;
    let key = ReloadableKey::new(&creds)?;
    let tls = control_server_config(key.clone(), &creds.authority_pem)?;
    let identity = ControlIdentity {
        key: key.clone(),
        authority_pem: creds.authority_pem.clone(),
    };
    let state = LinkState {
        join: link.join.clone(),
        agents: link.agents,
        presence: Arc::default(),
        disconnect_after: link.disconnect_after,
    };
    let router = routes(state);
    tokio::spawn(renew_control_certificate(
        link.join,
        key,
        creds.renew_at,
        stop.clone(),
    ));
    tokio::spawn(accept_loop(listener, tls, router, stop));
    Ok(identity)
}

async fn renew_control_certificate(
    join: NodeJoin,
    key: Arc<ReloadableKey>,
    mut renew_at: f64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = (renew_at - berth_model::time::now()).clamp(1.0, 3600.0);
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
        }
        if berth_model::time::now() < renew_at {
            continue;
        }
        match join.control_credentials().await {
            Ok(creds) => match key.replace(&creds) {
                Ok(()) => renew_at = creds.renew_at,
                Err(e) => tracing::warn!(error = %e, "renewing the node link certificate"),
            },
            Err(e) => tracing::warn!(error = %e, "renewing the node link certificate"),
        }
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "node link accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(serve_connection(acceptor, tcp, remote, router, stop));
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "node link handshake failed");
            return;
        }
        Err(_) => return,
    };
    let peer = Peer(peer_identity(stream.get_ref().1));
    let svc = TowerToHyperService::new(router.layer(Extension(peer)));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {}
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn routes(state: LinkState) -> Router {
    Router::new()
        .route(paths::JOIN, post(join))
        .route(paths::RENEW, post(renew))
        .route(paths::INSTANCES, post(register_instance))
        .route(paths::TASKS, get(assigned_tasks))
        .route(paths::PROXY_CONFIG, get(node_proxy_config))
        .route(paths::DISCOVERY_RECORDS, get(node_discovery_records))
        .route(paths::TASK_DEFINITION, get(task_definition))
        .route(paths::TASK_SECRETS, get(task_secrets))
        .route(paths::TASK_STATE_CHANGES, post(task_state_change))
        .route(paths::CHANGES, get(changes))
        .route(paths::TASK_CREDENTIALS, post(task_credentials))
        .with_state(state)
}

fn refuse(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"__type": kind, "message": message.into()})),
    )
        .into_response()
}

fn control_error(e: berth_control::ControlError) -> Response {
    ApiError::from(e).into_response()
}

/// A call the peer's certificate does not allow: 403 with the reason.
struct Forbidden(String);

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        refuse(StatusCode::FORBIDDEN, "AccessDeniedException", self.0)
    }
}

/// The node a peer's certificate names: its instance id and its cluster in lowercase (a
/// SPIFFE trust domain has no capitals, cluster names may).
struct Caller {
    cluster_lowercase: String,
    instance: String,
}

impl Caller {
    /// Whether the caller speaks for the container instance `instance_arn`.
    fn owns(&self, instance_arn: &str) -> bool {
        arn::container_instance_parts(instance_arn).is_some_and(|(cluster, id)| {
            id == self.instance && cluster.to_ascii_lowercase() == self.cluster_lowercase
        })
    }

    /// The caller's container instance ARN in `cluster` (as the task or request spells
    /// the cluster), when that is the caller's cluster.
    fn instance_in(&self, cluster: &str) -> Option<String> {
        let a = arn::container_instance(cluster, &self.instance);
        self.owns(&a).then_some(a)
    }
}

/// The node the peer is, or why it may not call at all.
fn caller_instance(peer: &Peer) -> Result<Caller, Forbidden> {
    let id = peer.0.as_ref().ok_or_else(|| {
        Forbidden(
            "this call needs the node's certificate: join first with berth agent --token".into(),
        )
    })?;
    let (cluster, instance) =
        node_of(id).ok_or_else(|| Forbidden(format!("{id} is not a node identity")))?;
    Ok(Caller {
        cluster_lowercase: cluster,
        instance,
    })
}

/// The refusal when the peer is not the node of container instance `arn`.
fn refuse_unless_owner(peer: &Peer, arn: &str) -> Option<Response> {
    match caller_instance(peer) {
        Ok(own) if own.owns(arn) => None,
        Ok(_) => Some(not_yours(arn)),
        Err(r) => Some(r.into_response()),
    }
}

fn not_yours(arn: &str) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        format!("this node's certificate does not speak for {arn}"),
    )
}

async fn join(State(s): State<LinkState>, Json(req): Json<JoinRequest>) -> Response {
    match s.join.join(&req).await {
        Ok(creds) => {
            tracing::info!(cluster = %req.cluster, instance = %req.instance_id, "a node joined");
            Json(creds).into_response()
        }
        Err(JoinError::WrongSecret) => refuse(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            JoinError::WrongSecret.to_string(),
        ),
        Err(JoinError::Invalid { field, message }) => refuse(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            format!("{field}: {message}"),
        ),
        Err(JoinError::Control(e)) => control_error(e),
    }
}

async fn renew(State(s): State<LinkState>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = caller_instance(&peer) {
        return r.into_response();
    }
    let id = peer.0.expect("checked above");
    match s.join.renew(&id).await {
        Ok(creds) => Json(creds).into_response(),
        Err(JoinError::Control(e)) => control_error(e),
        Err(e) => refuse(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            e.to_string(),
        ),
    }
}

async fn register_instance(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Json(instance): Json<ContainerInstance>,
) -> Response {
    let own = match caller_instance(&peer) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if !own.owns(&instance.container_instance_arn)
        || !own.owns(&arn::container_instance(
            arn::last_segment(&instance.cluster_arn),
            &instance.ec2_instance_id,
        ))
    {
        return not_yours(&instance.container_instance_arn);
    }
    match s.agents.register_instance(instance).await {
        Ok(stored) => Json(stored).into_response(),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceQuery {
    container_instance_arn: String,
}

async fn assigned_tasks(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<InstanceQuery>,
) -> Response {
    if let Some(r) = refuse_unless_owner(&peer, &q.container_instance_arn) {
        return r;
    }
    match s.agents.assigned_tasks(&q.container_instance_arn).await {
        Ok(tasks) => Json(tasks).into_response(),
        Err(e) => control_error(e),
    }
}

async fn node_proxy_config(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<InstanceQuery>,
) -> Response {
    if let Some(r) = refuse_unless_owner(&peer, &q.container_instance_arn) {
        return r;
    }
    match s.agents.node_proxy_config(&q.container_instance_arn).await {
        Ok(config) => Json(config).into_response(),
        Err(e) => control_error(e),
    }
}

async fn node_discovery_records(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<InstanceQuery>,
) -> Response {
    if let Some(r) = refuse_unless_owner(&peer, &q.container_instance_arn) {
        return r;
    }
    match s.agents.node_discovery_records().await {
        Ok(records) => Json(records).into_response(),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskDefinitionQuery {
    task_definition: String,
}

async fn task_definition(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<TaskDefinitionQuery>,
) -> Response {
    if let Err(r) = caller_instance(&peer) {
        return r.into_response();
    }
    match s.agents.task_definition(&q.task_definition).await {
        Ok(Some(td)) => Json(td).into_response(),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "ClientException",
            format!("Unable to describe task definition {}", q.task_definition),
        ),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskQuery {
    task_arn: String,
}

/// A task's secret values, for the node it is placed on only (they travel on this
/// mutual TLS connection and nowhere else).
async fn task_secrets(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<TaskQuery>,
) -> Response {
    if let Err(r) = placed_on_caller(&s, &peer, &q.task_arn).await {
        return r;
    }
    match s.agents.task_secrets(&q.task_arn).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => control_error(e),
    }
}

/// Refuses unless task `task_arn` is placed on the caller's container instance.
async fn placed_on_caller(s: &LinkState, peer: &Peer, task_arn: &str) -> Result<(), Response> {
    let own = caller_instance(peer).map_err(IntoResponse::into_response)?;
    let task_cluster = arn::task_parts(task_arn)
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let Some(own) = own.instance_in(&task_cluster) else {
        return Err(not_yours(task_arn));
    };
    match s.agents.assigned_tasks(&own).await {
        Ok(tasks) if tasks.iter().any(|t| t.task_arn == task_arn) => Ok(()),
        Ok(_) => Err(not_yours(task_arn)),
        Err(e) => Err(control_error(e)),
    }
}

async fn task_credentials(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<TaskCredentialsRequest>,
) -> Response {
    // The same placement check as a task's secrets and state changes, besides the
    // instance the request names being the caller's own.
    if let Some(r) = refuse_unless_owner(&peer, &req.container_instance_arn) {
        return r;
    }
    if let Err(r) = placed_on_caller(&s, &peer, &req.task_arn).await {
        return r;
    }
    match s
        .agents
        .task_role_credentials(&req.container_instance_arn, &req.task_arn)
        .await
    {
        Ok(credentials) => Json(credentials).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn task_state_change(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Json(change): Json<TaskStateChange>,
) -> Response {
    // A node reports only the tasks placed on it.
    if let Err(r) = placed_on_caller(&s, &peer, &change.task_arn).await {
        return r;
    }
    match s.agents.submit_task_state_change(change).await {
        Ok(Some(task)) => Json(task).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "ClientException", "no such task"),
        Err(e) => control_error(e),
    }
}

/// Decrements the instance's open streams when the stream's body is dropped, and marks
/// the instance disconnected when none was opened again within the grace period.
struct StreamGuard {
    state: LinkState,
    arn: String,
    generation: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let remaining = {
            let mut open = self.state.presence.open.lock().expect("presence lock");
            let e = open.entry(self.arn.clone()).or_insert((0, 0));
            e.0 = e.0.saturating_sub(1);
            e.0
        };
        if remaining > 0 {
            return;
        }
        let state = self.state.clone();
        let arn = self.arn.clone();
        let generation = self.generation;
        tokio::spawn(async move {
            tokio::time::sleep(state.disconnect_after).await;
            let gone = {
                let open = state.presence.open.lock().expect("presence lock");
                open.get(&arn)
                    .is_none_or(|(n, g)| *n == 0 && *g == generation)
            };
            if gone {
                tracing::warn!(instance = %arn, "agent disconnected");
                if let Err(e) = state.agents.mark_disconnected(&arn).await {
                    tracing::warn!(instance = %arn, error = %e, "marking the agent disconnected");
                }
            }
        });
    }
}

async fn changes(
    State(s): State<LinkState>,
    Extension(peer): Extension<Peer>,
    Query(q): Query<InstanceQuery>,
) -> Response {
    if let Some(r) = refuse_unless_owner(&peer, &q.container_instance_arn) {
        return r;
    }
    let generation = {
        let mut open = s.presence.open.lock().expect("presence lock");
        let e = open
            .entry(q.container_instance_arn.clone())
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += 1;
        e.1
    };
    // Holding the stream is being connected.
    if let Err(e) = s.agents.mark_connected(&q.container_instance_arn).await {
        tracing::warn!(instance = %q.container_instance_arn, error = %e, "marking the agent connected");
    }
    let guard = StreamGuard {
        state: s.clone(),
        arn: q.container_instance_arn,
        generation,
    };
    let rx = s.agents.changes();
    let beat = tokio::time::Instant::now();
    let lines = futures::stream::unfold(
        (rx, true, guard, beat),
        |(mut rx, first, guard, mut beat)| async move {
            if !first {
                // A change, or a heartbeat repeating the last notice.
                let _ = tokio::time::timeout(HEARTBEAT_INTERVAL, rx.changed()).await;
            }
            // The stream is alive while it is read: record it in the store now and then, so
            // the agent's liveness outlives this server.
            if beat.elapsed() >= berth_agent::HEARTBEAT_INTERVAL {
                beat = tokio::time::Instant::now();
                if let Err(e) = guard.state.agents.record_heartbeat(&guard.arn).await {
                    tracing::warn!(instance = %guard.arn, error = %e, "recording a heartbeat");
                }
            }
            let notice = ChangeNotice {
                revision: *rx.borrow_and_update(),
            };
            let mut line = serde_json::to_vec(&notice).expect("a notice serializes");
            line.push(b'\n');
            Some((
                Ok::<_, Infallible>(Bytes::from(line)),
                (rx, false, guard, beat),
            ))
        },
    );
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("a valid response")
}
