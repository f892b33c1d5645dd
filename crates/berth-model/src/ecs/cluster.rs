//! Clusters and the container instances that register with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{check_name, Result};
use crate::time::Timestamp;

// ---- Cluster ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default)]
    pub registered_container_instances_count: u32,
    #[serde(default)]
    pub running_tasks_count: u32,
    #[serde(default)]
    pub pending_tasks_count: u32,
    #[serde(default)]
    pub active_services_count: u32,
    /// The namespace the cluster's Service Connect services use when their
    /// `serviceConnectConfiguration` names none (ECS's `serviceConnectDefaults`). Apply
    /// creates the namespace when it does not exist, as CreateCluster does, and stores
    /// its ARN here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_connect_defaults: Option<ClusterServiceConnectDefaults>,
}

/// `serviceConnectDefaults` of a cluster (botocore's `ClusterServiceConnectDefaults`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterServiceConnectDefaults {
    /// A namespace name, or its ARN.
    pub namespace: String,
}

impl ClusterServiceConnectDefaults {
    /// The namespace's name: the last segment when given as an ARN.
    pub fn namespace_name(&self) -> &str {
        crate::arn::last_segment(&self.namespace)
    }
}

impl Cluster {
    pub fn validate(&self) -> Result<()> {
        check_name("clusterName", &self.cluster_name, 255)?;
        if let Some(d) = &self.service_connect_defaults {
            let at = "serviceConnectDefaults.namespace";
            crate::servicediscovery::check_dns_name(at, d.namespace_name())?;
            if d.namespace_name() != d.namespace_name().to_ascii_lowercase() {
                return Err(crate::error::ValidationError::new(
                    at,
                    format!("must be lowercase, got {:?}", d.namespace_name()),
                ));
            }
        }
        Ok(())
    }
}

// ---- ContainerInstance ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: String,
    #[serde(default)]
    pub integer_value: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub string_set_value: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
    pub cluster_arn: String,
    /// ACTIVE or DRAINING.
    pub status: String,
    pub agent_connected: bool,
    pub registered_resources: Vec<Resource>,
    pub remaining_resources: Vec<Resource>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub running_tasks_count: u32,
    pub pending_tasks_count: u32,
    pub registered_at: Timestamp,
    /// The runtime the instance's agent uses: `process` or `docker`.
    pub runtime: String,
    /// When the agent was last seen going away (`agentConnected` turned false); `None`
    /// while it is connected. berth's own member: after `--agent-lost-after` the
    /// instance's tasks are stopped and its services' tasks replaced elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_disconnected_at: Option<Timestamp>,
    /// When the agent was last heard from (its registration, then a heartbeat about every
    /// 15 s, recorded by the control plane it is connected to). berth's own member: an
    /// instance still marked connected whose heartbeat is older than three intervals is
    /// marked disconnected by the leader (its control plane may have died with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_heartbeat_at: Option<Timestamp>,
}
