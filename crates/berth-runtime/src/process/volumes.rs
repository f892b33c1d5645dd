//! A task's `volumes`, `mountPoints` and `volumesFrom` on the process runtime.
//!
//! A process has no mount namespace, so a mount point becomes a symbolic link: each
//! container that mounts something gets a directory of its own,
//! `<task dir>/<container>/mounts`, in which every mount point's `containerPath` (its
//! leading `/` dropped: `/data` → `data`, `/var/lib/app` → `var/lib/app`) is a link to
//! the volume's directory. That directory is the container's working directory when it
//! has no `workingDirectory`, so `./data` reaches the volume, and its path is in the
//! environment as `BERTH_MOUNTS_DIR` either way. `volumesFrom` gives a container the
//! same links as its source container (and the source's own `volumesFrom`).
//!
//! Where a volume's data lives, following the Docker runtime's semantics:
//! - `host.sourcePath`: that path on the node, created when missing (as Docker creates a
//!   missing bind source);
//! - `dockerVolumeConfiguration` with scope `shared`: `<state dir>/volumes/<name>`, which
//!   outlives tasks; created when missing and `autoprovision` is true, refused when
//!   missing otherwise (`driver`, `driverOpts` and `labels` mean nothing to a directory);
//! - scope `task` (ECS's default), or no configuration: `<task dir>/volumes/<name>`,
//!   created for the task and removed with it.
//!
//! What it does not do: enforce `readOnly` (a link cannot be read-only; the start logs a
//! warning naming each such member), nest mount points (a path under another mount
//! point of the same container is refused), or make absolute paths such as `/data`
//! reach the volume: only paths relative to the mounts directory do.

use std::path::{Component, Path, PathBuf};

use berth_model::ecs::{TaskDefinition, VolumeScope};

use super::safe_name;
use crate::{Result, RuntimeError};

/// The directory, inside a container's directory, that holds its mount points' links.
pub(super) const MOUNTS_DIR: &str = "mounts";
/// The environment variable naming a container's mounts directory.
pub(super) const MOUNTS_DIR_ENV: &str = "BERTH_MOUNTS_DIR";

/// Where one of a task's volumes keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VolumeDir {
    /// The index in the task definition's `volumes`, for messages.
    pub(super) index: usize,
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) kind: VolumeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VolumeKind {
    /// `host.sourcePath`: created when missing.
    HostPath,
    /// Scope `shared`: kept across tasks.
    Shared { autoprovision: bool },
    /// Scope `task`: the task's own, removed with the task directory.
    Task,
}

/// One link in a container's mounts directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountLink {
    /// Relative to the mounts directory: the `containerPath` without its leading `/`.
    pub(super) path: PathBuf,
    /// The index of the volume in [`TaskMounts::volumes`].
    pub(super) volume: usize,
    /// The member that asks for a read-only mount, if any (not enforced).
    pub(super) read_only_by: Option<String>,
}

/// Everything a task's mounts need on the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TaskMounts {
    pub(super) volumes: Vec<VolumeDir>,
    /// Per container: its mounts directory and links (none when it mounts nothing).
    pub(super) containers: Vec<Option<(PathBuf, Vec<MountLink>)>>,
}

/// A container's mounts directory, when it mounts anything (its own `mountPoints` or
/// through `volumesFrom`).
pub(super) fn mounts_dir(td: &TaskDefinition, task_dir: &Path, idx: usize) -> Option<PathBuf> {
    let c = &td.container_definitions[idx];
    let mounts = mount_sources(td, idx)
        .iter()
        .any(|&i| !td.container_definitions[i].mount_points.is_empty());
    mounts.then(|| task_dir.join(safe_name(&c.name)).join(MOUNTS_DIR))
}

/// Container `idx` and every container it takes volumes from, directly or through the
/// source's own `volumesFrom` (each once).
fn mount_sources(td: &TaskDefinition, idx: usize) -> Vec<usize> {
    let mut seen = vec![idx];
    let mut next = 0;
    while next < seen.len() {
        let c = &td.container_definitions[seen[next]];
        for v in &c.volumes_from {
            let source = v.source_container.as_deref().unwrap_or_default();
            if let Some(i) = td
                .container_definitions
                .iter()
                .position(|c| c.name == source)
            {
                if !seen.contains(&i) {
                    seen.push(i);
                }
            }
        }
        next += 1;
    }
    seen
}

/// The link path of a `containerPath`: its normal components, relative.
fn link_path(at: &str, container_path: &str) -> Result<PathBuf> {
    let mut path = PathBuf::new();
    for part in Path::new(container_path).components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => path.push(p),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(RuntimeError::StartFailed(format!(
                    "{at}.containerPath: {container_path:?} must not contain `..`: the process runtime links mount points inside the container's mounts directory"
                )))
            }
        }
    }
    if path.as_os_str().is_empty() {
        return Err(RuntimeError::StartFailed(format!(
            "{at}.containerPath: {container_path:?} names the root: the process runtime links a mount point as a path inside the container's mounts directory, so it needs a path below /"
        )));
    }
    Ok(path)
}

/// Where each volume of `td` lives and which links each container gets. Pure: it reads
/// nothing and creates nothing. `task_dir` is the task's directory, `shared_dir` the
/// directory of shared volumes.
pub(super) fn plan(td: &TaskDefinition, task_dir: &Path, shared_dir: &Path) -> Result<TaskMounts> {
    let volumes: Vec<VolumeDir> = td
        .volumes
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let name = v.name.clone().unwrap_or_default();
            let host_path = v.host.as_ref().and_then(|h| h.source_path.as_deref());
            let (path, kind) = match (host_path, &v.docker_volume_configuration) {
                (Some(p), _) => (PathBuf::from(p), VolumeKind::HostPath),
                (None, Some(c)) if c.scope == Some(VolumeScope::Shared) => (
                    shared_dir.join(&name),
                    VolumeKind::Shared {
                        autoprovision: c.autoprovision.unwrap_or(false),
                    },
                ),
                (None, _) => (task_dir.join("volumes").join(&name), VolumeKind::Task),
            };
            VolumeDir {
                index,
                name,
                path,
                kind,
            }
        })
        .collect();

    let mut containers = Vec::new();
    for (idx, c) in td.container_definitions.iter().enumerate() {
        let links = distinct_links(&c.name, container_links(td, idx, &volumes)?)?;
        containers.push(
            (!links.is_empty())
                .then(|| (task_dir.join(safe_name(&c.name)).join(MOUNTS_DIR), links)),
        );
    }
    Ok(TaskMounts {
        volumes,
        containers,
    })
}

/// Container `idx`'s links, each with the member it comes from: its own mount points,
/// then those of the containers it takes volumes from.
fn container_links(
    td: &TaskDefinition,
    idx: usize,
    volumes: &[VolumeDir],
) -> Result<Vec<(MountLink, String)>> {
    let c = &td.container_definitions[idx];
    let mut links = Vec::new();
    for src in mount_sources(td, idx) {
        // A volumesFrom entry of this container that names the source read-only.
        let read_only_from = c
            .volumes_from
            .iter()
            .position(|v| {
                src != idx
                    && v.source_container.as_deref()
                        == Some(td.container_definitions[src].name.as_str())
                    && v.read_only == Some(true)
            })
            .map(|vf| format!("containerDefinitions[{idx}].volumesFrom[{vf}].readOnly"));
        for (j, m) in td.container_definitions[src]
            .mount_points
            .iter()
            .enumerate()
        {
            let at = format!("containerDefinitions[{src}].mountPoints[{j}]");
            let path = link_path(&at, m.container_path.as_deref().unwrap_or_default())?;
            let source = m.source_volume.as_deref().unwrap_or_default();
            let Some(volume) = volumes.iter().position(|v| v.name == source) else {
                return Err(RuntimeError::StartFailed(format!(
                    "{at}.sourceVolume: names no volume of the task definition, got {source:?}"
                )));
            };
            let read_only_by = match (&read_only_from, m.read_only) {
                (Some(member), _) => Some(member.clone()),
                (None, Some(true)) => Some(format!("{at}.readOnly")),
                (None, _) => None,
            };
            let link = MountLink {
                path,
                volume,
                read_only_by,
            };
            links.push((link, at));
        }
    }
    Ok(links)
}

/// The links of container `name` with the same volume at the same path kept once;
/// refuses two that share or nest paths otherwise (a link cannot hold another).
fn distinct_links(name: &str, links: Vec<(MountLink, String)>) -> Result<Vec<MountLink>> {
    let mut kept: Vec<(MountLink, String)> = Vec::new();
    for (link, at) in links {
        let clash = kept
            .iter()
            .find(|(k, _)| k.path.starts_with(&link.path) || link.path.starts_with(&k.path));
        match clash {
            None => kept.push((link, at)),
            Some((k, _)) if k.path == link.path && k.volume == link.volume => {}
            Some((k, other_at)) => {
                return Err(RuntimeError::StartFailed(format!(
                    "{at}.containerPath: /{} overlaps /{} of {other_at} in container {name}: the process runtime links each mount point as a path of its own, so mount points may not share or nest paths",
                    link.path.display(),
                    k.path.display(),
                )))
            }
        }
    }
    Ok(kept.into_iter().map(|(link, _)| link).collect())
}

/// Refuses a task whose shared volume is missing without `autoprovision`, as the Docker
/// runtime does (same wording, with the directory to create). Reads only.
pub(super) fn check_shared(mounts: &TaskMounts) -> Result<()> {
    for v in &mounts.volumes {
        if v.kind
            == (VolumeKind::Shared {
                autoprovision: false,
            })
            && !v.path.is_dir()
        {
            return Err(RuntimeError::StartFailed(format!(
                "volumes[{}].dockerVolumeConfiguration: the shared volume {:?} does not exist and autoprovision is false: create it (mkdir -p {}) or set autoprovision to true",
                v.index,
                v.name,
                v.path.display()
            )));
        }
    }
    Ok(())
}

/// Creates the volumes' directories and each container's links (replacing links left by
/// an earlier attempt), and logs a warning for each `readOnly` it cannot enforce.
pub(super) fn prepare(task_arn: &str, mounts: &TaskMounts) -> Result<()> {
    let failed =
        |what: String, e: std::io::Error| RuntimeError::StartFailed(format!("{what}: {e}"));
    for v in &mounts.volumes {
        std::fs::create_dir_all(&v.path).map_err(|e| {
            failed(
                format!("volumes[{}]: cannot create {}", v.index, v.path.display()),
                e,
            )
        })?;
    }
    for (dir, links) in mounts.containers.iter().flatten() {
        for link in links {
            let at = dir.join(&link.path);
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| failed(format!("cannot create {}", parent.display()), e))?;
            }
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&at)
                    .map_err(|e| failed(format!("cannot replace {}", at.display()), e))?,
                _ => {}
            }
            let target = &mounts.volumes[link.volume].path;
            std::os::unix::fs::symlink(target, &at).map_err(|e| {
                failed(
                    format!("cannot link {} to {}", at.display(), target.display()),
                    e,
                )
            })?;
            if let Some(member) = &link.read_only_by {
                tracing::warn!(task = %task_arn, "{member}: not enforced by the process runtime; /{} is writable", link.path.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::task_definition;

    fn td(containers: serde_json::Value) -> TaskDefinition {
        task_definition(json!({
            "volumes": [
                {"name": "bind", "host": {"sourcePath": "/srv/bind"}},
                {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true}},
                {"name": "scratch", "dockerVolumeConfiguration": {"scope": "task"}},
                {"name": "plain"},
            ],
            "containerDefinitions": containers,
        }))
    }

    #[test]
    fn volume_directories_follow_the_docker_runtimes_kinds() {
        let t = td(json!([{"name": "app", "image": "i"}]));
        let m = plan(
            &t,
            Path::new("/state/tasks/t1"),
            Path::new("/state/volumes"),
        )
        .unwrap();
        let dirs: Vec<(&str, &Path, VolumeKind)> = m
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.path.as_path(), v.kind))
            .collect();
        assert_eq!(
            dirs,
            [
                ("bind", Path::new("/srv/bind"), VolumeKind::HostPath),
                (
                    "shared",
                    Path::new("/state/volumes/shared"),
                    VolumeKind::Shared {
                        autoprovision: true
                    }
                ),
                (
                    "scratch",
                    Path::new("/state/tasks/t1/volumes/scratch"),
                    VolumeKind::Task
                ),
                (
                    "plain",
                    Path::new("/state/tasks/t1/volumes/plain"),
                    VolumeKind::Task
                ),
            ]
        );
        assert_eq!(
            m.containers,
            [None],
            "a container without mounts has no links"
        );
    }

    #[test]
    fn mount_points_become_links_and_volumes_from_copies_them() {
        let t = td(json!([
            {"name": "app", "image": "i", "mountPoints": [
                {"sourceVolume": "shared", "containerPath": "/data"},
                {"sourceVolume": "bind", "containerPath": "/var/lib/app", "readOnly": true},
            ]},
            {"name": "reader", "image": "i", "volumesFrom": [{"sourceContainer": "app", "readOnly": true}]},
            {"name": "third", "image": "i", "volumesFrom": [{"sourceContainer": "reader"}]},
        ]));
        let task_dir = Path::new("/state/tasks/t1");
        let m = plan(&t, task_dir, Path::new("/state/volumes")).unwrap();
        let (dir, links) = m.containers[0].as_ref().unwrap();
        assert_eq!(dir, Path::new("/state/tasks/t1/app/mounts"));
        assert_eq!(mounts_dir(&t, task_dir, 0).as_deref(), Some(dir.as_path()));
        let got: Vec<(&Path, usize, Option<&str>)> = links
            .iter()
            .map(|l| (l.path.as_path(), l.volume, l.read_only_by.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Path::new("data"), 1, None),
                (
                    Path::new("var/lib/app"),
                    0,
                    Some("containerDefinitions[0].mountPoints[1].readOnly")
                ),
            ]
        );
        let (_, reader) = m.containers[1].as_ref().unwrap();
        assert_eq!(reader.len(), 2);
        assert!(reader.iter().all(|l| l.read_only_by.as_deref()
            == Some("containerDefinitions[1].volumesFrom[0].readOnly")));
        let (third_dir, third) = m.containers[2].as_ref().unwrap();
        assert_eq!(third_dir, Path::new("/state/tasks/t1/third/mounts"));
        assert_eq!(
            third.len(),
            2,
            "volumesFrom reaches the source's own sources"
        );
        assert_eq!(third[0].read_only_by, None);
    }

    #[test]
    fn paths_that_escape_or_overlap_are_refused_naming_the_member() {
        let refused = |mount_points: serde_json::Value| {
            let t = td(json!([{"name": "app", "image": "i", "mountPoints": mount_points}]));
            plan(&t, Path::new("/t"), Path::new("/v"))
                .unwrap_err()
                .to_string()
        };
        let e = refused(json!([{"sourceVolume": "plain", "containerPath": "/data/../../etc"}]));
        assert!(
            e.contains("containerDefinitions[0].mountPoints[0].containerPath")
                && e.contains("`..`"),
            "{e}"
        );
        let e = refused(json!([{"sourceVolume": "plain", "containerPath": "/"}]));
        assert!(
            e.contains("mountPoints[0].containerPath") && e.contains("root"),
            "{e}"
        );
        let e = refused(json!([
            {"sourceVolume": "plain", "containerPath": "/data"},
            {"sourceVolume": "scratch", "containerPath": "/data/sub"},
        ]));
        assert!(
            e.contains("mountPoints[1].containerPath") && e.contains("overlaps /data"),
            "{e}"
        );
        // The same volume at the same path twice is one link.
        let t = td(json!([{"name": "app", "image": "i", "mountPoints": [
            {"sourceVolume": "plain", "containerPath": "/data"},
            {"sourceVolume": "plain", "containerPath": "/data/"},
        ]}]));
        let m = plan(&t, Path::new("/t"), Path::new("/v")).unwrap();
        assert_eq!(m.containers[0].as_ref().unwrap().1.len(), 1);
    }

    #[test]
    fn a_missing_shared_volume_without_autoprovision_is_refused() {
        let shared = tempfile::tempdir().unwrap();
        let t = task_definition(json!({
            "volumes": [{"name": "keep", "dockerVolumeConfiguration": {"scope": "shared"}}],
            "containerDefinitions": [{"name": "app", "image": "i"}],
        }));
        let m = plan(&t, Path::new("/t"), shared.path()).unwrap();
        let e = check_shared(&m).unwrap_err().to_string();
        assert!(
            e.contains("volumes[0].dockerVolumeConfiguration: the shared volume \"keep\" does not exist and autoprovision is false"),
            "{e}"
        );
        std::fs::create_dir(shared.path().join("keep")).unwrap();
        check_shared(&m).unwrap();
    }
}
