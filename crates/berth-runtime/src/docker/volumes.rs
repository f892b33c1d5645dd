//! A task's `volumes` on Docker, as the ECS agent makes them: where each volume's data
//! comes from ([`task_volumes`], a pure function of the task spec), and the Docker volumes
//! created before the task's containers and removed after them.
//!
//! - `host.sourcePath`: a bind mount of that path on the node (Docker creates the
//!   directory when it is missing);
//! - `dockerVolumeConfiguration` with scope `task` (ECS's default), and a volume with
//!   neither (or with `host` but no `sourcePath`): a Docker volume named
//!   `<prefix><task id>-<volume name>`, created for the task and removed with it;
//! - scope `shared`: the Docker volume named as the task's volume, which outlives tasks;
//!   created (with `driver`, `driverOpts`, `labels`) when missing and `autoprovision` is
//!   true, refused when missing otherwise. With `autoprovision`, an existing shared
//!   volume must have the `driver`, `driverOpts` and `labels` the task definition gives
//!   (as the ECS agent checks), else the task is refused; without it, the volume is used
//!   as it is.
//!
//! Which container mounts what is `container_spec`'s; it does not mount anything itself.

use std::collections::{BTreeMap, HashMap};

use berth_model::ecs::VolumeScope;
use bollard::models::VolumeCreateOptions;
use bollard::query_parameters::RemoveVolumeOptions;

use super::{docker_message, is_not_found, Inner, LABEL_CLUSTER, LABEL_MANAGED, LABEL_TASK_ARN};
use crate::{Result, RuntimeError, TaskSpec};

/// Where a task volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VolumeSource {
    /// A path on the node, bind-mounted.
    HostPath(String),
    /// A Docker volume.
    Docker(DockerVolume),
}

/// A Docker volume a task mounts, as the engine is asked to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerVolume {
    /// The engine's name of the volume.
    pub(crate) docker_name: String,
    pub(crate) scope: VolumeScope,
    /// Shared scope: create the volume when it is missing.
    pub(crate) autoprovision: bool,
    pub(crate) driver: Option<String>,
    pub(crate) driver_opts: BTreeMap<String, String>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// One of a task's `volumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskVolume {
    /// The task definition's name of the volume (what `mountPoints` name).
    pub(crate) name: String,
    /// Its index in the task definition's `volumes`, for errors.
    pub(crate) index: usize,
    pub(crate) source: VolumeSource,
}

impl TaskVolume {
    /// What a bind of this volume names as its source: the host path or the volume name.
    pub(crate) fn bind_source(&self) -> &str {
        match &self.source {
            VolumeSource::HostPath(path) => path,
            VolumeSource::Docker(v) => &v.docker_name,
        }
    }
}

/// A task volume the engine cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VolumeError {
    #[error(
        "volumes[{index}].dockerVolumeConfiguration: the shared Docker volume {volume:?} does not exist and autoprovision is false: create it (docker volume create {volume}) or set autoprovision to true"
    )]
    SharedVolumeMissing { index: usize, volume: String },
    #[error(
        "volumes[{index}].dockerVolumeConfiguration.{field}: the existing shared Docker volume {volume:?} has {found}, the task definition asks for {wanted}"
    )]
    SharedVolumeDiffers {
        index: usize,
        volume: String,
        /// `driver`, `driverOpts` or `labels`.
        field: &'static str,
        wanted: String,
        found: String,
    },
    #[error("volumes[{index}]: cannot {action} Docker volume {volume:?}: {message}")]
    Engine {
        index: usize,
        volume: String,
        action: &'static str,
        message: String,
    },
}

impl From<VolumeError> for RuntimeError {
    fn from(e: VolumeError) -> Self {
        RuntimeError::StartFailed(e.to_string())
    }
}

/// The engine's name of a task-scoped volume: `<prefix><task id>-<volume name>`.
pub(crate) fn task_scoped_volume_name(prefix: &str, spec: &TaskSpec, volume: &str) -> String {
    format!("{prefix}{}-{volume}", spec.task_id())
}

/// Every volume of `spec`'s task definition, with where its data lives.
pub(crate) fn task_volumes(prefix: &str, spec: &TaskSpec) -> Vec<TaskVolume> {
    spec.task_definition
        .volumes
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let name = v.name.clone().unwrap_or_default();
            let host_path = v.host.as_ref().and_then(|h| h.source_path.clone());
            let source = match (host_path, &v.docker_volume_configuration) {
                (Some(path), _) => VolumeSource::HostPath(path),
                (None, Some(c)) => {
                    let scope = c.scope.unwrap_or(VolumeScope::Task);
                    let docker_name = match scope {
                        VolumeScope::Shared => name.clone(),
                        VolumeScope::Task => task_scoped_volume_name(prefix, spec, &name),
                    };
                    VolumeSource::Docker(DockerVolume {
                        docker_name,
                        scope,
                        autoprovision: c.autoprovision.unwrap_or(false),
                        driver: c.driver.clone(),
                        driver_opts: c.driver_opts.clone(),
                        labels: c.labels.clone(),
                    })
                }
                (None, None) => VolumeSource::Docker(DockerVolume {
                    docker_name: task_scoped_volume_name(prefix, spec, &name),
                    scope: VolumeScope::Task,
                    autoprovision: false,
                    driver: None,
                    driver_opts: BTreeMap::new(),
                    labels: BTreeMap::new(),
                }),
            };
            TaskVolume {
                name,
                index,
                source,
            }
        })
        .collect()
}

/// The create request of `v`: its labels plus berth's (the task's ARN on task-scoped ones).
fn create_options(spec: &TaskSpec, v: &DockerVolume) -> VolumeCreateOptions {
    let mut labels: HashMap<String, String> = v.labels.clone().into_iter().collect();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels.insert(LABEL_CLUSTER.into(), spec.cluster.clone());
    if v.scope == VolumeScope::Task {
        labels.insert(LABEL_TASK_ARN.into(), spec.task_arn.clone());
    }
    VolumeCreateOptions {
        name: Some(v.docker_name.clone()),
        driver: v.driver.clone(),
        driver_opts: (!v.driver_opts.is_empty())
            .then(|| v.driver_opts.clone().into_iter().collect()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// How the existing shared volume `have` differs from `want` (an autoprovisioned
/// volume of the task definition), as the ECS agent compares them: the driver when one is
/// given, and each given driver option and label.
fn shared_volume_difference(
    index: usize,
    want: &DockerVolume,
    have: &bollard::models::Volume,
) -> Option<VolumeError> {
    let differs = |field, wanted: String, found: String| VolumeError::SharedVolumeDiffers {
        index,
        volume: want.docker_name.clone(),
        field,
        wanted,
        found,
    };
    if let Some(driver) = want.driver.as_deref().filter(|d| *d != have.driver) {
        return Some(differs(
            "driver",
            format!("driver {driver:?}"),
            format!("driver {:?}", have.driver),
        ));
    }
    let missing = |wanted: &BTreeMap<String, String>, found: &HashMap<String, String>| {
        wanted
            .iter()
            .find(|(k, v)| found.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone(), found.get(k).cloned()))
    };
    for (field, wanted, found) in [
        ("driverOpts", &want.driver_opts, &have.options),
        ("labels", &want.labels, &have.labels),
    ] {
        if let Some((k, v, got)) = missing(wanted, found) {
            return Some(differs(
                field,
                format!("{k}={v:?}"),
                match got {
                    Some(g) => format!("{k}={g:?}"),
                    None => format!("no {k}"),
                },
            ));
        }
    }
    None
}

fn docker_volumes(prefix: &str, spec: &TaskSpec) -> Vec<(usize, DockerVolume)> {
    task_volumes(prefix, spec)
        .into_iter()
        .filter_map(|v| match v.source {
            VolumeSource::Docker(d) => Some((v.index, d)),
            VolumeSource::HostPath(_) => None,
        })
        .collect()
}

impl Inner {
    /// Creates the task's task-scoped volumes and checks (or provisions) its shared ones.
    /// Fails on the first volume the engine cannot provide; the volumes created before it
    /// stay for [`Inner::remove_task_volumes`].
    pub(super) async fn ensure_task_volumes(&self, spec: &TaskSpec) -> Result<()> {
        for (index, v) in docker_volumes(&self.config.name_prefix, spec) {
            let engine = |action, e: bollard::errors::Error| VolumeError::Engine {
                index,
                volume: v.docker_name.clone(),
                action,
                message: docker_message(&e),
            };
            if v.scope == VolumeScope::Shared {
                match self.docker.inspect_volume(&v.docker_name).await {
                    Ok(have) => match shared_volume_difference(index, &v, &have) {
                        Some(differs) if v.autoprovision => return Err(differs.into()),
                        _ => continue,
                    },
                    Err(e) if is_not_found(&e) => {
                        if !v.autoprovision {
                            return Err(VolumeError::SharedVolumeMissing {
                                index,
                                volume: v.docker_name.clone(),
                            }
                            .into());
                        }
                    }
                    Err(e) => return Err(engine("inspect", e).into()),
                }
            }
            self.docker
                .create_volume(create_options(spec, &v))
                .await
                .map_err(|e| engine("create", e))?;
        }
        Ok(())
    }

    /// Removes the task's task-scoped Docker volumes (after its containers are gone);
    /// shared volumes stay. A volume already gone is not an error.
    pub(super) async fn remove_task_volumes(&self, spec: &TaskSpec) -> Result<()> {
        for (index, v) in docker_volumes(&self.config.name_prefix, spec) {
            if v.scope != VolumeScope::Task {
                continue;
            }
            match self
                .docker
                .remove_volume(&v.docker_name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(RuntimeError::Other(
                        VolumeError::Engine {
                            index,
                            volume: v.docker_name.clone(),
                            action: "remove",
                            message: docker_message(&e),
                        }
                        .to_string(),
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{task_definition, task_spec};
    use serde_json::json;

    #[test]
    fn sources_follow_ecs_volume_kinds() {
        let s = task_spec(
            "t1",
            task_definition(json!({
                "volumes": [
                    {"name": "h", "host": {"sourcePath": "/srv/h"}},
                    {"name": "empty-host", "host": {}},
                    {"name": "plain"},
                    {"name": "s", "dockerVolumeConfiguration": {
                        "scope": "shared", "autoprovision": true, "driver": "local",
                        "driverOpts": {"type": "tmpfs"}, "labels": {"team": "a"}}},
                    {"name": "d", "dockerVolumeConfiguration": {}},
                ],
                "containerDefinitions": [{"name": "c", "image": "i"}],
            })),
        );
        let v = task_volumes("berth-", &s);
        assert_eq!(v[0].source, VolumeSource::HostPath("/srv/h".into()));
        for (i, name) in [
            (1, "berth-t1-empty-host"),
            (2, "berth-t1-plain"),
            (4, "berth-t1-d"),
        ] {
            let VolumeSource::Docker(d) = &v[i].source else {
                panic!("volume {i} is a Docker volume: {:?}", v[i])
            };
            assert_eq!(d.docker_name, name);
            assert_eq!(d.scope, VolumeScope::Task, "ECS's default scope is task");
        }
        let VolumeSource::Docker(shared) = &v[3].source else {
            panic!("shared is a Docker volume")
        };
        assert_eq!(shared.docker_name, "s");
        assert!(shared.autoprovision);
        let opts = create_options(&s, shared);
        assert_eq!(opts.driver.as_deref(), Some("local"));
        assert_eq!(opts.driver_opts.unwrap()["type"], "tmpfs");
        let labels = opts.labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert!(
            !labels.contains_key(LABEL_TASK_ARN),
            "a shared volume belongs to no task"
        );
        let VolumeSource::Docker(task_scoped) = &v[2].source else {
            panic!("plain is a Docker volume")
        };
        let labels = create_options(&s, task_scoped).labels.unwrap();
        assert_eq!(labels[LABEL_TASK_ARN], s.task_arn);
    }

    #[test]
    fn an_existing_shared_volume_must_match_what_is_given() {
        let want = DockerVolume {
            docker_name: "data".into(),
            scope: VolumeScope::Shared,
            autoprovision: true,
            driver: Some("local".into()),
            driver_opts: BTreeMap::from([("type".into(), "tmpfs".into())]),
            labels: BTreeMap::from([("team".into(), "a".into())]),
        };
        let have = bollard::models::Volume {
            name: "data".into(),
            driver: "local".into(),
            options: HashMap::from([
                ("type".into(), "tmpfs".into()),
                ("device".into(), "tmpfs".into()),
            ]),
            labels: HashMap::from([("team".into(), "a".into()), ("extra".into(), "x".into())]),
            ..Default::default()
        };
        assert_eq!(
            shared_volume_difference(2, &want, &have),
            None,
            "extras are fine"
        );

        let other_driver = bollard::models::Volume {
            driver: "nfs".into(),
            ..have.clone()
        };
        let e = shared_volume_difference(2, &want, &other_driver).unwrap();
        assert!(matches!(
            e,
            VolumeError::SharedVolumeDiffers {
                field: "driver",
                index: 2,
                ..
            }
        ));
        assert!(e
            .to_string()
            .starts_with("volumes[2].dockerVolumeConfiguration.driver:"));

        let no_label = bollard::models::Volume {
            labels: HashMap::new(),
            ..have.clone()
        };
        let e = shared_volume_difference(2, &want, &no_label).unwrap();
        assert!(e.to_string().contains("team=\"a\""), "{e}");
        assert!(e.to_string().contains("no team"), "{e}");

        let other_opt = bollard::models::Volume {
            options: HashMap::from([("type".into(), "nfs".into())]),
            ..have
        };
        let e = shared_volume_difference(2, &want, &other_opt).unwrap();
        assert!(matches!(
            e,
            VolumeError::SharedVolumeDiffers {
                field: "driverOpts",
                ..
            }
        ));
    }
}
