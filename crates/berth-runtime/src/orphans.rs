//! Orphaned tasks: what berth started on this node for another node (another container
//! instance id, or another state directory) that no running berth node owns.
//!
//! A runtime adopts only its own tasks (Docker containers labelled with its instance,
//! processes under its state directory). A server started on a new data directory
//! would otherwise leave the old one's tasks running, unseen. [`crate::Runtime::orphans`]
//! finds them, given the owners that are alive on this machine ([`LiveOwners`]: those
//! are never orphaned), and [`crate::Runtime::remove_orphan`] stops and removes one.
//!
//! What it does not do: decide which nodes are alive (the caller scans for running
//! berth nodes), log or count the orphans (the agent does), or touch anything berth did
//! not label: Docker containers without berth's instance label, processes that are not
//! berth shims of a state directory with a readable task record.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Who started an orphaned task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrphanOwner {
    /// A Docker container's container instance label.
    Instance(String),
    /// A process runtime's state directory (`<data dir>/runtime` for berth's nodes).
    StateDir(PathBuf),
}

impl fmt::Display for OrphanOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrphanOwner::Instance(id) => write!(f, "container instance {id}"),
            OrphanOwner::StateDir(dir) => write!(f, "state directory {}", dir.display()),
        }
    }
}

/// A berth shim found running for an orphaned task, and the container process it
/// supervises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrphanProcess {
    pub shim_pid: i32,
    /// With the pid, identifies the shim (a reused pid is not signalled).
    pub shim_start_time: u64,
    /// The container process (also its process group), when the task record names it.
    pub pid: Option<i32>,
}

/// One orphaned task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanTask {
    pub task_arn: String,
    pub cluster: String,
    /// What it runs: the images (Docker) or command lines (processes) of its containers.
    pub runs: Vec<String>,
    pub owner: OrphanOwner,
    /// Docker container ids, or the pids of its shims and processes.
    pub runtime_ids: Vec<String>,
    pub(crate) processes: Vec<OrphanProcess>,
}

impl OrphanTask {
    /// An orphan as a runtime outside this crate (or a test's fake) reports it.
    pub fn new(
        task_arn: String,
        cluster: String,
        runs: Vec<String>,
        owner: OrphanOwner,
        runtime_ids: Vec<String>,
    ) -> Self {
        Self {
            task_arn,
            cluster,
            runs,
            owner,
            runtime_ids,
            processes: Vec::new(),
        }
    }

    /// The task's id (last segment of its ARN).
    pub fn task_id(&self) -> &str {
        berth_model::arn::last_segment(&self.task_arn)
    }
}

/// The owners whose berth node runs on this machine: their tasks are theirs, never
/// orphans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOwners {
    pub instance_ids: BTreeSet<String>,
    /// Process runtime state directories, canonical.
    pub state_dirs: BTreeSet<PathBuf>,
}

impl LiveOwners {
    /// Adds a live node's state directory (made canonical when it exists).
    pub fn add_state_dir(&mut self, dir: &Path) {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.state_dirs.insert(dir);
    }

    pub fn owns_state_dir(&self, dir: &Path) -> bool {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.state_dirs.contains(&dir)
    }
}
