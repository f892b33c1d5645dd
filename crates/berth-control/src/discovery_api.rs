//! The `/v1` routes of service discovery and the mesh.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/namespaces`, `GET/DELETE /v1/namespaces/{name}` | Cloud Map namespaces (DELETE is refused while a service names the namespace) |
//! | `GET /v1/clusters/{c}/services/{s}/endpoints` | what the mesh and DNS see of the service, per discovery name: namespace, client aliases, the mesh identity and allowed callers, the DNS names published, and each task's endpoint with its health, requests in flight, ejection and whether DNS answers with it |
//!
//! Namespaces are created and updated through apply (a stack's `namespaces`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use berth_model::elb::{TargetHealth, TargetHealthState};
use berth_model::mesh_identity::SpiffeId;
use berth_model::servicediscovery::Namespace;
use serde::{Deserialize, Serialize};

use crate::data_plane::DataPlane;
use crate::db::{self, Db};
use crate::discovery::{self, GroupKind};
use crate::error::ApiError;

/// What the discovery routes need.
struct DiscoveryApi {
    db: Db,
    /// The targets' live state (health, in flight, ejected).
    data_plane: Arc<dyn DataPlane>,
}

type St = State<Arc<DiscoveryApi>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The routes above, for `api` to merge into its router.
pub fn routes<S: Clone + Send + Sync + 'static>(
    db: Db,
    data_plane: Arc<dyn DataPlane>,
) -> Router<S> {
    Router::new()
        .route("/v1/namespaces", get(list_namespaces))
        .route(
            "/v1/namespaces/{name}",
            get(get_namespace).delete(delete_namespace),
        )
        .route(
            "/v1/clusters/{cluster}/services/{service}/endpoints",
            get(service_endpoints),
        )
        .with_state(Arc::new(DiscoveryApi { db, data_plane }))
}

async fn list_namespaces(State(s): St) -> ApiResult<Vec<Namespace>> {
    Ok(Json(s.db.namespaces().await?))
}

fn namespace_not_found(name: &str) -> ApiError {
    ApiError::new(
        "NamespaceNotFound",
        404,
        format!("namespace {name:?} does not exist; see GET /v1/namespaces"),
    )
}

async fn get_namespace(State(s): St, Path(name): Path<String>) -> ApiResult<Namespace> {
    s.db.get::<Namespace>(&db::namespace_key(&name))
        .await?
        .map(|v| Json(v.value))
        .ok_or_else(|| namespace_not_found(&name))
}

/// Deletes a namespace no service names (as Cloud Map refuses to delete a namespace
/// that still has services).
async fn delete_namespace(State(s): St, Path(name): Path<String>) -> ApiResult<serde_json::Value> {
    let ns =
        s.db.get::<Namespace>(&db::namespace_key(&name))
            .await?
            .ok_or_else(|| namespace_not_found(&name))?;
    for svc in s.db.services(None).await? {
        let svc = svc.value;
        let in_mesh = svc
            .service_connect_configuration
            .as_ref()
            .and_then(|c| c.namespace_name())
            == Some(name.as_str());
        let registered = svc.service_registries.iter().any(|r| {
            r.registry_arn
                .as_deref()
                .and_then(berth_model::servicediscovery::parse_discovery_service_arn)
                .is_some_and(|(ns, _)| ns == name)
        });
        if in_mesh || registered {
            return Err(ApiError::in_use(format!(
                "namespace {name:?} is used by service {}/{}; remove it from the service first",
                svc.cluster_name(),
                svc.service_name
            )));
        }
    }
    s.db.batch(vec![berth_store::Op::Delete {
        key: ns.key,
        expect: Some(berth_store::Expect::ModRevision(ns.mod_revision)),
    }])
    .await?;
    Ok(Json(serde_json::json!({"deleted": ns.value.arn})))
}

/// One discovery name of a service, as the mesh and DNS see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// `serviceConnect` or `serviceRegistry`.
    pub kind: String,
    pub namespace: String,
    pub discovery_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// The mesh target group (service connect only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    #[serde(default)]
    pub client_aliases: Vec<ClientAliasView>,
    /// berth's `allowedCallers` (service connect only): the services that may call this
    /// port over the mesh; absent, any service of the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_callers: Option<Vec<String>>,
    /// The SPIFFE identity the port's tasks present in the mesh (service connect only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The names DNS answers for this port: `<discoveryName>.<namespace>`, the
    /// aliases, and the SRV target names of the endpoints published.
    pub dns_names: Vec<String>,
    pub ttl: u32,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAliasView {
    pub port: u16,
    pub dns_name: String,
}

/// One task's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    /// `ip:port` (the host's address and port for bridge and host tasks).
    pub address: String,
    pub task_id: String,
    /// The mesh target's health for a service connect port; for a registry, healthy
    /// or unhealthy by DNS's rules with the reason.
    pub health: TargetHealth,
    pub in_flight: u64,
    pub ejected: bool,
    /// Whether DNS answers with it (healthy, or failing open when none is).
    pub published: bool,
    /// Why DNS does not count it healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Builds the endpoint ports of `service` from the discovery builder's groups.
pub fn endpoint_ports(
    service: &berth_model::ecs::Service,
    groups: Vec<discovery::EndpointGroup>,
) -> Vec<EndpointPort> {
    groups
        .into_iter()
        .map(|g| {
            let fqdn = g.fqdn();
            let mut dns_names = vec![fqdn];
            let (kind, port_name, target_group_arn, aliases, allowed_callers) = match &g.kind {
                GroupKind::Registry => ("serviceRegistry", None, None, Vec::new(), None),
                GroupKind::Mesh {
                    port_name,
                    target_group_arn,
                    aliases,
                    allowed_callers,
                } => (
                    "serviceConnect",
                    Some(port_name.clone()),
                    Some(target_group_arn.clone()),
                    aliases
                        .iter()
                        .map(|(port, dns_name)| ClientAliasView {
                            port: *port,
                            dns_name: dns_name.clone(),
                        })
                        .collect(),
                    allowed_callers.clone(),
                ),
            };
            let identity = matches!(g.kind, GroupKind::Mesh { .. })
                .then(|| {
                    SpiffeId::for_service(
                        service.cluster_name(),
                        &g.namespace,
                        &service.service_name,
                    )
                    .ok()
                })
                .flatten()
                .map(|id| id.to_string());
            for a in &aliases {
                if !dns_names.contains(&a.dns_name) {
                    dns_names.push(a.dns_name.clone());
                }
            }
            for e in g.endpoints.iter().filter(|e| e.published && e.srv) {
                dns_names.push(g.srv_target(e));
            }
            let endpoints = g
                .endpoints
                .iter()
                .map(|e| {
                    let health = match &e.mesh {
                        Some(v) => v.health.clone(),
                        None if matches!(g.kind, GroupKind::Mesh { .. }) => TargetHealth {
                            state: TargetHealthState::Unused,
                            reason: Some("Target.NotRegistered".into()),
                            description: None,
                        },
                        None => TargetHealth {
                            state: if e.healthy {
                                TargetHealthState::Healthy
                            } else {
                                TargetHealthState::Unhealthy
                            },
                            reason: None,
                            description: e.reason.clone(),
                        },
                    };
                    EndpointView {
                        address: format!("{}:{}", e.ip, e.port),
                        task_id: e.task_id.clone(),
                        health,
                        in_flight: e.mesh.as_ref().map(|v| v.in_flight).unwrap_or(0),
                        ejected: e.mesh.as_ref().is_some_and(|v| v.ejected),
                        published: e.published,
                        reason: e.reason.clone(),
                    }
                })
                .collect();
            EndpointPort {
                kind: kind.into(),
                namespace: g.namespace.clone(),
                discovery_name: g.discovery_name.clone(),
                port_name,
                target_group_arn,
                client_aliases: aliases,
                allowed_callers,
                identity,
                dns_names,
                ttl: g.ttl,
                endpoints,
            }
        })
        .collect()
}

async fn service_endpoints(
    State(s): St,
    Path((cluster, service)): Path<(String, String)>,
) -> ApiResult<Vec<EndpointPort>> {
    let statuses = s.data_plane.target_statuses();
    let input = discovery::read_input(&s.db, &statuses).await?;
    let svc = match input
        .services
        .iter()
        .find(|x| x.cluster_name() == cluster && x.service_name == service)
    {
        Some(svc) => svc.clone(),
        None => {
            // A service outside discovery has no endpoints; one that does not exist is
            // an error.
            let stored =
                s.db.get::<berth_model::ecs::Service>(&db::service_key(&cluster, &service))
                    .await?;
            return match stored {
                Some(_) => Ok(Json(Vec::new())),
                None => Err(ApiError::service_not_found(&cluster, &service)),
            };
        }
    };
    Ok(Json(endpoint_ports(&svc, input.endpoint_groups(&svc))))
}

#[cfg(test)]
mod tests;
