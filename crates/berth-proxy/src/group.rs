//! A target group at run time: its compiled settings, its targets, the routable subset
//! (recomputed on every health or draining change and published with arc-swap), target
//! selection by the group's algorithm, and for a mesh target group its mesh settings and
//! metrics ([`crate::mesh`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use berth_model::elb::Protocol;
use rand::Rng;
use tokio::task::AbortHandle;

use crate::clock::Clock;
use crate::config::{ProxyTarget, TargetStatus};
use crate::group_settings::{Algorithm, GroupSettings};
use crate::health::{self, HealthChecked};
use crate::mesh::MeshGroup;
use crate::metrics::{GroupMetrics, Metrics, TargetMetrics};
use crate::notify::Notifier;
use crate::pool::Pool;
use crate::retry_budget::RetryBudget;
use crate::target::{Health, InFlight, TargetState};

/// The targets a request may be sent to, published as one snapshot.
pub(crate) struct Routable {
    pub(crate) targets: Vec<Arc<TargetState>>,
    /// No target (or fewer than the minimum) is healthy: routing to every live target.
    pub(crate) fail_open: bool,
    pub(crate) algorithm: Algorithm,
    pub(crate) slow_start_ms: u64,
    /// Until when (clock millis) some target is still in its slow start; before then
    /// targets may weigh less than 1, after it all weigh 1.
    pub(crate) ramp_until_ms: u64,
    /// The targets' addresses with their positions, sorted by address: the sticky
    /// target of a request is found by a binary search.
    by_addr: Vec<(SocketAddr, u32)>,
}

impl Routable {
    /// Beyond this many targets a sticky target is found by binary search, not a scan.
    const SCAN_LIMIT: usize = 16;

    fn new(targets: Vec<Arc<TargetState>>, fail_open: bool, settings: &GroupSettings) -> Routable {
        let slow_start_ms = settings.slow_start.as_millis() as u64;
        let ramp_until_ms = if slow_start_ms == 0 {
            0
        } else {
            targets
                .iter()
                .map(|t| t.healthy_since_ms())
                .filter(|&since| since != 0)
                .max()
                .map_or(0, |since| since.saturating_add(slow_start_ms))
        };
        let mut by_addr = Vec::new();
        if targets.len() > Routable::SCAN_LIMIT {
            by_addr = targets
                .iter()
                .enumerate()
                .map(|(i, t)| (t.addr, i as u32))
                .collect();
            by_addr.sort_unstable();
        }
        Routable {
            targets,
            fail_open,
            algorithm: settings.algorithm,
            slow_start_ms,
            ramp_until_ms,
            by_addr,
        }
    }

    /// The routable target at `addr`.
    #[inline]
    fn find(&self, addr: SocketAddr) -> Option<&Arc<TargetState>> {
        if self.targets.len() <= Routable::SCAN_LIMIT {
            return self.targets.iter().find(|t| t.addr == addr);
        }
        let at = self.by_addr.binary_search_by(|e| e.0.cmp(&addr)).ok()?;
        Some(&self.targets[self.by_addr[at].1 as usize])
    }
}

#[derive(Default)]
struct TargetTasks {
    checker: Option<AbortHandle>,
    drain_timer: Option<AbortHandle>,
}

impl TargetTasks {
    fn abort(&mut self) {
        if let Some(h) = self.checker.take() {
            h.abort();
        }
        if let Some(h) = self.drain_timer.take() {
            h.abort();
        }
    }
}

pub(crate) struct GroupRuntime {
    pub(crate) arn: Arc<str>,
    pub(crate) settings: ArcSwap<GroupSettings>,
    targets: ArcSwap<Vec<Arc<TargetState>>>,
    routable: ArcSwap<Routable>,
    rr: AtomicUsize,
    /// Keeps retries within a fifth of the group's requests.
    pub(crate) retry_budget: RetryBudget,
    recompute_lock: Mutex<()>,
    tasks: Mutex<HashMap<SocketAddr, TargetTasks>>,
    pub(crate) metrics: GroupMetrics,
    /// Set for a mesh endpoint's group: what it adds to the group (fixed for the
    /// group's life; a group whose endpoint changes is replaced).
    pub(crate) mesh: Option<MeshGroup>,
    all_metrics: Metrics,
    notifier: Notifier,
    pub(crate) clock: Clock,
}

impl GroupRuntime {
    pub(crate) fn new(
        arn: &str,
        settings: GroupSettings,
        metrics: &Metrics,
        notifier: Notifier,
        clock: Clock,
        mesh: Option<MeshGroup>,
    ) -> Arc<GroupRuntime> {
        let mut gm = metrics.group(&settings.name);
        if let Some(m) = &mesh {
            gm.retries = m.metrics.retries.clone();
        }
        let routable = Routable::new(Vec::new(), false, &settings);
        Arc::new(GroupRuntime {
            arn: arn.into(),
            settings: ArcSwap::from_pointee(settings),
            targets: ArcSwap::from_pointee(Vec::new()),
            routable: ArcSwap::from_pointee(routable),
            rr: AtomicUsize::new(0),
            retry_budget: RetryBudget::default(),
            recompute_lock: Mutex::new(()),
            tasks: Mutex::new(HashMap::new()),
            metrics: gm,
            mesh,
            all_metrics: metrics.clone(),
            notifier,
            clock,
        })
    }

    pub(crate) fn name(&self) -> String {
        self.settings.load().name.clone()
    }

    /// Applies new settings and a new target list. Starts health checks for new targets,
    /// drain timers for newly draining ones, and forgets removed ones.
    pub(crate) fn update(self: &Arc<Self>, settings: GroupSettings, cfg: &[ProxyTarget]) {
        let old_settings = self.settings.load_full();
        let health_changed = old_settings.health.enabled != settings.health.enabled;
        self.settings.store(Arc::new(settings));
        let settings = self.settings.load_full();
        let initial = if settings.health.enabled {
            Health::Initial
        } else {
            Health::Unavailable
        };

        let old = self.targets.load_full();
        let mut by_addr: HashMap<SocketAddr, Arc<TargetState>> =
            old.iter().map(|t| (t.addr, t.clone())).collect();
        let mut next = Vec::with_capacity(cfg.len());
        let mut tasks = self.tasks.lock().expect("tasks lock");
        for pt in cfg {
            let t = match by_addr.remove(&pt.addr) {
                Some(t) => {
                    if health_changed && !t.is_draining() {
                        let e = tasks.entry(t.addr).or_default();
                        if let Some(h) = e.checker.take() {
                            h.abort();
                        }
                        t.set_health(initial, 0);
                        if settings.health.enabled {
                            e.checker = Some(health::spawn(Arc::downgrade(self), t.clone()));
                        }
                    }
                    t
                }
                None => {
                    let t = Arc::new(TargetState::new(
                        pt.addr,
                        Pool::new(pt.addr),
                        self.target_metrics(&settings.name, &pt.addr.to_string()),
                        self.notifier.clone(),
                        self.clock.clone(),
                        initial,
                    ));
                    let e = tasks.entry(t.addr).or_default();
                    if settings.health.enabled {
                        e.checker = Some(health::spawn(Arc::downgrade(self), t.clone()));
                    }
                    self.notifier.notify();
                    t
                }
            };
            if pt.draining && !t.is_draining() {
                t.start_draining();
                t.pool.clear();
                let e = tasks.entry(t.addr).or_default();
                let delay = settings.deregistration_delay;
                let weak = Arc::downgrade(&t);
                e.drain_timer = Some(
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(t) = weak.upgrade() {
                            t.force_drained();
                        }
                    })
                    .abort_handle(),
                );
            } else if !pt.draining && t.is_draining() {
                let e = tasks.entry(t.addr).or_default();
                if let Some(h) = e.drain_timer.take() {
                    h.abort();
                }
                t.stop_draining(initial);
                if settings.health.enabled && e.checker.is_none() {
                    e.checker = Some(health::spawn(Arc::downgrade(self), t.clone()));
                }
            }
            t.pool
                .set_mode(settings.h2, settings.protocol == Protocol::Https);
            let outbound = self.mesh.as_ref().and_then(|m| m.outbound.as_ref());
            t.pool.set_hop(pt.mesh_hop.as_ref().zip(outbound));
            next.push(t);
        }
        for (addr, t) in by_addr {
            if let Some(mut e) = tasks.remove(&addr) {
                e.abort();
            }
            t.mark_removed();
            t.pool.clear();
            self.remove_target_metrics(&settings.name, &t.label);
            self.notifier.notify();
        }
        drop(tasks);
        self.targets.store(Arc::new(next));
        self.recompute();
    }

    /// Stops every health check and timer: the group was removed.
    pub(crate) fn stop(&self) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        for (_, mut e) in tasks.drain() {
            e.abort();
        }
        let name = self.name();
        for t in self.targets.load().iter() {
            t.mark_removed();
            t.pool.clear();
            self.remove_target_metrics(&name, &t.label);
        }
        self.all_metrics.remove_group(&name);
        if let Some(m) = &self.mesh {
            m.metrics.remove();
        }
    }

    /// Stops every health check and timer of a group replaced by one of the same ARN
    /// (its mesh endpoint changed), leaving the metrics of the group's name, which the
    /// new group uses, in place.
    pub(crate) fn stop_replaced(&self) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        for (_, mut e) in tasks.drain() {
            e.abort();
        }
        for t in self.targets.load().iter() {
            t.mark_removed();
            t.pool.clear();
        }
        if let Some(m) = &self.mesh {
            m.metrics.remove();
        }
    }

    /// A new target's metrics: the load balancer's by target group, or for a mesh group
    /// the mesh endpoint's, so the request path counts either at the same cost.
    fn target_metrics(&self, name: &str, label: &str) -> TargetMetrics {
        match &self.mesh {
            None => self.all_metrics.target(name, label, &self.metrics),
            Some(m) => self.all_metrics.mesh_target(name, label, &m.metrics),
        }
    }

    fn remove_target_metrics(&self, name: &str, label: &str) {
        self.all_metrics.remove_target(name, label);
        if let Some(m) = &self.mesh {
            m.metrics.remove_target(label);
        }
    }

    /// Targets ejected by outlier detection now, and the targets that count for the
    /// ejection cap (registered and not draining).
    pub(crate) fn outlier_counts(&self) -> (usize, usize) {
        let all = self.targets.load();
        let live = all.iter().filter(|t| !t.is_draining() && !t.is_removed());
        let (mut ejected, mut total) = (0, 0);
        for t in live {
            total += 1;
            if t.is_outlier_ejected() {
                ejected += 1;
            }
        }
        (ejected, total)
    }

    /// A target was ejected for `d`: statuses change now and again when it returns.
    pub(crate) fn ejection_changed(&self, d: std::time::Duration) {
        self.notifier.notify();
        let notifier = self.notifier.clone();
        tokio::spawn(async move {
            // A millisecond past the end, so the clock reads the ejection as over.
            tokio::time::sleep(d + std::time::Duration::from_millis(1)).await;
            notifier.notify();
        });
    }

    /// Whether a routable target other than `not` and those in `exclude` can take a
    /// request now (a 503 is only worth another try when one can).
    pub(crate) fn has_other_target(&self, not: SocketAddr, exclude: &[SocketAddr]) -> bool {
        self.routable.load().targets.iter().any(|t| {
            t.addr != not && !exclude.contains(&t.addr) && !t.is_ejected() && !t.is_draining()
        })
    }

    /// Rebuilds the routable snapshot from the targets' current states.
    pub(crate) fn recompute(&self) {
        let _g = self.recompute_lock.lock().expect("recompute lock");
        let settings = self.settings.load();
        let all = self.targets.load();
        let live: Vec<Arc<TargetState>> = all
            .iter()
            .filter(|t| !t.is_draining() && !t.is_removed())
            .cloned()
            .collect();
        let healthy: Vec<Arc<TargetState>> = live
            .iter()
            .filter(|t| t.health().is_routable())
            .cloned()
            .collect();
        let unhealthy = live.iter().filter(|t| t.health().is_unhealthy()).count();
        self.metrics.healthy_hosts.set(healthy.len() as i64);
        self.metrics.unhealthy_hosts.set(unhealthy as i64);
        let min = settings.min_healthy.max(1);
        let (targets, fail_open) = if healthy.len() >= min || live.is_empty() {
            (healthy, false)
        } else {
            (live, true)
        };
        self.routable
            .store(Arc::new(Routable::new(targets, fail_open, &settings)));
    }

    pub(crate) fn statuses(&self, out: &mut Vec<TargetStatus>) {
        for t in self.targets.load().iter() {
            out.push(TargetStatus {
                target_group_arn: self.arn.to_string(),
                addr: t.addr,
                health: t.target_health(),
                in_flight: t.in_flight(),
                request_count: t.metrics.requests.get(),
                drained: t.is_drained(),
                ejected: self.mesh.is_some() && t.is_outlier_ejected(),
            });
        }
    }

    /// Picks a target by the group's algorithm and counts a request in on it. `exclude`
    /// lists targets this request already failed on; `preferred` is a sticky target.
    pub(crate) fn pick(
        &self,
        exclude: &[SocketAddr],
        preferred: Option<SocketAddr>,
    ) -> Option<InFlight> {
        let r = self.routable.load();
        let n = r.targets.len();
        if n == 0 {
            return None;
        }
        if r.fail_open {
            self.metrics.unhealthy_routing.inc();
        }
        if let Some(p) = preferred {
            if let Some(t) = r.find(p) {
                if !exclude.contains(&t.addr) && !t.is_ejected() {
                    if let Some(g) = t.try_acquire() {
                        return Some(g);
                    }
                }
            }
        }
        let usable = |t: &Arc<TargetState>, pass: u8| {
            !exclude.contains(&t.addr) && (pass == 1 || !t.is_ejected())
        };
        let now = if r.slow_start_ms > 0 {
            self.clock.now_ms()
        } else {
            0
        };
        // Whether some target may still weigh less than 1 (in its slow start).
        let ramping = r.slow_start_ms > 0 && now < r.ramp_until_ms;
        let weight = |t: &TargetState| -> f64 {
            if !ramping {
                return 1.0;
            }
            let since = t.healthy_since_ms();
            if since == 0 {
                return 1.0;
            }
            let elapsed = now.saturating_sub(since);
            if elapsed >= r.slow_start_ms {
                1.0
            } else {
                // ALB ramps linearly; a small floor keeps a new target reachable.
                (elapsed as f64 / r.slow_start_ms as f64).max(0.05)
            }
        };
        for pass in 0..2u8 {
            match r.algorithm {
                Algorithm::RoundRobin => {
                    let start = self.rr.fetch_add(1, Ordering::Relaxed);
                    let mut fallback = None;
                    for i in 0..n {
                        let t = &r.targets[(start + i) % n];
                        if !usable(t, pass) {
                            continue;
                        }
                        if ramping {
                            let w = weight(t);
                            if w < 1.0 && rand::rng().random::<f64>() >= w {
                                fallback.get_or_insert(t);
                                continue;
                            }
                        }
                        if let Some(g) = t.try_acquire() {
                            return Some(g);
                        }
                    }
                    if let Some(g) = fallback.and_then(|t| t.try_acquire()) {
                        return Some(g);
                    }
                }
                Algorithm::LeastOutstandingRequests => {
                    // The scan starts at a rotating position, so ties go round; a target
                    // with nothing in flight has the fewest possible and ends it.
                    let start = self.rr.fetch_add(1, Ordering::Relaxed);
                    let mut best: Option<(&Arc<TargetState>, u64)> = None;
                    for i in 0..n {
                        let t = &r.targets[(start + i) % n];
                        if !usable(t, pass) {
                            continue;
                        }
                        let in_flight = t.in_flight();
                        if best.is_none_or(|(_, b)| in_flight < b) {
                            best = Some((t, in_flight));
                            if in_flight == 0 {
                                break;
                            }
                        }
                    }
                    let best = best.map(|(t, _)| t);
                    if let Some(g) = best.and_then(|t| t.try_acquire()) {
                        return Some(g);
                    }
                }
                Algorithm::WeightedRandom => {
                    if !ramping {
                        // Every weight is 1: a uniform draw. An unusable draw falls
                        // through to the weighted pass over the usable targets, so each
                        // usable target is still chosen with probability 1/usable.
                        let t = &r.targets[rand::rng().random_range(0..n)];
                        if usable(t, pass) {
                            if let Some(g) = t.try_acquire() {
                                return Some(g);
                            }
                        }
                    }
                    // Two passes over the snapshot instead of collecting candidates: no
                    // allocation on the request path.
                    let total: f64 = r
                        .targets
                        .iter()
                        .filter(|t| usable(t, pass))
                        .map(|t| weight(t))
                        .sum();
                    if total > 0.0 {
                        let mut x = rand::rng().random::<f64>() * total;
                        for t in r.targets.iter().filter(|t| usable(t, pass)) {
                            let w = weight(t);
                            if x < w {
                                if let Some(g) = t.try_acquire() {
                                    return Some(g);
                                }
                                break;
                            }
                            x -= w;
                        }
                        for t in r.targets.iter().filter(|t| usable(t, pass)) {
                            if let Some(g) = t.try_acquire() {
                                return Some(g);
                            }
                        }
                    }
                }
                Algorithm::PeakEwma => {
                    // Power of two choices: two distinct random targets, the cheaper one
                    // wins. Unusable draws are redrawn a few times before a scan.
                    let mut rng = rand::rng();
                    let mut draw = |not: Option<&Arc<TargetState>>| {
                        (0..8)
                            .map(|_| &r.targets[rng.random_range(0..n)])
                            .find(|t| usable(t, pass) && not.is_none_or(|o| !Arc::ptr_eq(o, t)))
                    };
                    let chosen = match draw(None) {
                        Some(a) if n > 1 => match draw(Some(a)) {
                            Some(b) => {
                                let ca = a.ewma_cost() / weight(a);
                                let cb = b.ewma_cost() / weight(b);
                                Some(if ca <= cb { a } else { b })
                            }
                            None => Some(a),
                        },
                        other => other,
                    };
                    if let Some(g) = chosen.and_then(|t| t.try_acquire()) {
                        return Some(g);
                    }
                    for t in r.targets.iter().filter(|t| usable(t, pass)) {
                        if let Some(g) = t.try_acquire() {
                            return Some(g);
                        }
                    }
                }
            }
        }
        None
    }
}

impl HealthChecked for GroupRuntime {
    fn current_settings(&self) -> Arc<GroupSettings> {
        self.settings.load_full()
    }

    fn health_changed(&self) {
        self.recompute();
    }
}

impl GroupRuntime {
    /// Sets the health of the target at `addr` to what a previous process serving it
    /// saw, when the target is still in its initial state (a check that already ran
    /// here wins); the routable set follows. Answers whether it changed.
    pub(crate) fn inherit_health(&self, addr: SocketAddr, health: Health, status: u16) -> bool {
        let targets = self.targets.load();
        let Some(t) = targets.iter().find(|t| t.addr == addr) else {
            return false;
        };
        if t.health() != Health::Initial || t.is_draining() {
            return false;
        }
        let changed = t.set_health(health, status);
        if changed {
            self.recompute();
        }
        changed
    }

    /// The routable target a hash maps to (source-IP stickiness).
    pub(crate) fn target_by_hash(&self, h: u64) -> Option<SocketAddr> {
        let r = self.routable.load();
        if r.targets.is_empty() {
            return None;
        }
        Some(r.targets[(h % r.targets.len() as u64) as usize].addr)
    }
}

#[cfg(test)]
mod tests;
