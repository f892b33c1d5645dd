//! A target group's retry budget: a token bucket that keeps retries within a fifth of
//! requests (plus a small reserve), so failures do not multiply the load on the targets
//! that remain. Lock-free; one atomic per group. It does not decide whether a failure is
//! retried ([`crate::attempt`] does), only whether the group can afford it.

use std::sync::atomic::{AtomicI64, Ordering};

/// Tokens a request adds to its group's retry budget.
const RETRY_DEPOSIT: i64 = 1;
/// Tokens a retry takes: one retry per five requests (20%, linkerd2-proxy's and Envoy's
/// default ratio).
const RETRY_COST: i64 = 5;
/// The budget a group starts with (ten retries) and the most it accumulates.
const RETRY_RESERVE: i64 = 10 * RETRY_COST;
const RETRY_MAX: i64 = 100 * RETRY_COST;

/// Retry tokens: each request adds [`RETRY_DEPOSIT`], each retry costs [`RETRY_COST`].
#[derive(Debug)]
pub(crate) struct RetryBudget {
    tokens: AtomicI64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            tokens: AtomicI64::new(RETRY_RESERVE),
        }
    }
}

impl RetryBudget {
    /// A request arrived: it adds to the budget.
    #[inline]
    pub(crate) fn deposit(&self) {
        if self.tokens.load(Ordering::Relaxed) < RETRY_MAX {
            self.tokens.fetch_add(RETRY_DEPOSIT, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget; false when the budget is spent, so failures do
    /// not multiply the load on the remaining targets.
    pub(crate) fn take_retry(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= RETRY_COST).then_some(b - RETRY_COST)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_a_fifth_of_requests() {
        let b = RetryBudget::default();
        let mut reserve = 0;
        while b.take_retry() {
            reserve += 1;
        }
        assert_eq!(reserve, 10, "the reserve");
        for _ in 0..100 {
            b.deposit();
        }
        let mut more = 0;
        while b.take_retry() {
            more += 1;
        }
        assert_eq!(more, 20);
    }

    #[test]
    fn the_budget_stops_growing_at_its_maximum() {
        let b = RetryBudget::default();
        for _ in 0..10_000 {
            b.deposit();
        }
        let mut n = 0;
        while b.take_retry() {
            n += 1;
        }
        assert_eq!(n, (RETRY_MAX / RETRY_COST) as usize);
    }
}
