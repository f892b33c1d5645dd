//! Scheduled actions: a [`Schedule`] within an optional `startTime`/`endTime` that sets the
//! target's `minCapacity` and/or `maxCapacity` when it fires. The desired count is then
//! clamped into the new bounds by [`crate::decision::evaluate`]; cooldowns do not apply.

use std::time::Duration;

use jiff::Timestamp;

use crate::schedule::Schedule;
use crate::target::CapacityBounds;

/// More firings than this between two evaluations are not walked one by one: the search
/// gives up (a schedule firing every minute covers about ten weeks before it does).
const MAX_FIRINGS_PER_EVALUATION: usize = 100_000;

/// A compiled scheduled action.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledAction {
    pub name: String,
    pub schedule: Schedule,
    /// No firing before this instant. A `rate` schedule's first firing is here.
    pub start_time: Option<Timestamp>,
    /// No firing after this instant.
    pub end_time: Option<Timestamp>,
    pub min_capacity: Option<u32>,
    pub max_capacity: Option<u32>,
    /// When the action was created: without `start_time`, a `rate` schedule first fires one
    /// period after this.
    pub created_at: Timestamp,
}

impl ScheduledAction {
    /// The first firing strictly after `after`, within `[start_time, end_time]`.
    pub fn next_firing_after(&self, after: Timestamp) -> Option<Timestamp> {
        let rate_anchor = match (self.start_time, self.schedule.rate()) {
            (Some(start), _) => start,
            (None, Some(period)) => self
                .created_at
                .checked_add(period)
                .unwrap_or(Timestamp::MAX),
            (None, None) => self.created_at,
        };
        let search_from = match self.start_time {
            // Strictly after `start − 1 ns` is at or after `start`.
            Some(start) if start > after => start
                .checked_sub(Duration::from_nanos(1))
                .unwrap_or(Timestamp::MIN),
            _ => after,
        };
        let next = self.schedule.next_after(search_from, rate_anchor)?;
        match self.end_time {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The bounds after this action: its `minCapacity`/`maxCapacity` where it has them.
    /// When only one is given and it crosses the other, the other follows it.
    pub fn apply_to(&self, bounds: CapacityBounds) -> CapacityBounds {
        let min = self.min_capacity.unwrap_or(bounds.min);
        let max = self.max_capacity.unwrap_or(bounds.max);
        match (self.min_capacity, self.max_capacity) {
            (Some(_), None) if min > max => CapacityBounds { min, max: min },
            (None, Some(_)) if min > max => CapacityBounds { min: max, max },
            _ => CapacityBounds {
                min: min.min(max),
                max,
            },
        }
    }
}

/// The action whose latest firing in `(since, now]` is the latest of all, with that firing
/// (the later action in the list on a tie).
pub fn latest_firing(
    actions: &[ScheduledAction],
    since: Timestamp,
    now: Timestamp,
) -> Option<(&ScheduledAction, Timestamp)> {
    let mut latest: Option<(&ScheduledAction, Timestamp)> = None;
    for action in actions {
        let mut cursor = since;
        let mut last = None;
        for _ in 0..MAX_FIRINGS_PER_EVALUATION {
            match action.next_firing_after(cursor) {
                Some(firing) if firing <= now => {
                    last = Some(firing);
                    cursor = firing;
                }
                _ => break,
            }
        }
        if let Some(firing) = last {
            if latest.is_none_or(|(_, best)| firing >= best) {
                latest = Some((action, firing));
            }
        }
    }
    latest
}
