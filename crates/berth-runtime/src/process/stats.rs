//! A task's CPU and memory use on the process runtime, from `/proc`: the ticks and
//! resident pages of each running container's process group, summed. CPU is the busy
//! share since the previous sample (the first: since the oldest process started), in
//! ECS units (1024 = one core busy).

use std::time::Instant;

use super::{procfs, Inner, Task};
use crate::{ContainerStatus, TaskStats};

impl Inner {
    /// The task's use now, from `/proc`.
    pub(super) fn measure(&self, task: &Task) -> TaskStats {
        let state = task.core.snapshot();
        let mut ticks = 0;
        let mut pages = 0;
        let mut oldest_start = None::<u64>;
        for (idx, c) in state.containers.iter().enumerate() {
            if c.status != ContainerStatus::Running {
                continue;
            }
            if let Some(p) = task.proc(idx) {
                let (t, r) = procfs::group_usage(p.pid);
                ticks += t;
                pages += r;
                if let Some(s) = procfs::stat(p.pid) {
                    oldest_start = Some(oldest_start.map_or(s.start_time, |o| o.min(s.start_time)));
                }
            }
        }
        let now = Instant::now();
        let tps = self.ticks_per_second as f64;
        let mut sample = task.cpu_sample.lock().expect("cpu sample lock");
        let busy_fraction = match *sample {
            Some((at, prev)) if now > at && ticks >= prev => {
                (ticks - prev) as f64 / tps / now.duration_since(at).as_secs_f64()
            }
            // First sample: the average since the oldest process started.
            _ => match (oldest_start, procfs::uptime_seconds()) {
                (Some(start), Some(up)) => {
                    let age = up - start as f64 / tps;
                    if age > 0.0 {
                        ticks as f64 / tps / age
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            },
        };
        *sample = Some((now, ticks));
        TaskStats {
            cpu_units: busy_fraction * 1024.0,
            memory_bytes: pages * self.page_size,
        }
    }
}
