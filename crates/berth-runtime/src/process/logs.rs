//! A container's log on the process runtime: its `output.log` (stdout and stderr), read
//! from the start; when followed, tailed until the container stops and its last output
//! is read. It does not rotate or trim logs. `logConfiguration` is not applied on this
//! runtime: whatever the driver (`none` and the Docker drivers included), a process's
//! output goes to this file.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::{Task, LOG_FILE};
use crate::{ContainerStatus, LogStream, Result, RuntimeError, TaskState};

/// How often a followed log is re-read while its container runs and writes nothing.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The log of container `idx`; with `follow`, the stream ends once the container stopped.
pub(super) async fn container_log(task: &Task, idx: usize, follow: bool) -> Result<LogStream> {
    let path = task.container_dir(idx).join(LOG_FILE);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(RuntimeError::Other(format!(
                "cannot open {}: {e}",
                path.display()
            )))
        }
    };
    let rx = task.core.state.subscribe();
    struct Tail {
        file: Option<tokio::fs::File>,
        path: PathBuf,
        rx: watch::Receiver<TaskState>,
        idx: usize,
        follow: bool,
        finishing: bool,
    }
    let st = Tail {
        file,
        path,
        rx,
        idx,
        follow,
        finishing: false,
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.file.is_none() {
                st.file = tokio::fs::File::open(&st.path).await.ok();
            }
            if let Some(f) = st.file.as_mut() {
                let mut buf = vec![0u8; 64 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => {}
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((Ok(bytes::Bytes::from(buf)), st));
                    }
                    Err(e) => return Some((Err(e), st)),
                }
            }
            if !st.follow || st.finishing {
                return None;
            }
            if st.rx.borrow().containers[st.idx].status == ContainerStatus::Stopped {
                // One more read drains what the process wrote last.
                st.finishing = true;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                r = st.rx.changed() => {
                    // The task's state is no longer kept: read what is left, then end.
                    if r.is_err() {
                        st.finishing = true;
                    }
                }
            }
        }
    });
    Ok(Box::pin(stream))
}
