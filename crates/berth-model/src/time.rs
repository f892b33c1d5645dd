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

/// `ts` as RFC 3339 in UTC with nanoseconds (`2020-10-02T00:43:06.202617438Z`), as ECS's
/// task metadata writes times; `whole_seconds` leaves the fraction out
/// (`2020-10-02T00:43:06Z`), as credential expirations are written.
pub fn rfc3339(ts: Timestamp, whole_seconds: bool) -> String {
    let secs = ts.floor() as i64;
    let nanos = (((ts - ts.floor()) * 1e9).round() as i64).clamp(0, 999_999_999);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    if whole_seconds {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z")
    }
}

/// The proleptic Gregorian date of day `z` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0.0, true), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_601_599_386.5, false),
            "2020-10-02T00:43:06.500000000Z"
        );
        assert_eq!(rfc3339(951_782_400.0, true), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599.0, true), "2026-12-31T23:59:59Z");
    }
}
