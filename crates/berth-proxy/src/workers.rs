//! The data plane's worker threads ([`ProxyOptions::data_plane_threads`]): one
//! single-threaded tokio runtime per thread. Each listener accepts on every worker with
//! its own descriptor of the listening socket ([`crate::listener`]); a connection a
//! worker accepted is served on that worker from its first byte to its last, with the
//! upstream connections that worker opened ([`current_slot`], [`crate::pool`]). Nothing
//! moves a task between threads, so a request wakes no other thread and takes no lock
//! another thread is holding.
//!
//! Without workers (0, the default) listeners accept on the runtime that applies the
//! configuration, as before; the proxy's own tests run that way on a paused clock.
//!
//! It does not pick the number of threads (the caller does), pin threads to cores, or
//! balance connections between workers: the kernel hands each new connection to whichever
//! worker accepts it first.
//!
//! [`ProxyOptions::data_plane_threads`]: crate::ProxyOptions::data_plane_threads

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The slot of the worker running on this thread: 1 to N; 0 on any other thread.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Slots every upstream pool made from now on has: one more than the most workers any
/// proxy in this process has started (slot 0 serves every thread that is not a worker).
static SLOTS: AtomicUsize = AtomicUsize::new(1);

/// This thread's slot: which of a pool's idle queues it takes upstream connections from
/// and returns them to (see [`slots`]).
#[inline]
pub(crate) fn current_slot() -> usize {
    SLOT.with(Cell::get)
}

/// How many idle queues an upstream pool made now needs, one per slot.
pub(crate) fn slots() -> usize {
    SLOTS.load(Ordering::Acquire)
}

/// Running worker threads. Dropping it stops them: each runtime drops the tasks it still
/// has, so the proxy closes its listeners (and waits for them) first.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropped to stop the workers.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `n` worker threads (none for 0).
    pub(crate) fn start(n: usize) -> std::io::Result<Workers> {
        if n > 0 {
            SLOTS.fetch_max(n + 1, Ordering::AcqRel);
        }
        let mut handles = Vec::with_capacity(n);
        let mut stop = Vec::with_capacity(n);
        for slot in 1..=n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("berth-dp-{slot}"))
                .spawn(move || {
                    SLOT.with(|s| s.set(slot));
                    // Ends when the `Workers` is dropped (the sender with it).
                    let _ = runtime.block_on(rx);
                })?;
        }
        Ok(Workers {
            handles,
            _stop: stop,
        })
    }

    /// Each worker's runtime; empty without workers.
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_tasks_in_its_own_slot() {
        let workers = Workers::start(2).unwrap();
        assert!(slots() >= 3);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seen: Vec<usize> = rt.block_on(async {
            let mut seen = Vec::new();
            for h in workers.handles() {
                seen.push(h.spawn(async { current_slot() }).await.unwrap());
            }
            seen
        });
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(current_slot(), 0);
    }

    #[test]
    fn dropping_the_workers_stops_their_runtimes() {
        let workers = Workers::start(1).unwrap();
        let handle = workers.handles()[0].clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Held by a task that never ends: dropped when the runtime drops its tasks.
        handle.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(workers);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
