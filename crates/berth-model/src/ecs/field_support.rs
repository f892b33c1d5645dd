//! What berth does with the members of ECS's RegisterTaskDefinition, ContainerDefinition
//! and CreateService that it does not simply apply: [`UNSUPPORTED`] lists each one, with
//! the values concerned and the reason, and the README's stack file reference shows the
//! same table (a test keeps the two equal, and checks every member of botocore's ECS
//! model is either applied or listed here).
//!
//! A member marked [`Support::NotApplied`] is accepted, stored and described as given,
//! and reported by the resource's `not_applied` (which `berth apply` prints as
//! warnings). One marked [`Support::Refused`] fails validation
//! with its reason, which says what ECS allows and what berth does not do.
//! This module knows no resource type (they import it); it decides nothing about Docker: which members the runtime applies, and how,
//! is berth-runtime's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// How berth handles a member it does not simply apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Accepted, stored and described as given; not applied; reported as a warning.
    NotApplied,
    /// Refused with the reason.
    Refused,
}

impl Support {
    /// The word the README's table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::NotApplied => "not applied",
            Support::Refused => "refused",
        }
    }
}

/// One row of [`UNSUPPORTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedField {
    /// The botocore shape the member belongs to (`ContainerDefinition`, ...).
    pub shape: &'static str,
    pub member: &'static str,
    /// The values concerned: `any` or the values that are not applied or refused.
    pub values: &'static str,
    pub support: Support,
    pub reason: &'static str,
}

const fn row(
    shape: &'static str,
    member: &'static str,
    values: &'static str,
    support: Support,
    reason: &'static str,
) -> UnsupportedField {
    UnsupportedField {
        shape,
        member,
        values,
        support,
        reason,
    }
}

use Support::{NotApplied, Refused};

const TD: &str = "RegisterTaskDefinitionRequest";
const CD: &str = "ContainerDefinition";
const SVC: &str = "CreateServiceRequest";

/// Every member berth accepts but does not apply, or refuses.
pub const UNSUPPORTED: &[UnsupportedField] = &[
    // ---- RegisterTaskDefinitionRequest ----
    row(TD, "executionRoleArn", "any", NotApplied, "berth assumes it only to authorize reading the containers' secrets (so it is not applied without secrets); it pulls no images and sends no logs with it"),
    row(TD, "proxyConfiguration", "any", NotApplied, "berth sends no task traffic through an App Mesh proxy; the proxy container runs like any other"),
    row(TD, "inferenceAccelerators", "any", Refused, "ECS allowed Elastic Inference accelerators; berth has no accelerators to attach"),
    row(TD, "ephemeralStorage", "any", NotApplied, "berth does not size or limit a task's writable layer"),
    row(TD, "runtimePlatform", "any", NotApplied, "berth does not match the CPU architecture against its nodes"),
    row(TD, "enableFaultInjection", "true", NotApplied, "berth has no fault injection endpoints"),
    row("RuntimePlatform", "operatingSystemFamily", "WINDOWS_SERVER_*", Refused, "ECS allows LINUX and the WINDOWS_SERVER_* families; berth runs Linux containers only"),
    row("Volume", "efsVolumeConfiguration", "any", Refused, "ECS mounts Amazon EFS; berth cannot reach EFS: use host.sourcePath or dockerVolumeConfiguration"),
    row("Volume", "s3filesVolumeConfiguration", "any", Refused, "ECS mounts Amazon S3 Files; berth cannot reach S3: use host.sourcePath or dockerVolumeConfiguration"),
    row("Volume", "fsxWindowsFileServerVolumeConfiguration", "any", Refused, "ECS mounts FSx for Windows File Server in Windows tasks; berth runs Linux containers only"),
    row("Volume", "configuredAtLaunch", "true", Refused, "ECS attaches an Amazon EBS volume when the task launches; berth attaches no block volumes"),
    // ---- ContainerDefinition ----
    row(CD, "repositoryCredentials", "any", NotApplied, "berth pulls no images from private registries yet; the image must be on the node"),
    row(CD, "restartPolicy", "enabled: true", NotApplied, "berth does not restart a container in place; an essential container's exit stops the task and its service replaces it"),
    row(CD, "environmentFiles", "any", Refused, "ECS reads environment files from Amazon S3; berth cannot reach S3: list the variables in environment"),
    row(CD, "versionConsistency", "enabled", NotApplied, "berth runs the image as tagged on the node; it does not pin the tag to a digest"),
    row(CD, "logConfiguration", "logDriver awslogs", NotApplied, "kept in berth's own log store as stream {awslogs-stream-prefix}/{container name}/{task id} in its awslogs-group, which berth logs and the API read; nothing goes to CloudWatch Logs and awslogs-region is not used"),
    row(CD, "resourceRequirements", "any", Refused, "ECS allows GPU, InferenceAccelerator and NeuronDevice; berth schedules no GPUs or accelerators (no container instance registers any)"),
    row(CD, "firelensConfiguration", "any", Refused, "ECS runs a FireLens log router (fluentd or fluentbit); berth does not: use logConfiguration with a Docker log driver"),
    row(CD, "credentialSpecs", "any", Refused, "ECS allows Active Directory credential specs (gMSA); berth joins no directory"),
    row("PortMapping", "containerPortRange", "any", Refused, "ECS allows port ranges; berth maps single ports: list each port"),
    row("LogConfiguration", "logDriver", "awsfirelens, splunk", Refused, "ECS routes awsfirelens to a FireLens container and splunk to a Splunk endpoint; berth runs no FireLens and does not pass splunk on: use json-file, awslogs, syslog, fluentd, gelf, journald or none"),
    row("LogConfiguration", "secretOptions", "any", Refused, "ECS resolves secret options from Secrets Manager or Parameter Store; berth resolves secrets into a container's environment only: pass them in options"),
    // ---- CreateServiceRequest ----
    row(SVC, "availabilityZoneRebalancing", "ENABLED", NotApplied, "berth's container instances have no availability zones"),
    row(SVC, "clientToken", "any", NotApplied, "not needed: apply is idempotent by content"),
    row(SVC, "platformVersion", "any", NotApplied, "Fargate platform versions have no counterpart in berth"),
    row(SVC, "role", "any", NotApplied, "berth registers targets itself; it assumes no role"),
    row(SVC, "networkConfiguration", "any", NotApplied, "subnets, security groups and public IPs have no counterpart in berth; an awsvpc task gets its own address on berth's task network"),
    row(SVC, "deploymentController", "CODE_DEPLOY, EXTERNAL", Refused, "ECS allows ECS, CODE_DEPLOY and EXTERNAL; berth deploys with its own rolling controller only: use ECS (and weighted target groups for blue/green)"),
    row(SVC, "enableECSManagedTags", "true", NotApplied, "berth adds no managed tags to tasks"),
    row(SVC, "propagateTags", "TASK_DEFINITION, SERVICE", NotApplied, "berth does not copy tags to tasks"),
    row(SVC, "volumeConfigurations", "any", Refused, "ECS attaches managed Amazon EBS volumes; berth attaches no block volumes"),
    row(SVC, "vpcLatticeConfigurations", "any", Refused, "ECS registers tasks in VPC Lattice target groups; berth cannot: use berth's target groups in loadBalancers"),
    row(SVC, "monitoring", "any", NotApplied, "berth samples service metrics at its own fixed resolution"),
    row("DeploymentConfiguration", "alarms", "enable: true", NotApplied, "berth reads no CloudWatch alarms; the deployment circuit breaker still applies"),
    row("DeploymentConfiguration", "strategy", "BLUE_GREEN, LINEAR, CANARY", Refused, "ECS allows ROLLING, BLUE_GREEN, LINEAR and CANARY; berth deploys ROLLING only: shift weights between target groups for blue/green"),
    row("DeploymentConfiguration", "bakeTimeInMinutes", "any", NotApplied, "only blue/green, linear and canary deployments bake; berth deploys ROLLING"),
    row("DeploymentConfiguration", "lifecycleHooks", "any", Refused, "ECS calls Lambda functions at deployment stages; berth calls none"),
    row("DeploymentConfiguration", "linearConfiguration", "any", Refused, "ECS allows linear deployments; berth deploys ROLLING only"),
    row("DeploymentConfiguration", "canaryConfiguration", "any", Refused, "ECS allows canary deployments; berth deploys ROLLING only"),
    row("DeploymentCircuitBreaker", "resetOnHealthyTask", "true", NotApplied, "berth's breaker counts a deployment's failed tasks without resetting the count when a task becomes healthy"),
    row("DeploymentCircuitBreaker", "thresholdConfiguration", "other than BOUNDED_PERCENT 50", NotApplied, "berth's breaker trips at ECS's default threshold, clamp(ceil(desired / 2), 10, 200) failed tasks"),
    row("LoadBalancer", "loadBalancerName", "any", Refused, "ECS allows a Classic Load Balancer's name; berth's services name a target group (targetGroupName or targetGroupArn)"),
    row("LoadBalancer", "advancedConfiguration", "any", Refused, "ECS allows blue/green alternate target groups and listener rules; berth deploys ROLLING only"),
    row("ServiceConnectConfiguration", "logConfiguration", "any", NotApplied, "berth's mesh proxy runs inside berth on each node and logs with it; there is no proxy container whose log driver could be set"),
    row("ServiceConnectConfiguration", "accessLogConfiguration", "any", NotApplied, "berth's mesh writes no access log yet; its request metrics are on /metrics"),
    row("ServiceConnectService", "ingressPortOverride", "any", NotApplied, "berth's node proxies connect to the task's port directly; there is no sidecar listening on another port"),
    row("ServiceConnectService", "tls", "any", NotApplied, "berth's mesh is always mutual TLS between node proxies, with certificates from berth's own authority; it uses no AWS Private CA, KMS key or role"),
];

/// The row of `shape`.`member`.
pub fn unsupported(shape: &str, member: &str) -> Option<&'static UnsupportedField> {
    UNSUPPORTED
        .iter()
        .find(|r| r.shape == shape && r.member == member)
}

fn reason(shape: &str, member: &str) -> &'static str {
    unsupported(shape, member)
        .map(|r| r.reason)
        .unwrap_or_else(|| panic!("{shape}.{member} has a row in UNSUPPORTED"))
}

/// The refusal of `shape`.`member` at `field`, with its row's reason.
pub(crate) fn refuse(field: impl Into<String>, shape: &str, member: &str) -> ValidationError {
    ValidationError::new(field, reason(shape, member))
}

/// A member that was accepted and stored but is not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldNotApplied {
    /// The member's path in the resource, such as `containerDefinitions[0].logConfiguration`.
    pub field: String,
    pub reason: String,
}

impl FieldNotApplied {
    /// `shape`.`member` at `field`, with its row's reason.
    pub(crate) fn of(field: impl Into<String>, shape: &str, member: &str) -> Self {
        Self {
            field: field.into(),
            reason: reason(shape, member).to_string(),
        }
    }

    /// The same, with its path under `parent` (`parent.field`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for FieldNotApplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: accepted but not applied: {}",
            self.field, self.reason
        )
    }
}

/// Collects the members a resource sets that berth does not apply.
#[derive(Debug, Default)]
pub(crate) struct NotAppliedList(pub(crate) Vec<FieldNotApplied>);

impl NotAppliedList {
    /// Notes `shape`.`member` at `field` when `set`.
    pub(crate) fn note(&mut self, set: bool, field: impl Into<String>, shape: &str, member: &str) {
        if set {
            self.0.push(FieldNotApplied::of(field, shape, member));
        }
    }
}
