//! Tasks: one running copy of a task definition, with its containers.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

use super::container::TransportProtocol;

// ---- Task ----

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    #[default]
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopCode {
    TaskFailedToStart,
    EssentialContainerExited,
    UserInitiated,
    ServiceSchedulerInitiated,
    SpotInterruption,
    TerminationNotice,
    InfrastructureHealth,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    pub bind_ip: String,
    pub container_port: u32,
    pub host_port: u32,
    #[serde(default)]
    pub protocol: TransportProtocol,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub container_arn: String,
    pub name: String,
    pub image: String,
    pub last_status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    #[serde(default)]
    pub health_status: HealthStatus,
    /// The runtime's id for the container: a process id or a Docker container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// The task's own address in awsvpc mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    /// `service:<name>` for service tasks, `family:<family>` otherwise.
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    pub launch_type: String,
    /// The capacity provider of the service's strategy the task was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider_name: Option<String>,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub health_status: HealthStatus,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Whether `berth exec` may run commands in the task: its service's
    /// `enableExecuteCommand` when the task was started (ECS records it on the task).
    #[serde(default)]
    pub enable_execute_command: bool,
    /// Bumped on every change, as ECS does.
    #[serde(default)]
    pub version: u64,
}

impl Task {
    /// The task's id (the last segment of its ARN).
    pub fn id(&self) -> &str {
        crate::arn::last_segment(&self.task_arn)
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        crate::arn::last_segment(&self.cluster_arn)
    }

    /// The service name when the task belongs to a service.
    pub fn service_name(&self) -> Option<&str> {
        self.group.strip_prefix("service:")
    }

    /// Whether the task is on its way out or gone.
    pub fn is_stopping(&self) -> bool {
        self.desired_status == TaskStatus::Stopped || self.last_status >= TaskStatus::Deactivating
    }
}
