//! The series the sampler keeps per service and metric is the scaling engine's own
//! [`MetricSeries`], so the autoscaler hands the engine what was sampled without a copy
//! in another shape. This module bounds it (the last [`WINDOW_SECONDS`], at most
//! [`MAX_SAMPLES`]) and converts the sampler's unix seconds into the engine's instants.
//!
//! It only stores and trims samples; it does not aggregate them (the engine does) or know
//! what they measure.

use berth_autoscaling::{MetricSeries, Timestamp};

/// How much history a series keeps: the longest evaluation window a policy may ask for
/// (`MAX_EVALUATION_SECONDS`, an hour) fits.
pub const WINDOW_SECONDS: f64 = berth_model::autoscaling::policy::MAX_EVALUATION_SECONDS as f64;

/// The most samples a series holds, whatever the sampling rate (one a second fills 3600).
pub const MAX_SAMPLES: usize = 4_000;

/// One sample as the sampler's callers see it: (unix seconds, value).
pub type Sample = (f64, f64);

/// `unix_seconds` as an instant of the engine (millisecond precision).
pub fn instant(unix_seconds: f64) -> Timestamp {
    let ms = (unix_seconds * 1000.0).round();
    let ms = if ms.is_finite() { ms as i64 } else { 0 };
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// An instant of the engine as unix seconds.
pub fn unix_seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// Appends a sample taken at `at` (unix seconds) and drops what fell out of the window.
/// Non-finite values are not measurements and are dropped (by the series).
pub fn push_bounded(series: &mut MetricSeries, at: f64, value: f64) {
    if !at.is_finite() {
        return;
    }
    let now = instant(at);
    series.push(now, value);
    series.forget_up_to(instant(at - WINDOW_SECONDS));
    let surplus = series.len().saturating_sub(MAX_SAMPLES);
    if surplus > 0 {
        let cutoff = series.samples()[surplus - 1].at;
        series.forget_up_to(cutoff);
    }
}

/// The samples of `series` as (unix seconds, value), oldest first.
pub fn samples(series: &MetricSeries) -> Vec<Sample> {
    series
        .samples()
        .iter()
        .map(|s| (unix_seconds(s.at), s.value))
        .collect()
}

/// The newest sample of `series`.
pub fn latest(series: &MetricSeries) -> Option<Sample> {
    series
        .samples()
        .last()
        .map(|s| (unix_seconds(s.at), s.value))
}

/// A copy of the samples of `series` taken after `since` (unix seconds).
pub fn tail(series: &MetricSeries, since: f64) -> MetricSeries {
    let start = instant(since);
    let mut out = MetricSeries::new();
    for s in series.samples().iter().filter(|s| s.at > start) {
        out.push(s.at, s.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_longest_evaluation_window_in_time_order() {
        // The window is (newest − an hour, newest], as the engine reads windows.
        let mut w = MetricSeries::new();
        for t in 0..4000 {
            push_bounded(&mut w, f64::from(t), f64::from(t) * 2.0);
        }
        let all = samples(&w);
        assert_eq!(all.first(), Some(&(400.0, 800.0)));
        assert_eq!(latest(&w), Some((3999.0, 7998.0)));
        assert_eq!(all.len(), 3600);
        assert_eq!(tail(&w, 3996.0).len(), 3);
        // A value that is not a number is ignored.
        push_bounded(&mut w, 4000.0, f64::NAN);
        assert_eq!(latest(&w), Some((3999.0, 7998.0)));
    }

    #[test]
    fn the_sample_count_is_bounded_whatever_the_rate() {
        let mut w = MetricSeries::new();
        for i in 0..5000 {
            push_bounded(&mut w, f64::from(i) * 0.01, 1.0);
        }
        assert_eq!(w.len(), MAX_SAMPLES);
        assert_eq!(latest(&w).unwrap().0, 49.99);
    }

    #[test]
    fn unix_seconds_and_instants_convert_both_ways() {
        assert_eq!(unix_seconds(instant(1_700_000_000.25)), 1_700_000_000.25);
    }
}
