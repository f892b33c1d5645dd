//! The data plane's worker threads ([`ProxyOptions::data_plane_threads`]): one
//! single-threaded tokio runtime per thread. Each listener accepts on every worker with
//! its own descriptor of the listening socket ([`crate::listener`]); a connection is
//! served on one worker from its first byte to its last, and the fast path's idle
//! upstream connections are kept per worker ([`current_slot`], [`crate::pool`]).
//! Nothing moves a task between threads, so a fast-path request wakes no other thread.
//! The hyper path's pooled senders and HTTP/2 upstream connections stay shared: a
//! request there may wake the thread that drives the connection.
//!
//! Without workers (0, the default) listeners accept on the runtime that applies the
//! configuration, as before; the proxy's own tests run that way on a paused clock.
//!
//! Connections are balanced by count: the worker that accepts a connection serves it
//! unless another worker serves at least two fewer, in which case it hands the
//! connection over to the one serving fewest ([`Loads`]). Without that, the first worker
//! to wake takes a burst of new connections whole.
//!
//! It does not pick the number of threads (the caller does) or pin threads to cores.
//!
//! [`ProxyOptions::data_plane_threads`]: crate::ProxyOptions::data_plane_threads

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
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

/// Open connections each worker serves (all listeners together), each worker's count
/// also its `berth_lb_thread_connections` gauge.
pub(crate) struct Loads(Box<[IntGauge]>);

/// Counts one connection for its worker until dropped.
pub(crate) struct LoadGuard(IntGauge);

impl Loads {
    pub(crate) fn new(gauges: Vec<IntGauge>) -> Loads {
        Loads(gauges.into())
    }

    /// Counts a connection served by worker `index` (0-based).
    pub(crate) fn enter(&self, index: usize) -> LoadGuard {
        let load = self.0[index].clone();
        load.inc();
        LoadGuard(load)
    }

    /// The worker to serve a connection worker `index` accepted: itself, unless another
    /// serves at least two fewer connections; then the one serving fewest.
    pub(crate) fn pick(&self, index: usize) -> usize {
        let mine = self.0[index].get();
        let (least, fewest) = self
            .0
            .iter()
            .map(IntGauge::get)
            .enumerate()
            .min_by_key(|&(_, n)| n)
            .unwrap_or((index, mine));
        if fewest + 2 <= mine {
            least
        } else {
            index
        }
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Running worker threads. Dropping it stops them: each runtime drops the tasks it still
/// has, so the proxy closes its listeners (and waits for them) first.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    loads: Arc<Loads>,
    /// Dropped to stop the workers.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `n` worker threads (none for 0), their connection gauges registered in
    /// `registry`.
    pub(crate) fn start(n: usize, registry: &Registry) -> std::io::Result<Workers> {
        if n == 0 {
            return Ok(Workers {
                handles: Vec::new(),
                loads: Arc::new(Loads::new(Vec::new())),
                _stop: Vec::new(),
            });
        }
        let family = IntGaugeVec::new(
            Opts::new(
                "berth_lb_thread_connections",
                "Open client connections each data plane thread serves.",
            ),
            &["thread"],
        )
        .expect("valid metric");
        // Already registered by another proxy on the same registry: counted apart.
        let _ = registry.register(Box::new(family.clone()));
        let gauges = (1..=n)
            .map(|t| family.with_label_values(&[&t.to_string()]))
            .collect();
        SLOTS.fetch_max(n + 1, Ordering::AcqRel);
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
            loads: Arc::new(Loads::new(gauges)),
            _stop: stop,
        })
    }

    /// Each worker's runtime; empty without workers.
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// The workers' open connections.
    pub(crate) fn loads(&self) -> &Arc<Loads> {
        &self.loads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_tasks_in_its_own_slot() {
        let workers = Workers::start(2, &Registry::new()).unwrap();
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
    fn a_connection_goes_to_the_worker_serving_fewest_when_it_is_two_behind() {
        let loads = Loads::new(
            (0..3)
                .map(|i| IntGauge::new(format!("g{i}"), "g").unwrap())
                .collect(),
        );
        let held: Vec<LoadGuard> = [0, 0, 0, 1, 1, 2].iter().map(|&i| loads.enter(i)).collect();
        // Worker 0 serves 3, worker 2 serves 1: 0 hands over to 2; 1 (2 open) keeps it.
        assert_eq!(loads.pick(0), 2);
        assert_eq!(loads.pick(1), 1);
        assert_eq!(loads.pick(2), 2);
        drop(held);
        assert_eq!(loads.pick(0), 0, "all equal: each keeps what it accepts");
        let _one = loads.enter(1);
        assert_eq!(loads.pick(1), 1, "one ahead is not enough to hand over");
    }

    #[test]
    fn dropping_the_workers_stops_their_runtimes() {
        let workers = Workers::start(1, &Registry::new()).unwrap();
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
