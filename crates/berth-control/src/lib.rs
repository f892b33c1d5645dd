//! berth-control: the control plane. It serves the `/v1` API, validates and stores
//! desired state, and runs the reconcilers that converge the cluster toward it:
//!
//! - the service reconciler (placement, desired count, replacement, rolling deployments),
//! - the target-registration reconciler (register running tasks, drain stopping ones),
//! - the proxy feed (store → data-plane snapshot with the mesh, data-plane health →
//!   store), then the DNS records ([`discovery`]),
//! - the autoscaler (scalable targets, policies and sampled metrics → desired counts),
//!
//! and samples, after each pass, the metrics the autoscaler reads
//! ([`service_metrics`]), before the autoscaler runs.
//!
//! All of them are level-triggered: one pass reads the store and converges; passes run
//! whenever the store changes, the data plane reports a health change, or a resync tick
//! fires.
//!
//! What it does not do: run tasks (the agent does) or carry traffic (the proxy does). It
//! knows neither: it depends on the model and the store only, and meets the other planes
//! through four seams the binary wires up:
//!
//! - [`DataPlane`]: publish a [`ProxyConfig`](berth_model::dataplane::ProxyConfig), hear
//!   target health, check certificates;
//! - [`Discovery`]: publish the DNS records of namespaces (optional; see
//!   [`ControlPlane::with_discovery`]);
//! - [`AgentService`]: what agents call (register, tasks placed, task state changes);
//! - [`TaskNodes`]: ask the node running a task for its logs and resource use.
//!
//! Layout:
//! - [`api`]: the axum router.
//! - [`apply`]: stack apply, all or nothing (with the autoscaling sections).
//! - [`autoscaling_api`]: the API of scalable targets, scaling policies, scheduled
//!   actions and scaling activities.
//! - [`discovery_api`]: the API of namespaces and a service's mesh and DNS endpoints.
//! - [`instance_state`]: setting a container instance DRAINING or ACTIVE.
//! - [`console_api`]: what the web console reads beside the rest of the API (the
//!   store's changes as Server-Sent Events, whoami, stack files, metrics history).
//! - [`service_deployment`]: forcing a new deployment of a service.
//! - [`run_task`]: standalone tasks (ECS's RunTask), placed as a service's are.
//! - [`external_targets`]: addresses that are not tasks in `ip` target groups.
//! - [`task_exec`]: the exec endpoint (a command in a running task's container);
//!   [`task_exec_session`]: the same endpoint upgraded to an interactive session.
//! - [`db`]: key layout and typed store access.
//! - [`capacity`]: which pool a service's tasks use and how a capacity provider
//!   strategy splits them.
//! - [`scheduler`], [`services`], [`registration`], [`proxy_feed`], [`autoscaler`]: the
//!   reconcilers; [`mesh`]: the mesh's target groups and listeners derived from services;
//!   [`mesh_ca`] and [`mesh_tls`]: the mesh's certificate authority, certificates and
//!   mutual TLS configuration.
//! - [`data_plane`], [`discovery`], [`agent_service`], [`task_nodes`]: the seams to the
//!   other planes.
//! - [`metrics`]: the control plane's Prometheus metrics.
//! - [`service_metrics`]: per-service windows of the metrics scaling policies track.
//! - [`iam_store`]: IAM users, roles and access keys in the store (secrets sealed);
//!   [`iam_api`]: their `/v1/iam` routes; [`iam_auth`]: the request guard (SigV4 and
//!   policies, or a console session's cookie) that wraps the whole router;
//!   [`iam_native_actions`]: the IAM action of each native route; [`console_session`]:
//!   the console's sign-in and its sessions.
//! - [`secret_store`]: secrets in the store, sealed; [`secrets_api`]: their
//!   `/v1/secrets` routes; [`task_secrets`]: resolving a starting task's container
//!   `secrets` (the execution role's policies, then the store) for its agent.
//! - [`error`]: [`ControlError`], and the ECS-named API errors it becomes at the edge;
//!   [`json_body`]: request bodies read naming the field.

use std::sync::Arc;
use std::time::Duration;

use berth_model::ecs::Cluster;
use berth_model::{arn, ecs::DEFAULT_CLUSTER};
use tokio::sync::watch;

pub mod agent_service;
pub mod api;
#[cfg(test)]
mod api_bounds_tests;
pub mod api_state;
pub mod apply;
pub mod autoscaler;
pub mod autoscaling_api;
pub mod capacity;
pub mod console_api;
pub mod console_session;
pub mod data_plane;
pub mod db;
pub mod discovery;
pub mod discovery_api;
pub mod error;
pub mod external_targets;
pub mod iam_api;
pub mod iam_auth;
pub mod iam_native_actions;
pub mod iam_sessions;
pub mod iam_store;
pub mod instance_state;
pub mod json_body;
pub mod lost_instances;
pub mod mesh;
pub mod mesh_ca;
pub mod mesh_tls;
pub mod metrics;
pub mod node_join;
pub mod proxy_feed;
#[cfg(test)]
mod reconcile_loop_tests;
pub mod registration;
pub mod run_task;
pub mod scheduler;
pub mod secret_store;
pub mod secrets_api;
pub mod service_deployment;
pub mod service_metrics;
pub mod services;
pub mod task_exec;
pub mod task_exec_session;
pub mod task_nodes;
pub mod task_secrets;
#[cfg(test)]
mod test_fixtures;

pub use agent_service::AgentService;
pub use data_plane::DataPlane;
pub use db::Db;
pub use discovery::Discovery;
pub use error::{ApiError, ControlError};
pub use task_nodes::{
    ExecCommand, ExecResult, ExecSession, ExecSessionCommand, NodeError, TaskNodes,
};

/// How often the reconcilers run with no change to prompt them: a fixed cadence, a pass
/// every second however long the passes take (up to a second).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Everything the control plane needs to run.
pub struct ControlPlane {
    pub db: Db,
    pub data_plane: Arc<dyn DataPlane>,
    pub nodes: Arc<dyn TaskNodes>,
    changes: watch::Sender<u64>,
    feed: proxy_feed::ProxyFeed,
    metrics: metrics::ControlMetrics,
    exec_commands: task_exec::ExecCounter,
    service_metrics: Arc<service_metrics::ServiceMetrics>,
    autoscaler: autoscaler::Autoscaler,
    discovery: discovery::Publisher,
    /// The mesh certificates of agents' nodes, issued when they read their configuration.
    agent_nodes_mesh: Arc<proxy_feed::AgentNodesMesh>,
    /// Milliseconds an instance may be disconnected before its tasks are given up.
    agent_lost_after_ms: std::sync::atomic::AtomicU64,
    /// The secret store, once [`ControlPlane::with_secrets`] gave one.
    secrets: std::sync::OnceLock<secret_store::SecretStore>,
    /// How tasks' role credentials are minted (see [`ControlPlane::with_task_roles`]).
    task_roles: std::sync::OnceLock<agent_service::TaskRoles>,
}

impl ControlPlane {
    /// `registry` receives the control plane's metrics (see [`metrics`]); customized
    /// scaling metrics of berth's own are read from it too.
    pub fn new(
        db: Db,
        data_plane: Arc<dyn DataPlane>,
        nodes: Arc<dyn TaskNodes>,
        registry: &prometheus::Registry,
    ) -> Arc<Self> {
        let feed = proxy_feed::ProxyFeed::new(db.clone(), data_plane.clone());
        let service_metrics = Arc::new(service_metrics::ServiceMetrics::new(
            registry.clone(),
            Arc::new(service_metrics::HttpPrometheus::default()),
        ));
        Arc::new(Self {
            autoscaler: autoscaler::Autoscaler::new(db.clone(), service_metrics.clone()),
            db,
            data_plane,
            nodes,
            changes: watch::channel(0).0,
            feed,
            metrics: metrics::ControlMetrics::new(registry),
            exec_commands: task_exec::ExecCounter::new(registry),
            service_metrics,
            discovery: discovery::Publisher::default(),
            agent_nodes_mesh: Arc::default(),
            agent_lost_after_ms: std::sync::atomic::AtomicU64::new(
                lost_instances::DEFAULT_AGENT_LOST_AFTER.as_millis() as u64,
            ),
            secrets: std::sync::OnceLock::new(),
            task_roles: std::sync::OnceLock::new(),
        })
    }

    /// Publishes the DNS records to `discovery` after every pass (when they changed);
    /// without it they go nowhere.
    pub fn with_discovery(self: Arc<Self>, discovery: Arc<dyn Discovery>) -> Arc<Self> {
        self.discovery.set(discovery);
        self
    }

    /// Runs the mesh's mutual TLS with `settings` (certificate validity, the node the
    /// data plane serves); without it, the defaults of [`mesh_tls::MeshTlsSettings`].
    pub fn with_mesh_tls(self: Arc<Self>, settings: mesh_tls::MeshTlsSettings) -> Arc<Self> {
        self.agent_nodes_mesh
            .set_certificate_validity(settings.certificate_validity);
        self.feed.mesh_tls.configure(settings);
        self
    }

    /// Gives up the tasks of an instance disconnected for `after` instead of
    /// [`lost_instances::DEFAULT_AGENT_LOST_AFTER`].
    pub fn with_agent_lost_after(self: Arc<Self>, after: Duration) -> Arc<Self> {
        self.agent_lost_after_ms.store(
            after.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self
    }

    /// Keeps secrets in `store`: the router serves `/v1/secrets` ([`secrets_api`]) and
    /// the agent service resolves tasks' `secrets` from it. Without it there are no
    /// such routes, and a task with secrets is refused its start.
    pub fn with_secrets(self: Arc<Self>, store: secret_store::SecretStore) -> Arc<Self> {
        let _ = self.secrets.set(store);
        self
    }

    /// The sampled metrics of every service, which the autoscaler reads.
    pub fn service_metrics(&self) -> &Arc<service_metrics::ServiceMetrics> {
        &self.service_metrics
    }

    /// A receiver that changes whenever the store does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Mints the role credentials of tasks whose definition names a `taskRoleArn` with
    /// `roles` (the IAM store and how long they are valid); without it, the agents get
    /// none and such tasks fail to start.
    pub fn with_task_roles(self: Arc<Self>, roles: agent_service::TaskRoles) -> Arc<Self> {
        let _ = self.task_roles.set(roles);
        self
    }

    /// What the agents call: in-process for the local agent, or behind an HTTP API.
    pub fn agent_service(&self) -> AgentService {
        AgentService::new(self.db.clone(), self.changes())
            .with_node_mesh(self.agent_nodes_mesh.clone())
            .with_secrets(self.secrets.get().cloned())
            .with_task_roles(self.task_roles.get().cloned())
    }

    pub fn router(&self) -> axum::Router {
        let router = api::router(api::ApiState {
            db: self.db.clone(),
            data_plane: self.data_plane.clone(),
            nodes: self.nodes.clone(),
            bound: self.feed.bound_listeners(),
            exec_commands: self.exec_commands.clone(),
        });
        match self.secrets.get() {
            Some(store) => router.merge(secrets_api::routes(store.clone())),
            None => router,
        }
    }

    /// Creates the `default` cluster if it is missing (ECS has one implicitly).
    pub async fn ensure_default_cluster(&self) -> Result<(), ControlError> {
        let c = Cluster {
            cluster_name: DEFAULT_CLUSTER.into(),
            cluster_arn: arn::cluster(DEFAULT_CLUSTER),
            status: "ACTIVE".into(),
            ..Default::default()
        };
        match self.db.create(&db::cluster_key(DEFAULT_CLUSTER), &c).await {
            Ok(_) | Err(berth_store::StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One pass of every reconciler, in order.
    pub async fn reconcile_once(&self) {
        self.metrics.count_pass();
        let lost_after = Duration::from_millis(
            self.agent_lost_after_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let own = self.feed.mesh_tls.settings().node_instance_arn();
        if let Err(e) =
            lost_instances::reconcile(&self.db, unix_now(), lost_after, own.as_deref()).await
        {
            tracing::warn!(error = %e, "lost instances");
        }
        let services = services::ServiceReconciler::new(self.db.clone());
        if let Err(e) = services.reconcile().await {
            tracing::warn!(error = %e, "service reconciler");
        }
        let reg = registration::RegistrationReconciler::new(self.db.clone());
        if let Err(e) = reg.reconcile().await {
            tracing::warn!(error = %e, "registration reconciler");
        }
        if let Err(e) = self.feed.push_config().await {
            tracing::warn!(error = %e, "proxy feed");
        }
        if let Err(e) = self.feed.pull_health().await {
            tracing::warn!(error = %e, "proxy health");
        }
        let statuses = self.data_plane.target_statuses();
        if let Err(e) = self.discovery.publish(&self.db, &statuses).await {
            tracing::warn!(error = %e, "discovery");
        }
        let now = unix_now();
        if let Err(e) = self.observe_at(now).await {
            tracing::warn!(error = %e, "metrics");
        }
        match self.autoscaler.reconcile(now).await {
            Ok(report) => self.metrics.observe_autoscaling(&report),
            Err(e) => tracing::warn!(error = %e, "autoscaler"),
        }
    }

    /// What a node that does not run the reconcilers (a follower sharing the store with
    /// an elected leader) does for itself on each pass: feeds its data plane the load
    /// balancers and target groups in the store (its own health checks decide where
    /// traffic goes) and publishes the DNS records to its discovery server. It writes no
    /// target health: that stays with the reconcilers.
    pub async fn serve_node_once(&self) {
        if let Err(e) = self.feed.push_config().await {
            tracing::warn!(error = %e, "proxy feed");
        }
        let statuses = self.data_plane.target_statuses();
        if let Err(e) = self.discovery.publish(&self.db, &statuses).await {
            tracing::warn!(error = %e, "discovery");
        }
    }

    /// Updates the service metrics and samples what the autoscaler reads, stamped `now`
    /// (unix seconds): the data plane's request counts and berth's own metrics in this
    /// pass, task usage and Prometheus queries in a round of their own, so a slow node
    /// never holds the pass.
    async fn observe_at(&self, now: f64) -> Result<(), ControlError> {
        let services: Vec<_> = self
            .db
            .services(None)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect();
        let tasks: Vec<_> = self
            .db
            .tasks(None)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect();
        self.metrics.observe_services(&services, &tasks);
        let statuses = self.data_plane.target_statuses();
        if self.service_metrics.sample_fast(now, &services, &statuses) {
            self.metrics
                .observe_service_metrics(&services, &self.service_metrics);
        }
        let Some(round) = self.service_metrics.slow_round(now) else {
            return Ok(());
        };
        let mut definitions = std::collections::BTreeMap::new();
        for t in tasks
            .iter()
            .filter(|t| t.last_status == berth_model::ecs::TaskStatus::Running)
        {
            if !definitions.contains_key(&t.task_definition_arn) {
                if let Some(d) = self
                    .db
                    .resolve_task_definition(&t.task_definition_arn)
                    .await?
                {
                    definitions.insert(t.task_definition_arn.clone(), d);
                }
            }
        }
        let sampler = self.service_metrics.clone();
        let nodes = self.nodes.clone();
        tokio::spawn(async move {
            sampler
                .sample_slow(now, &services, &tasks, &definitions, &*nodes)
                .await;
            drop(round);
        });
        Ok(())
    }

    /// Runs the store watcher and the reconcilers until `shutdown` turns true.
    pub async fn run_reconcilers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let rev = self.db.store.revision().await.unwrap_or(0);
        let watcher = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut rev = rev;
                loop {
                    match me.db.store.watch("/", rev).await {
                        Ok(mut w) => {
                            while let Some(ev) = w.recv().await {
                                rev = ev.revision();
                                me.changes.send_modify(|n| *n += 1);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "store watch failed; re-listing");
                            rev = me.db.store.revision().await.unwrap_or(rev);
                            me.changes.send_modify(|n| *n += 1);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let mut changes = self.changes();
        let mut health = self.data_plane.subscribe();
        // A fixed cadence, not a pause after each pass: the metric windows the
        // autoscaler reads are sampled on these passes, and a pass that takes a while
        // (a loaded machine) must not stretch the time between samples.
        let mut resync = tokio::time::interval(RESYNC_INTERVAL);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        loop {
            self.reconcile_once().await;
            tokio::select! {
                // A sender gone is a shutdown too (else `changed` returns at once forever).
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { break; }
                }
                _ = changes.changed() => {}
                _ = health.changed() => {}
                _ = resync.tick() => {}
            }
        }
        watcher.abort();
    }
}

/// Seconds since the Unix epoch, the timestamps of the metric samples.
fn unix_now() -> f64 {
    berth_model::time::now()
}
