//! Services: every CreateService member, typed, their validation, and the deployments
//! and events berth records on a service.

use serde::{Deserialize, Serialize};

use crate::error::{check_name, check_range, Result, ValidationError};
use crate::time::Timestamp;

use super::defaults::{null_as_empty, DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT};
use super::field_support::{refuse, FieldNotApplied, NotAppliedList};
use super::placement::{PlacementConstraint, PlacementStrategy};
use super::service_connect::ServiceConnectConfiguration;
use super::tags::{check_tags, Tag};

// ---- Service ----

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchedulingStrategy {
    #[default]
    Replica,
    Daemon,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
    /// berth's breaker never resets its count (as ECS with `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_on_healthy_task: Option<bool>,
    /// berth's breaker uses ECS's default threshold, `BOUNDED_PERCENT` 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_configuration: Option<ThresholdConfiguration>,
}

/// `deploymentCircuitBreaker.thresholdConfiguration.type` (botocore's `ThresholdType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThresholdType {
    Count,
    BoundedPercent,
    UnboundedPercent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdConfiguration {
    #[serde(rename = "type")]
    pub kind: ThresholdType,
    pub value: u32,
}

impl ThresholdConfiguration {
    /// ECS's default, which is what berth's breaker computes: clamp(⌈desired × 50 %⌉,
    /// 10, 200).
    pub const DEFAULT: ThresholdConfiguration = ThresholdConfiguration {
        kind: ThresholdType::BoundedPercent,
        value: 50,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentConfiguration {
    #[serde(default = "d_max_percent")]
    pub maximum_percent: u32,
    #[serde(default = "d_min_healthy")]
    pub minimum_healthy_percent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<DeploymentAlarms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_time_in_minutes: Option<u32>,
    /// Kept as written only to refuse it by name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub lifecycle_hooks: Vec<serde_json::Value>,
    /// Kept as written only to refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_configuration: Option<serde_json::Value>,
    /// Kept as written only to refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_configuration: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentAlarms {
    pub alarm_names: Vec<String>,
    pub rollback: bool,
    pub enable: bool,
}

/// `deploymentConfiguration.strategy` (botocore's `DeploymentStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStrategy {
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

/// `deploymentController.type` (botocore's `DeploymentControllerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentControllerType {
    #[serde(rename = "ECS")]
    Ecs,
    CodeDeploy,
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub kind: DeploymentControllerType,
}

/// `propagateTags` (botocore's `PropagateTags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropagateTags {
    TaskDefinition,
    Service,
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsVpcConfiguration {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subnets: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_public_ip: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awsvpc_configuration: Option<AwsVpcConfiguration>,
}

/// `serviceRegistries[]`: publish the service's healthy tasks in DNS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRegistry {
    /// The discovery service:
    /// `arn:berth:servicediscovery:<region>:<account>:service/<namespace>/<name>`; the
    /// tasks are published as `<name>.<namespace>` (see [`crate::servicediscovery`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_arn: Option<String>,
    /// The port an awsvpc task's endpoint is reported with when `containerPort` is not
    /// given (berth publishes awsvpc tasks as A records, which carry no port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The container and port whose (host) port SRV records carry; required in bridge
    /// and host mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityProviderStrategyItem {
    pub capacity_provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricConfiguration {
    pub metric_names: Vec<String>,
    pub resolution_seconds: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringConfiguration {
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub metric_configurations: Vec<MetricConfiguration>,
}

fn d_max_percent() -> u32 {
    DEFAULT_MAXIMUM_PERCENT
}
fn d_min_healthy() -> u32 {
    DEFAULT_MINIMUM_HEALTHY_PERCENT
}

impl Default for DeploymentConfiguration {
    fn default() -> Self {
        Self {
            maximum_percent: DEFAULT_MAXIMUM_PERCENT,
            minimum_healthy_percent: DEFAULT_MINIMUM_HEALTHY_PERCENT,
            deployment_circuit_breaker: None,
            alarms: None,
            strategy: None,
            bake_time_in_minutes: None,
            lifecycle_hooks: Vec::new(),
            linear_configuration: None,
            canary_configuration: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLoadBalancer {
    /// The target group's ARN; a stack file may give `targetGroupName` instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_group_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_name: Option<String>,
    pub container_name: String,
    pub container_port: u32,
    /// A Classic Load Balancer's name: refused (see [`super::field_support`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    /// Blue/green target groups and listener rules: refused, kept as written only to
    /// refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_configuration: Option<serde_json::Value>,
}

/// A deployment's place in its service, spelled as ECS spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeploymentStatus {
    /// The deployment of the service's current task definition.
    #[default]
    Primary,
    /// An older deployment whose tasks are still being replaced.
    Active,
    /// A deployment that is over.
    Inactive,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Primary => "PRIMARY",
            DeploymentStatus::Active => "ACTIVE",
            DeploymentStatus::Inactive => "INACTIVE",
        }
    }
}

/// How a deployment's rollout stands, spelled as ECS spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    /// Tasks are still being started or replaced. Also what an empty value written by
    /// earlier versions of berth (an older deployment recorded without a state) reads as.
    #[default]
    #[serde(alias = "")]
    InProgress,
    /// The deployment reached its desired count of healthy tasks.
    Completed,
    /// The deployment circuit breaker stopped the deployment.
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::InProgress => "IN_PROGRESS",
            RolloutState::Completed => "COMPLETED",
            RolloutState::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    pub desired_count: u32,
    pub pending_count: u32,
    pub running_count: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub rollout_state: RolloutState,
    #[serde(default)]
    pub rollout_state_reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: Timestamp,
    pub message: String,
}

/// The most events a service keeps (ECS shows the latest 100).
pub const MAX_SERVICE_EVENTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub service_name: String,
    /// The cluster's name (in a stack file) or ARN.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// `family`, `family:revision` or a task definition ARN.
    pub task_definition: String,
    #[serde(default)]
    pub desired_count: i64,
    #[serde(default = "d_launch_type")]
    pub launch_type: String,
    #[serde(default)]
    pub scheduling_strategy: SchedulingStrategy,
    #[serde(default)]
    pub deployment_configuration: DeploymentConfiguration,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancers: Vec<ServiceLoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub placement_constraints: Vec<PlacementConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_registries: Vec<ServiceRegistry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<Tag>,
    #[serde(
        rename = "enableECSManagedTags",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub enable_ecs_managed_tags: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    /// Kept as written only to refuse it by name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_configurations: Vec<serde_json::Value>,
    /// Kept as written only to refuse it by name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub vpc_lattice_configurations: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringConfiguration>,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default)]
    pub running_count: u32,
    #[serde(default)]
    pub pending_count: u32,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub deployments: Vec<Deployment>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub events: Vec<ServiceEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

pub const DEFAULT_CLUSTER: &str = "default";

fn default_cluster() -> String {
    DEFAULT_CLUSTER.to_string()
}
fn d_launch_type() -> String {
    "EC2".to_string()
}

impl Service {
    pub fn validate(&self) -> Result<()> {
        check_name("serviceName", &self.service_name, 255)?;
        if self.task_definition.trim().is_empty()
            || crate::arn::parse_family_revision(&self.task_definition).is_none()
        {
            return Err(ValidationError::new(
                "taskDefinition",
                format!(
                    "must be a family, family:revision or task definition ARN, got {:?}",
                    self.task_definition
                ),
            ));
        }
        if self.desired_count < 0 {
            return Err(ValidationError::new(
                "desiredCount",
                format!("must be 0 or more, got {}", self.desired_count),
            ));
        }
        if self.desired_count > 10_000 {
            return Err(ValidationError::new(
                "desiredCount",
                format!("must be at most 10000, got {}", self.desired_count),
            ));
        }
        if !matches!(
            self.launch_type.as_str(),
            "EC2" | "FARGATE" | "EXTERNAL" | "MANAGED_INSTANCES"
        ) {
            return Err(ValidationError::new(
                "launchType",
                format!(
                    "must be EC2, FARGATE, EXTERNAL or MANAGED_INSTANCES, got {:?}",
                    self.launch_type
                ),
            ));
        }
        self.validate_capacity()?;
        let dc = &self.deployment_configuration;
        check_range(
            "deploymentConfiguration.maximumPercent",
            dc.maximum_percent,
            100,
            2000,
        )?;
        check_range(
            "deploymentConfiguration.minimumHealthyPercent",
            dc.minimum_healthy_percent,
            0,
            100,
        )?;
        if self.load_balancers.len() > 5 {
            return Err(ValidationError::new(
                "loadBalancers",
                format!("may list at most 5, got {}", self.load_balancers.len()),
            ));
        }
        for (i, lb) in self.load_balancers.iter().enumerate() {
            let at = format!("loadBalancers[{i}]");
            if lb.target_group_arn.is_empty() && lb.target_group_name.is_none() {
                return Err(ValidationError::new(
                    at,
                    "must give targetGroupName or targetGroupArn",
                ));
            }
            check_range(&format!("{at}.containerPort"), lb.container_port, 1, 65535)?;
            if lb.load_balancer_name.is_some() {
                return Err(refuse(
                    format!("{at}.loadBalancerName"),
                    "LoadBalancer",
                    "loadBalancerName",
                ));
            }
            if lb.advanced_configuration.is_some() {
                return Err(refuse(
                    format!("{at}.advancedConfiguration"),
                    "LoadBalancer",
                    "advancedConfiguration",
                ));
            }
        }
        if let Some(g) = self.health_check_grace_period_seconds {
            check_range("healthCheckGracePeriodSeconds", g, 0, 2_147_483_647)?;
        }
        super::placement::check_strategies(&self.placement_strategy)?;
        super::placement::check_service_constraints(&self.placement_constraints)?;
        if self.scheduling_strategy == SchedulingStrategy::Daemon && self.desired_count != 0 {
            return Err(ValidationError::new(
                "desiredCount",
                "a DAEMON service runs one task on each container instance; remove desiredCount",
            ));
        }
        self.validate_service_members()
    }

    /// The CreateService members past berth's original set: tags, enum values, and the
    /// members berth refuses.
    fn validate_service_members(&self) -> Result<()> {
        const SHAPE: &str = "CreateServiceRequest";
        check_tags("tags", &self.tags)?;
        if let Some(r) = &self.availability_zone_rebalancing {
            if !matches!(r.as_str(), "ENABLED" | "DISABLED") {
                return Err(ValidationError::new(
                    "availabilityZoneRebalancing",
                    format!("must be ENABLED or DISABLED, got {r:?}"),
                ));
            }
        }
        if let Some(ip) = self
            .network_configuration
            .as_ref()
            .and_then(|n| n.awsvpc_configuration.as_ref())
            .and_then(|a| a.assign_public_ip.as_deref())
        {
            if !matches!(ip, "ENABLED" | "DISABLED") {
                return Err(ValidationError::new(
                    "networkConfiguration.awsvpcConfiguration.assignPublicIp",
                    format!("must be ENABLED or DISABLED, got {ip:?}"),
                ));
            }
        }
        if self
            .deployment_controller
            .as_ref()
            .is_some_and(|d| d.kind != DeploymentControllerType::Ecs)
        {
            return Err(refuse(
                "deploymentController.type",
                SHAPE,
                "deploymentController",
            ));
        }
        let dc = &self.deployment_configuration;
        const DC: &str = "DeploymentConfiguration";
        if dc
            .strategy
            .is_some_and(|s| s != DeploymentStrategy::Rolling)
        {
            return Err(refuse("deploymentConfiguration.strategy", DC, "strategy"));
        }
        if !dc.lifecycle_hooks.is_empty() {
            return Err(refuse(
                "deploymentConfiguration.lifecycleHooks",
                DC,
                "lifecycleHooks",
            ));
        }
        if dc.linear_configuration.is_some() {
            return Err(refuse(
                "deploymentConfiguration.linearConfiguration",
                DC,
                "linearConfiguration",
            ));
        }
        if dc.canary_configuration.is_some() {
            return Err(refuse(
                "deploymentConfiguration.canaryConfiguration",
                DC,
                "canaryConfiguration",
            ));
        }
        if let Some(sc) = &self.service_connect_configuration {
            sc.validate()
                .map_err(|e| e.within("serviceConnectConfiguration"))?;
        }
        crate::servicediscovery::check_service_registries(&self.service_registries)?;
        if !self.volume_configurations.is_empty() {
            return Err(refuse(
                "volumeConfigurations",
                SHAPE,
                "volumeConfigurations",
            ));
        }
        if !self.vpc_lattice_configurations.is_empty() {
            return Err(refuse(
                "vpcLatticeConfigurations",
                SHAPE,
                "vpcLatticeConfigurations",
            ));
        }
        Ok(())
    }

    /// The members this service sets that berth stores and returns but does not apply,
    /// each with its path and reason. `berth apply` reports them as warnings.
    pub fn not_applied(&self) -> Vec<FieldNotApplied> {
        const SVC: &str = "CreateServiceRequest";
        let mut n = NotAppliedList::default();
        n.note(
            self.availability_zone_rebalancing.as_deref() == Some("ENABLED"),
            "availabilityZoneRebalancing",
            SVC,
            "availabilityZoneRebalancing",
        );
        n.note(
            self.client_token.is_some(),
            "clientToken",
            SVC,
            "clientToken",
        );
        n.note(
            self.platform_version.is_some(),
            "platformVersion",
            SVC,
            "platformVersion",
        );
        n.note(self.role.is_some(), "role", SVC, "role");
        n.note(
            self.network_configuration.is_some(),
            "networkConfiguration",
            SVC,
            "networkConfiguration",
        );
        n.note(
            self.enable_ecs_managed_tags,
            "enableECSManagedTags",
            SVC,
            "enableECSManagedTags",
        );
        n.note(
            self.propagate_tags
                .is_some_and(|p| p != PropagateTags::None),
            "propagateTags",
            SVC,
            "propagateTags",
        );
        n.note(self.monitoring.is_some(), "monitoring", SVC, "monitoring");
        if let Some(sc) = &self.service_connect_configuration {
            sc.note_not_applied("serviceConnectConfiguration", &mut n);
        }
        const DC: &str = "DeploymentConfiguration";
        let dc = &self.deployment_configuration;
        n.note(
            dc.alarms.as_ref().is_some_and(|a| a.enable),
            "deploymentConfiguration.alarms",
            DC,
            "alarms",
        );
        n.note(
            dc.bake_time_in_minutes.is_some(),
            "deploymentConfiguration.bakeTimeInMinutes",
            DC,
            "bakeTimeInMinutes",
        );
        if let Some(cb) = &dc.deployment_circuit_breaker {
            const CB: &str = "DeploymentCircuitBreaker";
            let at = "deploymentConfiguration.deploymentCircuitBreaker";
            n.note(
                cb.reset_on_healthy_task == Some(true),
                format!("{at}.resetOnHealthyTask"),
                CB,
                "resetOnHealthyTask",
            );
            n.note(
                cb.threshold_configuration
                    .as_ref()
                    .is_some_and(|t| *t != ThresholdConfiguration::DEFAULT),
                format!("{at}.thresholdConfiguration"),
                CB,
                "thresholdConfiguration",
            );
        }
        n.0
    }

    /// The user-written part, for comparing a stack file's service with the stored one.
    pub fn spec(&self) -> Service {
        Service {
            service_arn: String::new(),
            cluster_arn: String::new(),
            status: String::new(),
            running_count: 0,
            pending_count: 0,
            deployments: Vec::new(),
            events: Vec::new(),
            created_at: None,
            ..self.clone()
        }
    }

    pub fn cluster_name(&self) -> &str {
        crate::arn::last_segment(&self.cluster)
    }

    /// Adds an event, newest first, keeping at most [`MAX_SERVICE_EVENTS`].
    pub fn push_event(&mut self, id: String, at: Timestamp, message: String) {
        self.events.insert(
            0,
            ServiceEvent {
                id,
                created_at: at,
                message,
            },
        );
        self.events.truncate(MAX_SERVICE_EVENTS);
    }
}
