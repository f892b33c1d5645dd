//! Apply's part for service discovery and the mesh: the stack's namespaces (stored under
//! `/namespaces/<name>`), and the checks of services' `serviceConnectConfiguration` and
//! `serviceRegistries` against what the stack and the store hold together: the
//! namespace exists, each `portName` names a port mapping of the service's task
//! definition, and no client alias or discovery name is claimed by two services.
//!
//! What it does not do: write anything itself (it adds operations to apply's batch) or
//! derive the mesh target groups (the reconcilers build them from the services).

use std::collections::{BTreeMap, BTreeSet};

use berth_model::ecs::{Cluster, Service, TaskDefinition};
use berth_model::servicediscovery::{
    check_against_task_definition, namespace_arn, parse_discovery_service_arn, DiscoveryClaims,
    Namespace,
};
use berth_model::time::Timestamp;
use berth_store::{Expect, Op};

use super::change::{change, Change};
use crate::db::{self, encode, Db};
use crate::error::ControlError;

/// Adds the writes of the stack's namespaces to `ops`; returns every namespace name
/// there will be (stored and in the stack).
pub(super) async fn apply_namespaces(
    db: &Db,
    namespaces: &[Namespace],
    now: Timestamp,
    ops: &mut Vec<Op>,
    changes: &mut Vec<Change>,
) -> Result<BTreeSet<String>, ControlError> {
    let mut names: BTreeSet<String> = db.namespaces().await?.into_iter().map(|n| n.name).collect();
    for n in namespaces {
        let key = db::namespace_key(&n.name);
        let existing = db.get::<Namespace>(&key).await?;
        let stored = Namespace {
            arn: namespace_arn(&n.name),
            created_at: existing
                .as_ref()
                .and_then(|e| e.value.created_at)
                .or(Some(now)),
            ..n.spec()
        };
        names.insert(n.name.clone());
        match existing {
            Some(e) if e.value == stored => changes.push(change("namespace", &n.name, "unchanged")),
            Some(e) => {
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::ModRevision(e.mod_revision)),
                });
                changes.push(change("namespace", &n.name, "updated"));
            }
            None => {
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                });
                changes.push(change("namespace", &n.name, "created"));
            }
        }
    }
    Ok(names)
}

/// The stack's namespaces plus one for each cluster of the stack whose
/// `serviceConnectDefaults` name a namespace neither the stack nor the store has (ECS's
/// CreateCluster creates it).
pub(super) async fn with_cluster_default_namespaces(
    db: &Db,
    namespaces: &[Namespace],
    clusters: &[Cluster],
) -> Result<Vec<Namespace>, ControlError> {
    let mut out = namespaces.to_vec();
    for c in clusters {
        let Some(d) = &c.service_connect_defaults else {
            continue;
        };
        let name = d.namespace_name();
        if out.iter().any(|n| n.name == name)
            || db
                .get::<Namespace>(&db::namespace_key(name))
                .await?
                .is_some()
        {
            continue;
        }
        out.push(Namespace {
            name: name.to_string(),
            description: Some(format!(
                "created for the serviceConnectDefaults of cluster {}",
                c.cluster_name
            )),
            dns_ttl_seconds: berth_model::discovery::DEFAULT_DNS_TTL_SECONDS,
            arn: String::new(),
            created_at: None,
        });
    }
    Ok(out)
}

/// Gives a Service Connect service that names no namespace its cluster's default
/// (`cluster_default`), or refuses it at `<at>.serviceConnectConfiguration.namespace`
/// when the cluster has none.
pub(super) fn default_service_connect_namespace(
    at: &str,
    service: &mut Service,
    cluster_default: Option<&str>,
) -> Result<(), ControlError> {
    let Some(sc) = service
        .service_connect_configuration
        .as_mut()
        .filter(|c| c.enabled && c.namespace.is_none())
    else {
        return Ok(());
    };
    match cluster_default {
        Some(ns) => {
            sc.namespace = Some(ns.to_string());
            Ok(())
        }
        None => Err(ControlError::invalid(
            format!("{at}.serviceConnectConfiguration.namespace"),
            format!(
                "is required when enabled is true and cluster {} has no serviceConnectDefaults: \
                 name a namespace from the stack's namespaces, or give the cluster one",
                service.cluster
            ),
        )),
    }
}

/// One service of the stack as apply resolved it.
pub(super) struct ResolvedService {
    /// Its path in the stack, `services[i]`.
    pub at: String,
    /// The spec as it will be stored (cluster name, task definition ARN).
    pub service: Service,
    pub task_definition: TaskDefinition,
}

/// Checks the stack's services' discovery configurations against the namespaces there
/// will be, their task definitions, and every other service (the stack's and the
/// stored ones it does not replace).
pub(super) async fn check_services(
    db: &Db,
    namespaces: &BTreeSet<String>,
    services: &[ResolvedService],
) -> Result<(), ControlError> {
    for r in services {
        check_namespaces(&r.service, namespaces)
            .map_err(|e| ControlError::from(e.within(&r.at)))?;
        check_against_task_definition(&r.service, &r.task_definition)
            .map_err(|e| ControlError::from(e.within(&r.at)))?;
    }
    let in_stack: BTreeSet<(String, String)> = services
        .iter()
        .map(|r| {
            (
                r.service.cluster_name().to_string(),
                r.service.service_name.clone(),
            )
        })
        .collect();
    let mut claims = DiscoveryClaims::default();
    let mut definitions: BTreeMap<String, Option<TaskDefinition>> = BTreeMap::new();
    for stored in db.services(None).await? {
        let s = &stored.value;
        if s.status != "ACTIVE"
            || in_stack.contains(&(s.cluster_name().to_string(), s.service_name.clone()))
            || (s.service_connect_configuration.is_none() && s.service_registries.is_empty())
        {
            continue;
        }
        if !definitions.contains_key(&s.task_definition) {
            let td = db.resolve_task_definition(&s.task_definition).await?;
            definitions.insert(s.task_definition.clone(), td);
        }
        let td = definitions[&s.task_definition].as_ref();
        // Stored services were checked when they were applied; a claim between two of
        // them cannot be the stack's fault, so it is not reported here.
        let _ = claims.claim(&owner(s), s, td);
    }
    for r in services {
        claims
            .claim(&owner(&r.service), &r.service, Some(&r.task_definition))
            .map_err(|e| ControlError::from(e.within(&r.at)))?;
    }
    Ok(())
}

/// User target groups may not take a name of the mesh's derived groups.
pub(super) fn check_target_group_names(
    groups: &[berth_model::elb::TargetGroup],
) -> Result<(), ControlError> {
    for (i, g) in groups.iter().enumerate() {
        if g.target_group_name
            .starts_with(crate::mesh::MESH_TARGET_GROUP_PREFIX)
        {
            return Err(ControlError::invalid(
                format!("targetGroups[{i}].targetGroupName"),
                format!(
                    "names starting with {:?} belong to the mesh's target groups, which berth derives from services; choose another name, got {:?}",
                    crate::mesh::MESH_TARGET_GROUP_PREFIX, g.target_group_name
                ),
            ));
        }
    }
    Ok(())
}

fn owner(s: &Service) -> String {
    format!("service {}/{}", s.cluster_name(), s.service_name)
}

/// The namespaces a service names exist (in the stack or the store).
fn check_namespaces(
    s: &Service,
    namespaces: &BTreeSet<String>,
) -> Result<(), berth_model::ValidationError> {
    let missing = |field: String, ns: &str| {
        berth_model::ValidationError::new(
            field,
            format!("namespace {ns:?} does not exist; add it under namespaces"),
        )
    };
    if let Some(ns) = s
        .service_connect_configuration
        .as_ref()
        .filter(|c| c.enabled)
        .and_then(|c| c.namespace_name())
    {
        if !namespaces.contains(ns) {
            return Err(missing("serviceConnectConfiguration.namespace".into(), ns));
        }
    }
    for (i, r) in s.service_registries.iter().enumerate() {
        if let Some((ns, _)) = r
            .registry_arn
            .as_deref()
            .and_then(parse_discovery_service_arn)
        {
            if !namespaces.contains(ns) {
                return Err(missing(format!("serviceRegistries[{i}].registryArn"), ns));
            }
        }
    }
    Ok(())
}
