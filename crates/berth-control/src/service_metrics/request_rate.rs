//! ALBRequestCountPerTarget from the data plane's cumulative per-target request counters:
//! the requests a target group received between two samples, per healthy target, per
//! minute (the unit AWS's target tracking uses).
//!
//! Each sample compares every target's counter with the previous sample's:
//!
//! - a target seen before whose counter grew contributes the difference;
//! - a target whose counter went down was removed and registered again (the data plane
//!   starts its counter from 0), so all of its current count is new;
//! - a target not seen in the previous sample is new (or came back), and its counter
//!   started from 0 after that sample, so all of its count is new;
//! - a target gone since the previous sample contributes nothing more.
//!
//! A target removed and registered again between two samples, whose new count overtook
//! the old one, is taken for the same target: that interval under-counts by its old
//! count. The first sample only records the counters (a baseline).
//!
//! Healthy means `healthy`, or `unavailable` (health checks disabled: every target takes
//! traffic). A group with no healthy target has no value (missing data, never zero).
//!
//! What it does not do: read the data plane (the sampler hands it the statuses) or know
//! which service uses a group.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use berth_model::dataplane::TargetStatus;
use berth_model::elb::TargetHealthState;

/// The counters of the previous sample.
#[derive(Debug, Default)]
pub struct RequestCounts {
    last_at: Option<f64>,
    counts: HashMap<(String, SocketAddr), u64>,
}

/// One target group's value at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupRequestRate {
    /// Requests per healthy target per minute.
    PerTargetPerMinute(f64),
    /// No target of the group is healthy: no value.
    NoHealthyTarget,
}

impl RequestCounts {
    /// Takes a sample at `now` (unix seconds): each target group present in `statuses`
    /// with its rate since the previous sample. Empty for the first sample, and when
    /// `now` is not after the previous sample (which then starts a new baseline).
    pub fn sample(
        &mut self,
        now: f64,
        statuses: &[TargetStatus],
    ) -> BTreeMap<String, GroupRequestRate> {
        let previous = std::mem::take(&mut self.counts);
        let elapsed = self.last_at.map(|t| now - t).filter(|dt| *dt > 0.0);
        self.last_at = Some(now);
        let mut groups: BTreeMap<String, (u64, u32)> = BTreeMap::new();
        for s in statuses {
            let key = (s.target_group_arn.clone(), s.addr);
            let new_requests = match previous.get(&key) {
                Some(&before) if s.request_count >= before => s.request_count - before,
                // A counter that went down restarted from 0; an unseen target is new.
                _ => s.request_count,
            };
            self.counts.insert(key, s.request_count);
            let g = groups.entry(s.target_group_arn.clone()).or_default();
            g.0 += new_requests;
            if matches!(
                s.health.state,
                TargetHealthState::Healthy | TargetHealthState::Unavailable
            ) {
                g.1 += 1;
            }
        }
        let Some(elapsed) = elapsed else {
            return BTreeMap::new();
        };
        groups
            .into_iter()
            .map(|(tg, (requests, healthy))| {
                let rate = if healthy == 0 {
                    GroupRequestRate::NoHealthyTarget
                } else {
                    GroupRequestRate::PerTargetPerMinute(
                        requests as f64 / f64::from(healthy) / elapsed * 60.0,
                    )
                };
                (tg, rate)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::elb::TargetHealth;

    fn status(tg: &str, port: u16, state: TargetHealthState, count: u64) -> TargetStatus {
        TargetStatus {
            target_group_arn: tg.into(),
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            health: TargetHealth {
                state,
                reason: None,
                description: None,
            },
            in_flight: 0,
            request_count: count,
            drained: false,
            ejected: false,
        }
    }
    use TargetHealthState::*;

    fn rate(v: f64) -> GroupRequestRate {
        GroupRequestRate::PerTargetPerMinute(v)
    }

    #[test]
    fn the_first_sample_is_a_baseline_then_deltas_per_healthy_target_per_minute() {
        let mut r = RequestCounts::default();
        let s0 = [status("a", 1, Healthy, 1_000), status("a", 2, Healthy, 500)];
        assert!(r.sample(100.0, &s0).is_empty());
        // 30 + 10 requests in 2 s over 2 healthy targets: 10 per target per second.
        let s1 = [status("a", 1, Healthy, 1_030), status("a", 2, Healthy, 510)];
        assert_eq!(r.sample(102.0, &s1)["a"], rate(600.0));
        // Nothing new: a real zero.
        assert_eq!(r.sample(103.0, &s1)["a"], rate(0.0));
    }

    #[test]
    fn a_counter_that_went_down_restarted_and_counts_whole() {
        let mut r = RequestCounts::default();
        r.sample(0.0, &[status("a", 1, Healthy, 900)]);
        // Removed and registered again: its counter restarted and reached 6.
        assert_eq!(
            r.sample(1.0, &[status("a", 1, Healthy, 6)])["a"],
            rate(360.0)
        );
        assert_eq!(
            r.sample(2.0, &[status("a", 1, Healthy, 7)])["a"],
            rate(60.0)
        );
    }

    #[test]
    fn targets_coming_and_going() {
        let mut r = RequestCounts::default();
        r.sample(0.0, &[status("a", 1, Healthy, 100)]);
        // A new target (initial, so not healthy yet) already took 4 requests: they
        // count, the divisor is the one healthy target.
        let s = [status("a", 1, Healthy, 110), status("a", 2, Initial, 4)];
        assert_eq!(r.sample(1.0, &s)["a"], rate(14.0 * 60.0));
        // The first target is gone: only the second's new requests, over it alone.
        assert_eq!(
            r.sample(2.0, &[status("a", 2, Healthy, 10)])["a"],
            rate(6.0 * 60.0)
        );
        // The first comes back with a fresh counter, though above its old count: it was
        // absent from the last sample, so all of it is new.
        let s = [status("a", 1, Healthy, 120), status("a", 2, Healthy, 10)];
        assert_eq!(r.sample(3.0, &s)["a"], rate(60.0 * 60.0));
    }

    #[test]
    fn draining_and_unhealthy_targets_count_requests_but_not_as_divisor() {
        let mut r = RequestCounts::default();
        let s0 = [
            status("a", 1, Healthy, 0),
            status("a", 2, Draining, 0),
            status("a", 3, Unhealthy, 0),
            status("b", 1, Unavailable, 0),
        ];
        r.sample(0.0, &s0);
        let s1 = [
            status("a", 1, Healthy, 20),
            status("a", 2, Draining, 10),
            status("a", 3, Unhealthy, 0),
            status("b", 1, Unavailable, 3),
        ];
        let out = r.sample(60.0, &s1);
        assert_eq!(out["a"], rate(30.0));
        assert_eq!(out["b"], rate(3.0));
    }

    #[test]
    fn no_healthy_target_is_missing_data() {
        let mut r = RequestCounts::default();
        r.sample(0.0, &[status("a", 1, Initial, 0)]);
        assert_eq!(
            r.sample(1.0, &[status("a", 1, Unhealthy, 5)])["a"],
            GroupRequestRate::NoHealthyTarget
        );
    }

    #[test]
    fn a_clock_that_did_not_move_forward_starts_a_new_baseline() {
        let mut r = RequestCounts::default();
        r.sample(10.0, &[status("a", 1, Healthy, 0)]);
        assert!(r.sample(10.0, &[status("a", 1, Healthy, 5)]).is_empty());
        assert_eq!(
            r.sample(11.0, &[status("a", 1, Healthy, 6)])["a"],
            rate(60.0)
        );
    }
}
