//! The data plane configuration of an agent's node, which the node link serves it
//! ([`agent_node_config`]): the load balancers whose `berth.nodes` choose its instance
//! with the target groups they forward to, and the mesh as a server's node gets it
//! ([`ProxyFeed::push_config`](super::ProxyFeed::push_config)): every mesh target group
//! and client-alias listener, and the mutual TLS of that node.
//!
//! The mutual TLS is planned per requesting instance ([`crate::mesh_tls::plan`] with the
//! agent's instance as the node): its inbound endpoints are the mesh targets of tasks on
//! that instance, its callers that instance's awsvpc tasks, its node identity
//! `spiffe://<cluster>/ns/_berth/sa/node-<instance id>`. The certificates (keys
//! included) are issued here, in memory, by the mesh CA, one book per agent instance
//! ([`AgentNodesMesh`]), reissued half-way to expiry; the agent reads its configuration
//! every few seconds, so it picks the renewed ones up. They reach the agent only inside
//! the node link's mutual TLS.
//!
//! What it does not do: apply anything (the agent's proxy does) or decide target health
//! (the agent's own health checks route its traffic; the servers' checks are the ones the
//! reconcilers read).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::Duration;

use berth_model::arn;
use berth_model::dataplane::{MeshTlsConfig, ProxyConfig, TargetGroupConfig};
use berth_model::elb_nodes;
use berth_model::time::{self, Timestamp};

use super::read_mesh_tls_plan;
use super::{attach_hops, mesh_ports_of, mesh_target_groups, node_view, proxy_targets};
use crate::db::Db;
use crate::error::ControlError;
use crate::mesh;
use crate::mesh_ca::DEFAULT_MESH_CERTIFICATE_VALIDITY;
use crate::mesh_tls::{AuthorityCache, CertificateBook, MeshNode, MeshTlsPlan};

/// The mesh certificates of agents' nodes: the CA as last read and one certificate book
/// per agent instance ARN, each holding exactly what that node presents.
pub struct AgentNodesMesh {
    validity: RwLock<Duration>,
    state: tokio::sync::Mutex<(AuthorityCache, BTreeMap<String, CertificateBook>)>,
}

impl Default for AgentNodesMesh {
    fn default() -> Self {
        Self {
            validity: RwLock::new(DEFAULT_MESH_CERTIFICATE_VALIDITY),
            state: tokio::sync::Mutex::default(),
        }
    }
}

impl AgentNodesMesh {
    /// Issues certificates valid for `validity` from now on (the servers'
    /// `--mesh-certificate-validity`).
    pub fn set_certificate_validity(&self, validity: Duration) {
        *self.validity.write().expect("agent mesh validity lock") = validity;
    }

    /// The mutual TLS of `plan`'s node (`instance_arn`) at `now`: loads the CA, makes the
    /// node's book hold a current certificate for each identity the node presents, and
    /// forgets the books of instances no longer in `known_instances`.
    async fn config(
        &self,
        db: &Db,
        instance_arn: &str,
        plan: &MeshTlsPlan,
        known_instances: &BTreeSet<&str>,
        now: Timestamp,
    ) -> Result<MeshTlsConfig, ControlError> {
        let validity = *self.validity.read().expect("agent mesh validity lock");
        let mut state = self.state.lock().await;
        let (authority, books) = &mut *state;
        let ca = authority.authority(db, now).await?;
        books.retain(|arn, _| known_instances.contains(arn.as_str()));
        let book = books.entry(instance_arn.to_string()).or_default();
        let issued = book.refresh(&ca, &plan.node_identities, now, validity)?;
        if issued > 0 {
            tracing::info!(issued, instance = %instance_arn, "issued mesh certificates for an agent's node");
        }
        Ok(plan.config(ca.trust(), book))
    }
}

/// The data plane configuration of the node of container instance `instance_arn` when
/// that node is an agent's: the load balancers whose `berth.nodes` choose it
/// ([`elb_nodes`]) and the target groups they forward to, with their targets; the mesh's
/// target groups (each target with its hop) and client-alias listeners; and, while a
/// service is in the mesh, the node's mutual TLS with certificates from `mesh`. An
/// instance not in the store serves nothing.
pub async fn agent_node_config(
    db: &Db,
    mesh: &AgentNodesMesh,
    instance_arn: &str,
) -> Result<ProxyConfig, ControlError> {
    let instances = db.instances(None).await?;
    let Some(inst) = instances
        .iter()
        .find(|i| i.container_instance_arn == instance_arn)
    else {
        return Ok(ProxyConfig::default());
    };
    let view = node_view(inst);
    let lbs: Vec<_> = db
        .load_balancers()
        .await?
        .into_iter()
        .filter(|lb| elb_nodes::serves_on(lb, &view))
        .collect();
    let forwarded: BTreeSet<String> = lbs
        .iter()
        .flat_map(elb_nodes::forwarded_target_groups)
        .collect();
    let targets = db.targets(None).await?;
    let mut target_groups: Vec<TargetGroupConfig> = db
        .target_groups()
        .await?
        .into_iter()
        .filter(|tg| forwarded.contains(&tg.target_group_arn))
        .map(|tg| TargetGroupConfig {
            targets: proxy_targets(&targets, &tg.target_group_arn),
            group: tg,
            mesh: None,
        })
        .collect();
    let ports = mesh_ports_of(db).await?;
    let mut mesh_groups = mesh_target_groups(&ports, &targets);
    let node = node_of(instance_arn)?;
    let plan =
        read_mesh_tls_plan(db, &ports, &targets, Some(instance_arn), node.identity()?).await?;
    let mesh_tls = match plan {
        Some(plan) => {
            attach_hops(&mut mesh_groups, &plan);
            let known: BTreeSet<&str> = instances
                .iter()
                .map(|i| i.container_instance_arn.as_str())
                .collect();
            Some(
                mesh.config(db, instance_arn, &plan, &known, time::now())
                    .await?,
            )
        }
        None => None,
    };
    target_groups.extend(mesh_groups);
    Ok(ProxyConfig {
        load_balancers: lbs,
        target_groups,
        mesh_listeners: mesh::mesh_listeners(&ports),
        mesh_tls,
    })
}

/// The mesh node of container instance `instance_arn`.
pub(super) fn node_of(instance_arn: &str) -> Result<MeshNode, ControlError> {
    let (cluster, instance_id) = arn::container_instance_parts(instance_arn).ok_or_else(|| {
        ControlError::invalid(
            "containerInstanceArn",
            format!("not a container instance ARN: {instance_arn}"),
        )
    })?;
    Ok(MeshNode {
        cluster: cluster.to_string(),
        instance_id: instance_id.to_string(),
    })
}
