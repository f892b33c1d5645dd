//! The data dir's lock: an exclusive `flock` on `<data-dir>/dataplane.lock`, held by the
//! data plane for as long as it runs (the kernel drops it when the process dies, however
//! it dies) and passed to the process taking over in a handover (an flock belongs to the
//! open file, so both hold it until the old one exits).
//!
//! What it does not do: write the pid file or the socket (the process does).

use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive `flock` on a data dir's lock file, held while the file stays open.
pub struct DataPlaneLock {
    _file: std::fs::File,
}

impl DataPlaneLock {
    /// Takes the lock, or answers `None` when another process holds it.
    pub fn try_take(path: &Path) -> Result<Option<DataPlaneLock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        match rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(Some(DataPlaneLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }

    /// The lock as another data plane handed it over: its open lock file, whose flock
    /// is shared with that process until it closes its own.
    pub fn from_descriptor(fd: std::os::fd::OwnedFd) -> DataPlaneLock {
        DataPlaneLock {
            _file: std::fs::File::from(fd),
        }
    }

    /// Another descriptor of the open lock file (holding the same flock).
    pub fn descriptor(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self._file.as_fd().try_clone_to_owned()
    }
}
