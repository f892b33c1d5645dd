//! Task definitions: the task-level members of RegisterTaskDefinition, typed, their
//! validation, and the task size parsers. What FARGATE adds to the validation is the
//! child module [`fargate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{check_name, check_range, Result, ValidationError};
use crate::time::Timestamp;

use super::container::{
    validate_container, ContainerDefinition, DependencyCondition, KeyValuePair,
};
use super::defaults::null_as_empty;
use super::field_support::{refuse, FieldNotApplied, NotAppliedList};
use super::log_configuration::validate_log_configuration;
use super::network_mode::NetworkMode;
use super::placement::TaskDefinitionPlacementConstraint;
use super::tags::{check_tags, Tag};
use fargate::validate_fargate;

#[path = "fargate.rs"]
pub mod fargate;

/// `requiresCompatibilities` (botocore's `Compatibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    #[serde(rename = "EC2")]
    Ec2,
    Fargate,
    External,
    ManagedInstances,
}

/// `pidMode`: `host` or `task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PidMode {
    Host,
    Task,
}

/// `ipcMode`: `host`, `task` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpcMode {
    Host,
    Task,
    None,
}

/// `volumes[].dockerVolumeConfiguration.scope`: `task` or `shared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeScope {
    Task,
    Shared,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostVolumeProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerVolumeConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<VolumeScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoprovision: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A task volume. The AWS file systems (EFS, S3 Files, FSx for Windows) and volumes
/// configured at launch (EBS) are kept as written only to refuse them by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolumeProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_volume_configuration: Option<DockerVolumeConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3files_volume_configuration: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsx_windows_file_server_volume_configuration: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_at_launch: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfiguration {
    /// ECS allows only `APPMESH`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub container_name: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub properties: Vec<KeyValuePair>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceAccelerator {
    pub device_name: String,
    pub device_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePlatform {
    /// `X86_64` or `ARM64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    /// `LINUX` or one of the `WINDOWS_SERVER_*` families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
}

/// A task definition with every member of ECS's RegisterTaskDefinition. What berth does
/// with each one is in [`super::field_support`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    pub family: String,
    #[serde(default)]
    pub network_mode: NetworkMode,
    pub container_definitions: Vec<ContainerDefinition>,
    /// Task-level CPU units ("1 vCPU" = 1024) or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Task-level memory in MiB ("1GB" = 1024) or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub requires_compatibilities: Vec<Compatibility>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub volumes: Vec<Volume>,
    /// Always written, as ECS describes it (`[]` when empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub placement_constraints: Vec<TaskDefinitionPlacementConstraint>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<PidMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<IpcMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_configuration: Option<ProxyConfiguration>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub inference_accelerators: Vec<InferenceAccelerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_definition_arn: String,
    #[serde(default)]
    pub revision: u32,
    /// ACTIVE or INACTIVE.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Timestamp>,
}

/// Parses task-level CPU: an integer number of units or "N vCPU".
pub fn parse_cpu_units(field: &str, s: &str) -> Result<u32> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let units = if let Some(v) = lower.strip_suffix("vcpu") {
        v.trim()
            .parse::<f64>()
            .ok()
            .map(|v| (v * 1024.0).round() as i64)
    } else {
        t.parse::<i64>().ok()
    };
    match units {
        Some(u) if (128..=196_608).contains(&u) => Ok(u as u32),
        Some(u) => Err(ValidationError::new(
            field,
            format!("must be between 128 and 196608 CPU units (0.125 to 192 vCPU), got {u}"),
        )),
        None => Err(ValidationError::new(
            field,
            format!("must be CPU units such as \"512\" or \"0.5 vCPU\", got {s:?}"),
        )),
    }
}

/// Parses memory: an integer number of MiB or "N GB"/"N MB"/"N MiB"/"N GiB".
pub fn parse_memory_mib(field: &str, s: &str) -> Result<u32> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(v) = lower.strip_suffix("gib").or(lower.strip_suffix("gb")) {
        (v.trim(), 1024.0)
    } else if let Some(v) = lower.strip_suffix("mib").or(lower.strip_suffix("mb")) {
        (v.trim(), 1.0)
    } else {
        (lower.as_str(), 1.0)
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && (v * mult) >= 4.0 && (v * mult) <= 4_194_304.0 => {
            Ok((v * mult).round() as u32)
        }
        Ok(_) => Err(ValidationError::new(
            field,
            format!("must be between 4 MiB and 4 TiB, got {s:?}"),
        )),
        Err(_) => Err(ValidationError::new(
            field,
            format!("must be MiB such as \"512\" or a size such as \"1GB\", got {s:?}"),
        )),
    }
}

impl TaskDefinition {
    pub fn validate(&self) -> Result<()> {
        check_name("family", &self.family, 255)?;
        if self.container_definitions.is_empty() {
            return Err(ValidationError::new(
                "containerDefinitions",
                "must list at least one container",
            ));
        }
        if self.container_definitions.len() > 10 {
            return Err(ValidationError::new(
                "containerDefinitions",
                format!(
                    "may list at most 10 containers, got {}",
                    self.container_definitions.len()
                ),
            ));
        }
        if let Some(cpu) = &self.cpu {
            parse_cpu_units("cpu", cpu)?;
        }
        if let Some(mem) = &self.memory {
            parse_memory_mib("memory", mem)?;
        }
        if self
            .requires_compatibilities
            .contains(&Compatibility::Fargate)
        {
            validate_fargate(self)?;
        }
        self.validate_task_members()?;
        let mut names = std::collections::BTreeSet::new();
        let mut host_ports = std::collections::BTreeSet::new();
        for (i, c) in self.container_definitions.iter().enumerate() {
            let at = format!("containerDefinitions[{i}]");
            validate_container(c, self.network_mode, &mut host_ports).map_err(|e| e.within(&at))?;
            if let Some(lc) = &c.log_configuration {
                validate_log_configuration(lc).map_err(|e| e.within(&at))?;
            }
            if !names.insert(c.name.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    format!("container name {:?} is used twice", c.name),
                ));
            }
        }
        super::secrets::validate_secrets(
            &self.container_definitions,
            self.execution_role_arn.as_deref(),
        )?;
        if !self.container_definitions.iter().any(|c| c.essential) {
            return Err(ValidationError::new(
                "containerDefinitions",
                "at least one container must be essential",
            ));
        }
        self.validate_volume_references(&names)?;
        self.validate_links(&names)?;
        for (i, c) in self.container_definitions.iter().enumerate() {
            for (j, d) in c.depends_on.iter().enumerate() {
                if d.container_name == c.name || !names.contains(d.container_name.as_str()) {
                    return Err(ValidationError::new(
                        format!("containerDefinitions[{i}].dependsOn[{j}].containerName"),
                        format!(
                            "must name another container of this task definition, got {:?}",
                            d.container_name
                        ),
                    ));
                }
                if d.condition == DependencyCondition::Healthy {
                    let dep = self
                        .container_definitions
                        .iter()
                        .find(|x| x.name == d.container_name);
                    if dep.is_some_and(|x| x.health_check.is_none()) {
                        return Err(ValidationError::new(
                            format!("containerDefinitions[{i}].dependsOn[{j}].condition"),
                            format!(
                                "HEALTHY needs a healthCheck on container {:?}",
                                d.container_name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
    /// The task-level members besides family, containers and size: tags, volumes'
    /// shapes, ephemeral storage, runtime platform, and the members berth refuses.
    fn validate_task_members(&self) -> Result<()> {
        const SHAPE: &str = "RegisterTaskDefinitionRequest";
        check_tags("tags", &self.tags)?;
        super::placement::check_task_definition_constraints(&self.placement_constraints)?;
        if !self.inference_accelerators.is_empty() {
            return Err(refuse(
                "inferenceAccelerators",
                SHAPE,
                "inferenceAccelerators",
            ));
        }
        if let Some(e) = &self.ephemeral_storage {
            check_range("ephemeralStorage.sizeInGiB", e.size_in_gib, 21, 200)?;
        }
        if let Some(os) = self
            .runtime_platform
            .as_ref()
            .and_then(|p| p.operating_system_family.as_deref())
        {
            if os != "LINUX" {
                return Err(refuse(
                    "runtimePlatform.operatingSystemFamily",
                    "RuntimePlatform",
                    "operatingSystemFamily",
                ));
            }
        }
        if let Some(arch) = self
            .runtime_platform
            .as_ref()
            .and_then(|p| p.cpu_architecture.as_deref())
        {
            if !matches!(arch, "X86_64" | "ARM64") {
                return Err(ValidationError::new(
                    "runtimePlatform.cpuArchitecture",
                    format!("must be X86_64 or ARM64, got {arch:?}"),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let at = format!("volumes[{i}]");
            let name = v.name.as_deref().unwrap_or_default();
            check_name(&format!("{at}.name"), name, 255)?;
            if !names.insert(name) {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    format!("volume name {name:?} is used twice"),
                ));
            }
            if v.efs_volume_configuration.is_some() {
                return Err(refuse(
                    format!("{at}.efsVolumeConfiguration"),
                    "Volume",
                    "efsVolumeConfiguration",
                ));
            }
            if v.s3files_volume_configuration.is_some() {
                return Err(refuse(
                    format!("{at}.s3filesVolumeConfiguration"),
                    "Volume",
                    "s3filesVolumeConfiguration",
                ));
            }
            if v.fsx_windows_file_server_volume_configuration.is_some() {
                return Err(refuse(
                    format!("{at}.fsxWindowsFileServerVolumeConfiguration"),
                    "Volume",
                    "fsxWindowsFileServerVolumeConfiguration",
                ));
            }
            if v.configured_at_launch == Some(true) {
                return Err(refuse(
                    format!("{at}.configuredAtLaunch"),
                    "Volume",
                    "configuredAtLaunch",
                ));
            }
            if let Some(path) = v.host.as_ref().and_then(|h| h.source_path.as_deref()) {
                if !path.starts_with('/') {
                    return Err(ValidationError::new(
                        format!("{at}.host.sourcePath"),
                        format!("must be an absolute path on the container instance, got {path:?}"),
                    ));
                }
            }
            if v.host.is_some() && v.docker_volume_configuration.is_some() {
                return Err(ValidationError::new(
                    at,
                    "may give host or dockerVolumeConfiguration, not both",
                ));
            }
        }
        Ok(())
    }

    /// Each of a container's `links` is `name` or `name:alias`, `name` another
    /// container of the task and `alias` a name (ECS's rules for both).
    fn validate_links(&self, containers: &std::collections::BTreeSet<&str>) -> Result<()> {
        for (i, c) in self.container_definitions.iter().enumerate() {
            for (j, link) in c.links.iter().enumerate() {
                let (name, alias) = link.split_once(':').unwrap_or((link, link));
                let alias_ok = check_name("alias", alias, 255).is_ok();
                if name == c.name || !containers.contains(name) || !alias_ok {
                    return Err(ValidationError::new(
                        format!("containerDefinitions[{i}].links[{j}]"),
                        format!(
                            "must be \"name\" or \"name:alias\", name another container of \
                             this task definition and alias up to 255 letters, digits, \
                             hyphens and underscores, got {link:?}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// As ECS checks at registration: each mount point names one of the task's volumes
    /// and a container path, and each `volumesFrom` names another container.
    fn validate_volume_references(
        &self,
        containers: &std::collections::BTreeSet<&str>,
    ) -> Result<()> {
        let volumes: std::collections::BTreeSet<&str> = self
            .volumes
            .iter()
            .filter_map(|v| v.name.as_deref())
            .collect();
        for (i, c) in self.container_definitions.iter().enumerate() {
            for (j, m) in c.mount_points.iter().enumerate() {
                let at = format!("containerDefinitions[{i}].mountPoints[{j}]");
                let source = m.source_volume.as_deref().unwrap_or_default();
                if !volumes.contains(source) {
                    return Err(ValidationError::new(
                        format!("{at}.sourceVolume"),
                        format!("must name a volume of this task definition, got {source:?}"),
                    ));
                }
                if !m
                    .container_path
                    .as_deref()
                    .is_some_and(|p| p.starts_with('/'))
                {
                    return Err(ValidationError::new(
                        format!("{at}.containerPath"),
                        format!("must be an absolute path, got {:?}", m.container_path),
                    ));
                }
            }
            for (j, v) in c.volumes_from.iter().enumerate() {
                let source = v.source_container.as_deref().unwrap_or_default();
                if source == c.name || !containers.contains(source) {
                    return Err(ValidationError::new(
                        format!("containerDefinitions[{i}].volumesFrom[{j}].sourceContainer"),
                        format!(
                            "must name another container of this task definition, got {source:?}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The members this definition sets that berth stores and returns but does not
    /// apply, each with its path and reason. `berth apply` reports them as warnings.
    pub fn not_applied(&self) -> Vec<FieldNotApplied> {
        const TD: &str = "RegisterTaskDefinitionRequest";
        let mut n = NotAppliedList::default();
        // The execution role authorizes reading the containers' secrets, and nothing else.
        let has_secrets = self
            .container_definitions
            .iter()
            .any(|c| !c.secrets.is_empty());
        n.note(
            self.execution_role_arn.is_some() && !has_secrets,
            "executionRoleArn",
            TD,
            "executionRoleArn",
        );
        n.note(
            self.proxy_configuration.is_some(),
            "proxyConfiguration",
            TD,
            "proxyConfiguration",
        );
        n.note(
            self.ephemeral_storage.is_some(),
            "ephemeralStorage",
            TD,
            "ephemeralStorage",
        );
        n.note(
            self.runtime_platform.is_some(),
            "runtimePlatform",
            TD,
            "runtimePlatform",
        );
        n.note(
            self.enable_fault_injection == Some(true),
            "enableFaultInjection",
            TD,
            "enableFaultInjection",
        );
        for (i, c) in self.container_definitions.iter().enumerate() {
            let at = format!("containerDefinitions[{i}]");
            n.0.extend(c.not_applied().into_iter().map(|w| w.within(&at)));
        }
        n.0
    }

    /// The user-written part, for comparing a stack file's definition with a registered
    /// revision (berth's own fields cleared).
    pub fn spec(&self) -> TaskDefinition {
        TaskDefinition {
            task_definition_arn: String::new(),
            revision: 0,
            status: String::new(),
            registered_at: None,
            ..self.clone()
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerDefinition> {
        self.container_definitions.iter().find(|c| c.name == name)
    }
}
