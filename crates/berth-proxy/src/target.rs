//! One target's shared state: health, draining, in-flight count, passive ejection (after
//! connection failures, and the mesh's outlier detection), latency estimate and its
//! upstream connection pool. Everything the request path touches is an atomic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use berth_model::elb::{TargetHealth, TargetHealthState};

use crate::clock::Clock;
use crate::metrics::TargetMetrics;
use crate::notify::Notifier;
use crate::pool::Pool;

/// Set in [`TargetState::gate`] once the target is draining: no new request may start.
const DRAINING: u64 = 1 << 62;
/// Set once draining finished (no request in flight, or the delay ran out).
const DRAINED: u64 = 1 << 63;
const COUNT: u64 = DRAINING - 1;

/// The active-health-check state of a target (draining is kept apart, in the gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Health {
    Initial = 0,
    Healthy = 1,
    /// The check answered with a status the matcher does not accept.
    UnhealthyMismatch = 2,
    /// The check timed out.
    UnhealthyTimeout = 3,
    /// The check could not connect or the connection failed.
    UnhealthyFailed = 4,
    /// Health checks are disabled for the group.
    Unavailable = 5,
}

impl Health {
    fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Healthy,
            2 => Health::UnhealthyMismatch,
            3 => Health::UnhealthyTimeout,
            4 => Health::UnhealthyFailed,
            5 => Health::Unavailable,
            _ => Health::Initial,
        }
    }

    pub(crate) fn is_unhealthy(self) -> bool {
        matches!(
            self,
            Health::UnhealthyMismatch | Health::UnhealthyTimeout | Health::UnhealthyFailed
        )
    }

    /// Whether a target in this state takes traffic while some target is routable.
    pub(crate) fn is_routable(self) -> bool {
        matches!(self, Health::Healthy | Health::Unavailable)
    }
}

/// The fields every request touches come first, in the allocation's first two cache
/// lines: in a group of a thousand targets, round robin comes back to a target once in
/// a thousand requests, when its state has left the cache, and each further line it
/// touches is another miss (`repr(C)` keeps the order; the alignment keeps the lines;
/// a test holds the request path's fields to the first 128 bytes).
#[repr(C, align(64))]
pub(crate) struct TargetState {
    /// In-flight request count in the low bits, [`DRAINING`] and [`DRAINED`] above.
    gate: AtomicU64,
    /// Until when (clock millis) passive health keeps the target out of rotation.
    ejected_until: AtomicU64,
    /// Peak-EWMA latency estimate in nanoseconds (f64 bits) and its last update (micros).
    ewma_ns: AtomicU64,
    ewma_at_us: AtomicU64,
    /// Consecutive connection failures, for the ejection backoff.
    conn_failures: AtomicU32,
    health: AtomicU8,
    removed: AtomicBool,
    pub(crate) metrics: TargetMetrics,
    pub(crate) pool: Pool,
    // Below: touched by health checks, draining and the mesh's outlier detection.
    pub(crate) addr: SocketAddr,
    /// `ip:port`, the metrics label and the health-check Host header.
    pub(crate) label: String,
    /// The status code of the last failed check, for the description.
    last_status: AtomicU32,
    /// Mesh outlier detection: 5xx responses and connection failures in a row, how
    /// often the target was ejected, and until when (clock millis) the last ejection
    /// lasts. Only mesh target groups touch them.
    outlier_failures: AtomicU32,
    outlier_ejections: AtomicU32,
    outlier_until: AtomicU64,
    /// When (clock millis) the target last became healthy: the slow-start origin.
    healthy_since: AtomicU64,
    /// When (clock millis) draining began, 0 if not draining.
    draining_since: AtomicU64,
    clock: Clock,
    notifier: Notifier,
}

impl std::fmt::Debug for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetState")
            .field("addr", &self.addr)
            .field("health", &self.health())
            .field("gate", &self.gate.load(Ordering::Relaxed))
            .finish()
    }
}

/// The default RTT a peak-EWMA estimate starts from (linkerd2-proxy's default).
const EWMA_DEFAULT_RTT_NS: f64 = 30_000_000.0;
/// The peak-EWMA decay time constant (linkerd2-proxy's default).
const EWMA_DECAY_NS: f64 = 10_000_000_000.0;

impl TargetState {
    pub(crate) fn new(
        addr: SocketAddr,
        pool: Pool,
        metrics: TargetMetrics,
        notifier: Notifier,
        clock: Clock,
        initial: Health,
    ) -> TargetState {
        TargetState {
            addr,
            label: addr.to_string(),
            gate: AtomicU64::new(0),
            health: AtomicU8::new(initial as u8),
            last_status: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            conn_failures: AtomicU32::new(0),
            outlier_failures: AtomicU32::new(0),
            outlier_ejections: AtomicU32::new(0),
            outlier_until: AtomicU64::new(0),
            healthy_since: AtomicU64::new(0),
            draining_since: AtomicU64::new(0),
            ewma_ns: AtomicU64::new(EWMA_DEFAULT_RTT_NS.to_bits()),
            ewma_at_us: AtomicU64::new(0),
            pool,
            metrics,
            notifier,
            clock,
            removed: AtomicBool::new(false),
        }
    }

    // ---- in flight and draining ----

    /// Counts a request in, unless the target is draining. Race-free against
    /// [`TargetState::start_draining`]: once draining is set no acquire succeeds, and
    /// drained is declared only when the count is 0 with draining set.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<InFlight> {
        let prev = self.gate.fetch_add(1, Ordering::AcqRel);
        if prev & (DRAINING | DRAINED) != 0 {
            self.release();
            return None;
        }
        Some(InFlight(self.clone()))
    }

    fn release(&self) {
        let prev = self.gate.fetch_sub(1, Ordering::AcqRel);
        if prev & DRAINING != 0 && prev & DRAINED == 0 && prev & COUNT == 1 {
            self.try_finish_draining();
        }
    }

    fn try_finish_draining(&self) {
        if self
            .gate
            .compare_exchange(
                DRAINING,
                DRAINING | DRAINED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.notifier.notify();
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.gate.load(Ordering::Acquire) & COUNT
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.gate.load(Ordering::Acquire) & DRAINING != 0
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.gate.load(Ordering::Acquire) & DRAINED != 0
    }

    /// Marks the target draining; returns true if it was not draining before.
    pub(crate) fn start_draining(&self) -> bool {
        let prev = self.gate.fetch_or(DRAINING, Ordering::AcqRel);
        if prev & DRAINING != 0 {
            return false;
        }
        self.draining_since
            .store(self.clock.now_ms().max(1), Ordering::Release);
        self.try_finish_draining();
        self.notifier.notify();
        true
    }

    /// The deregistration delay ran out: drained, whatever is still in flight.
    pub(crate) fn force_drained(&self) {
        let prev = self.gate.fetch_or(DRAINED, Ordering::AcqRel);
        if prev & DRAINED == 0 {
            self.notifier.notify();
        }
    }

    /// The target was registered again while draining: it takes traffic again once its
    /// health checks pass.
    pub(crate) fn stop_draining(&self, initial: Health) {
        self.gate.fetch_and(COUNT, Ordering::AcqRel);
        self.draining_since.store(0, Ordering::Release);
        // No longer draining is a status change even where the health stays.
        if !self.set_health(initial, 0) {
            self.notifier.notify();
        }
    }

    // ---- active health ----

    pub(crate) fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    /// Sets the health state; returns true (and notifies) if it changed.
    pub(crate) fn set_health(&self, h: Health, status: u16) -> bool {
        self.last_status.store(status as u32, Ordering::Release);
        let prev = Health::from_u8(self.health.swap(h as u8, Ordering::AcqRel));
        if prev == h {
            return false;
        }
        if h == Health::Healthy {
            self.healthy_since
                .store(self.clock.now_ms().max(1), Ordering::Release);
        }
        self.notifier.notify();
        true
    }

    pub(crate) fn healthy_since_ms(&self) -> u64 {
        self.healthy_since.load(Ordering::Acquire)
    }

    /// The ELBv2 view of this target's health.
    pub(crate) fn target_health(&self) -> TargetHealth {
        if self.is_draining() {
            return TargetHealth {
                state: TargetHealthState::Draining,
                reason: Some("Target.DeregistrationInProgress".into()),
                description: Some("Target deregistration is in progress".into()),
            };
        }
        let (state, reason, description) = match self.health() {
            Health::Initial => (
                TargetHealthState::Initial,
                Some("Elb.InitialHealthChecking"),
                "Initial health checks in progress".to_string(),
            ),
            Health::Healthy => (TargetHealthState::Healthy, None, String::new()),
            Health::UnhealthyMismatch => (
                TargetHealthState::Unhealthy,
                Some("Target.ResponseCodeMismatch"),
                format!(
                    "Health checks failed with these codes: [{}]",
                    self.last_status.load(Ordering::Acquire)
                ),
            ),
            Health::UnhealthyTimeout => (
                TargetHealthState::Unhealthy,
                Some("Target.Timeout"),
                "Request timed out".to_string(),
            ),
            Health::UnhealthyFailed => (
                TargetHealthState::Unhealthy,
                Some("Target.FailedHealthChecks"),
                "Health checks failed".to_string(),
            ),
            Health::Unavailable => (
                TargetHealthState::Unavailable,
                Some("Target.HealthCheckDisabled"),
                "Health checks disabled".to_string(),
            ),
        };
        TargetHealth {
            state,
            reason: reason.map(str::to_string),
            description: (!description.is_empty()).then_some(description),
        }
    }

    // ---- passive health ----

    /// Whether passive health currently keeps the target out of rotation.
    #[inline]
    pub(crate) fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && self.clock.now_ms() < until
    }

    /// A connection to the target failed: eject it for a backoff that doubles with each
    /// consecutive failure (1 s, 2 s, ... up to 30 s).
    pub(crate) fn connect_failed(&self) {
        let n = self.conn_failures.fetch_add(1, Ordering::AcqRel).min(5);
        let backoff = (1000u64 << n).min(30_000);
        self.ejected_until
            .fetch_max(self.clock.now_ms() + backoff, Ordering::AcqRel);
        self.metrics.connection_errors.inc();
    }

    /// A connection to the target succeeded: the connection-failure ejection ends (an
    /// outlier ejection runs its course).
    #[inline]
    pub(crate) fn connect_succeeded(&self) {
        if self.conn_failures.load(Ordering::Relaxed) != 0 {
            self.conn_failures.store(0, Ordering::Release);
            self.ejected_until.store(
                self.outlier_until.load(Ordering::Acquire),
                Ordering::Release,
            );
        }
    }

    // ---- outlier detection (mesh target groups) ----

    /// A 5xx response or a connection failure: the number in a row, this one included.
    pub(crate) fn outlier_failed(&self) -> u32 {
        self.outlier_failures.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Any other response: the run of failures ends.
    #[inline]
    pub(crate) fn outlier_succeeded(&self) {
        if self.outlier_failures.load(Ordering::Relaxed) != 0 {
            self.outlier_failures.store(0, Ordering::Release);
        }
    }

    /// Ejects the target for `base_ms` times the number of its ejections (this one
    /// included); returns how long.
    pub(crate) fn eject_outlier(&self, base_ms: u64) -> u64 {
        let n = u64::from(self.outlier_ejections.fetch_add(1, Ordering::AcqRel)) + 1;
        let ms = base_ms.saturating_mul(n);
        let until = self.clock.now_ms().saturating_add(ms);
        self.outlier_until.store(until, Ordering::Release);
        self.ejected_until.fetch_max(until, Ordering::AcqRel);
        self.outlier_failures.store(0, Ordering::Release);
        ms
    }

    /// Whether outlier detection keeps the target out of rotation now.
    pub(crate) fn is_outlier_ejected(&self) -> bool {
        let until = self.outlier_until.load(Ordering::Acquire);
        until != 0 && self.clock.now_ms() < until
    }

    // ---- latency (peak EWMA) ----

    /// Folds one observed response latency into the peak-EWMA estimate: a slower sample
    /// replaces the estimate at once, a faster one decays it. `now_us` is the proxy's
    /// clock ([`Clock::us_at`]), read by the caller.
    pub(crate) fn observe_latency(&self, rtt_ns: f64, now_us: u64) {
        let prev_at = self.ewma_at_us.swap(now_us, Ordering::AcqRel);
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Acquire));
        let next = if rtt_ns > prev {
            rtt_ns
        } else {
            let elapsed_ns = (now_us.saturating_sub(prev_at)) as f64 * 1000.0;
            let w = (-elapsed_ns / EWMA_DECAY_NS).exp();
            prev * w + rtt_ns * (1.0 - w)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Release);
    }

    /// The load estimate peak-EWMA balances on: latency × (in flight + 1).
    pub(crate) fn ewma_cost(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_ns.load(Ordering::Acquire));
        ewma * (self.in_flight() as f64 + 1.0)
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// A request counted in flight on a target; dropping it counts the request out.
pub(crate) struct InFlight(pub(crate) Arc<TargetState>);

impl InFlight {
    pub(crate) fn target(&self) -> &Arc<TargetState> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<TargetState> {
        let clock = Clock::new();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Arc::new(TargetState::new(
            addr,
            Pool::new(addr),
            TargetMetrics::noop(),
            Notifier::new(),
            clock,
            Health::Healthy,
        ))
    }

    #[test]
    fn drained_waits_for_in_flight_requests() {
        let t = target();
        let a = t.try_acquire().unwrap();
        let b = t.try_acquire().unwrap();
        assert_eq!(t.in_flight(), 2);
        assert!(t.start_draining());
        assert!(t.try_acquire().is_none(), "no new request while draining");
        assert!(!t.is_drained());
        drop(a);
        assert!(!t.is_drained());
        drop(b);
        assert!(t.is_drained());
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn draining_an_idle_target_is_drained_at_once() {
        let t = target();
        t.start_draining();
        assert!(t.is_drained());
        t.stop_draining(Health::Initial);
        assert!(!t.is_draining() && !t.is_drained());
        assert_eq!(t.health(), Health::Initial);
        assert!(t.try_acquire().is_some());
    }

    #[test]
    fn acquire_racing_drain_never_loses_a_request() {
        for _ in 0..200 {
            let t = target();
            let t2 = t.clone();
            let h = std::thread::spawn(move || t2.try_acquire());
            t.start_draining();
            let got = h.join().unwrap();
            match got {
                // It got in before draining: drained must wait for it.
                Some(g) => {
                    assert!(!t.is_drained());
                    drop(g);
                    assert!(t.is_drained());
                }
                None => assert!(t.is_drained()),
            }
        }
    }

    /// What a request touches stays in the state's first two cache lines.
    #[test]
    fn the_request_path_fields_share_two_cache_lines() {
        use std::mem::offset_of;
        let pool = offset_of!(TargetState, pool);
        let metrics = offset_of!(TargetState, metrics);
        let ends = [
            offset_of!(TargetState, gate) + 8,
            offset_of!(TargetState, ejected_until) + 8,
            offset_of!(TargetState, ewma_ns) + 8,
            offset_of!(TargetState, ewma_at_us) + 8,
            offset_of!(TargetState, conn_failures) + 4,
            metrics + offset_of!(TargetMetrics, requests) + 8,
            metrics + offset_of!(TargetMetrics, responses) + 32,
            metrics + offset_of!(TargetMetrics, response_time) + 8,
            pool + Pool::REQUEST_PATH_BYTES,
        ];
        for end in ends {
            assert!(end <= 128, "a request-path field ends at byte {end}");
        }
        assert_eq!(std::mem::align_of::<TargetState>(), 64);
    }

    #[test]
    fn peak_ewma_jumps_to_peaks() {
        let t = target();
        t.observe_latency(100e6, t.clock.us_at(tokio::time::Instant::now()));
        assert!((t.ewma_cost() - 100e6).abs() < 1.0);
        let g = t.try_acquire().unwrap();
        assert!(t.ewma_cost() > 150e6);
        drop(g);
    }
}
