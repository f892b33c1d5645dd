//! Timestamps: seconds since the Unix epoch with a fraction, as the ECS API returns them.
//!
//! [`now`] is the system clock plus an offset that only [`advance`] moves: a simulation
//! (a test living through a week of churn in seconds) moves berth's clock forward for
//! the whole process. Nothing in berth itself calls [`advance`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch.
pub type Timestamp = f64;

/// Milliseconds [`advance`] has added to the system clock.
static ADVANCED_MS: AtomicU64 = AtomicU64::new(0);

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    let system = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    system + ADVANCED_MS.load(Ordering::Relaxed) as f64 / 1000.0
}

/// Moves [`now`] forward by `seconds` (whole milliseconds; negative counts as 0) for
/// the whole process, for simulations of long stretches of time.
pub fn advance(seconds: f64) {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    ADVANCED_MS.fetch_add(ms, Ordering::Relaxed);
}
