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
        let routable = Routable {
            targets: Vec::new(),
            fail_open: false,
            algorithm: settings.algorithm,
            slow_start_ms: settings.slow_start.as_millis() as u64,
        };
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
        self.routable.store(Arc::new(Routable {
            targets,
            fail_open,
            algorithm: settings.algorithm,
            slow_start_ms: settings.slow_start.as_millis() as u64,
        }));
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
            if let Some(t) = r.targets.iter().find(|t| t.addr == p) {
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
        let weight = |t: &TargetState| -> f64 {
            if r.slow_start_ms == 0 {
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
                        if r.slow_start_ms > 0 {
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
                    let start = self.rr.fetch_add(1, Ordering::Relaxed);
                    let mut best: Option<&Arc<TargetState>> = None;
                    for i in 0..n {
                        let t = &r.targets[(start + i) % n];
                        if !usable(t, pass) {
                            continue;
                        }
                        if best.is_none_or(|b| t.in_flight() < b.in_flight()) {
                            best = Some(t);
                        }
                    }
                    if let Some(g) = best.and_then(|t| t.try_acquire()) {
                        return Some(g);
                    }
                }
                Algorithm::WeightedRandom => {
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
mod tests {
    use super::*;
    use crate::group_settings::Stickiness;
    use berth_model::elb::TargetGroup;
    use std::time::Duration;

    fn group(attrs: serde_json::Value) -> Arc<GroupRuntime> {
        let tg: TargetGroup = serde_json::from_value(serde_json::json!({
            "targetGroupName": "web", "targetGroupArn": "arn:tg", "attributes": attrs
        }))
        .unwrap();
        GroupRuntime::new(
            "arn:tg",
            GroupSettings::from_model(&tg, &tg.validate().unwrap()).unwrap(),
            &Metrics::new(&prometheus::Registry::new()),
            Notifier::new(),
            Clock::new(),
            None,
        )
    }

    #[test]
    fn settings_follow_the_model() {
        let g = group(serde_json::json!({
            "load_balancing.algorithm.type": "peak_ewma",
            "stickiness.enabled": "true",
            "stickiness.type": "app_cookie",
            "stickiness.app_cookie.cookie_name": "sid",
            "deregistration_delay.timeout_seconds": "7",
        }));
        let s = g.settings.load();
        assert_eq!(s.algorithm, Algorithm::PeakEwma);
        assert_eq!(s.deregistration_delay, Duration::from_secs(7));
        assert!(matches!(&s.stickiness, Some(Stickiness::AppCookie { name, .. }) if name == "sid"));
        assert_eq!(s.health.interval, Duration::from_secs(30));
        assert!(s.health.matches(200) && !s.health.matches(204));
    }

    #[tokio::test]
    async fn routable_excludes_initial_and_draining_targets_until_fail_open() {
        let g = group(serde_json::json!({}));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let pt = |addr, draining| ProxyTarget {
            id: "127.0.0.1".into(),
            port: addr_port(addr),
            addr,
            draining,
            mesh_hop: None,
        };
        fn addr_port(a: SocketAddr) -> u32 {
            a.port() as u32
        }
        let settings = g.settings.load_full();
        g.update((*settings).clone(), &[pt(a, false), pt(b, false)]);
        // Both initial: fail open to both.
        assert!(g.routable.load().fail_open);
        let ta = g.targets.load()[0].clone();
        ta.set_health(Health::Healthy, 0);
        g.recompute();
        let r = g.routable.load();
        assert!(!r.fail_open);
        assert_eq!(r.targets.len(), 1);
        assert_eq!(g.pick(&[], None).unwrap().target().addr, a);
        // a drains: b (initial) is all there is, so the group fails open to it.
        g.update((*settings).clone(), &[pt(a, true), pt(b, false)]);
        assert_eq!(g.pick(&[], None).unwrap().target().addr, b);
        assert_eq!(g.pick(&[b], None).map(|f| f.target().addr), None);
    }
}
