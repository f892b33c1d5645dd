//! A task definition's container definitions: every ContainerDefinition member ECS
//! has, typed; their validation is in `container_validation`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::defaults::{
    d_true, null_as_empty, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_STOP_TIMEOUT_SECONDS,
};
use super::field_support::{FieldNotApplied, NotAppliedList};

/// `portMappings[].protocol`: `tcp` or `udp`, as ECS spells them. `Tcp` and `Udp` are
/// read too: berth wrote them in stored documents and container labels before.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    #[default]
    #[serde(alias = "Tcp")]
    Tcp,
    #[serde(alias = "Udp")]
    Udp,
}

/// `portMappings[].appProtocol`: `http`, `http2` or `grpc`, as ECS spells them
/// (`HTTP`, `HTTP2` and `GRPC` are read too: berth's earlier spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationProtocol {
    #[serde(alias = "HTTP")]
    Http,
    #[serde(alias = "HTTP2")]
    Http2,
    #[serde(alias = "GRPC")]
    Grpc,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// Required unless `containerPortRange` is given (which berth refuses).
    #[serde(default)]
    pub container_port: u32,
    /// 0 or absent: a dynamic host port chosen when the task starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    #[serde(default)]
    pub protocol: TransportProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<ApplicationProtocol>,
    /// A range such as `"8000-8010"`: refused (see [`super::field_support`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValuePair {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// `["CMD", exe, args...]` or `["CMD-SHELL", "shell command"]`.
    pub command: Vec<String>,
    #[serde(default = "d_health_interval")]
    pub interval: u32,
    #[serde(default = "d_health_timeout")]
    pub timeout: u32,
    #[serde(default = "d_health_retries")]
    pub retries: u32,
    #[serde(default)]
    pub start_period: u32,
}

fn d_health_interval() -> u32 {
    DEFAULT_HEALTH_INTERVAL
}
fn d_health_timeout() -> u32 {
    DEFAULT_HEALTH_TIMEOUT
}
fn d_health_retries() -> u32 {
    DEFAULT_HEALTH_RETRIES
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DependencyCondition {
    Start,
    Complete,
    Success,
    Healthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: DependencyCondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

/// The ulimit names ECS accepts (botocore's `UlimitName`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryCredentials {
    pub credentials_parameter: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerRestartPolicy {
    pub enabled: bool,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignored_exit_codes: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_attempt_period: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentFile {
    pub value: String,
    /// ECS allows only `s3`.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KernelCapabilities {
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub add: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub drop: Vec<String>,
}

/// `read`, `write` or `mknod` (botocore's `DeviceCgroupPermission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceCgroupPermission {
    Read,
    Write,
    Mknod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    pub host_path: String,
    /// Where it appears in the container; the host path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// All three when empty.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub permissions: Vec<DeviceCgroupPermission>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tmpfs {
    pub container_path: String,
    /// MiB.
    pub size: u32,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mount_options: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinuxParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<KernelCapabilities>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    /// `/dev/shm` size in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_memory_size: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tmpfs: Vec<Tmpfs>,
    /// MiB of swap on top of `memory`; 0 turns swap off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<u32>,
    /// 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

/// `enabled` or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionConsistency {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

/// botocore's `LogDriver`, plus Docker's `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    #[serde(rename = "json-file")]
    JsonFile,
    Syslog,
    Journald,
    Gelf,
    Fluentd,
    Awslogs,
    Splunk,
    Awsfirelens,
    /// Docker's `none` (no output kept); not in botocore's enum, accepted by berth.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    pub log_driver: LogDriver,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secret_options: Vec<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemControl {
    pub namespace: String,
    pub value: String,
}

/// botocore's `ResourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceType {
    #[serde(rename = "GPU")]
    Gpu,
    InferenceAccelerator,
    NeuronDevice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirement {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: ResourceType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirelensConfiguration {
    /// `fluentd` or `fluentbit`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

/// One container of a task definition, with every member ECS's ContainerDefinition has.
/// What berth does with each one is in [`super::field_support`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub cpu: u32,
    /// Hard memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Soft memory limit in MiB, used for placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u32>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default = "d_true")]
    pub essential: bool,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entry_point: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub environment: Vec<KeyValuePair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub docker_labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<RepositoryCredentials>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<ContainerRestartPolicy>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub environment_files: Vec<EnvironmentFile>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub volumes_from: Vec<VolumeFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<VersionConsistency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_networking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_servers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_search_domains: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_hosts: Vec<HostEntry>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub docker_security_options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_terminal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub system_controls: Vec<SystemControl>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_requirements: Vec<ResourceRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firelens_configuration: Option<FirelensConfiguration>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub credential_specs: Vec<String>,
}

impl ContainerDefinition {
    /// `stopTimeout`, or the ECS default of 30 s.
    pub fn stop_timeout_seconds(&self) -> u32 {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECONDS)
    }

    /// The members this container sets that berth stores and returns but does not
    /// apply, with paths relative to the container.
    pub fn not_applied(&self) -> Vec<FieldNotApplied> {
        const CD: &str = "ContainerDefinition";
        let mut n = NotAppliedList::default();
        n.note(
            self.repository_credentials.is_some(),
            "repositoryCredentials",
            CD,
            "repositoryCredentials",
        );
        n.note(
            self.restart_policy.as_ref().is_some_and(|r| r.enabled),
            "restartPolicy",
            CD,
            "restartPolicy",
        );
        n.note(
            self.version_consistency == Some(VersionConsistency::Enabled),
            "versionConsistency",
            CD,
            "versionConsistency",
        );
        n.note(
            self.log_configuration
                .as_ref()
                .is_some_and(|lc| lc.log_driver == LogDriver::Awslogs),
            "logConfiguration",
            CD,
            "logConfiguration",
        );
        n.0
    }
}

pub(super) use super::container_validation::validate_container;
