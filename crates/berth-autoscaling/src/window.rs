//! Metric windows: a series of timestamped samples and its aggregation over the window
//! that ends at a given instant (average, minimum, maximum, latest).
//!
//! The missing-data rule: the window of length `L` at instant `now` holds the samples
//! taken in `(now − L, now]`. It has data when it holds at least `min_samples` of them;
//! otherwise the window is [`MissingData`] and no policy acts on it. Samples from the
//! future (after `now`) are ignored. The series neither fetches nor stores anything: the
//! caller appends what it measured and drops what is older than its longest window.

use std::time::Duration;

use jiff::Timestamp;

/// One measurement of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Timestamp,
    pub value: f64,
}

/// How the samples in a window are reduced to one value (CloudWatch's statistics, plus
/// the newest sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Minimum,
    Maximum,
    /// The newest sample in the window.
    Latest,
}

impl Statistic {
    /// The word used in scaling causes ("average", "maximum", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Average => "average",
            Statistic::Minimum => "minimum",
            Statistic::Maximum => "maximum",
            Statistic::Latest => "latest",
        }
    }
}

/// Which samples count: the last `length` of time, and how many samples it must hold
/// before it says anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub length: Duration,
    /// Fewer samples than this in the window is missing data. At least 1.
    pub min_samples: usize,
}

impl Window {
    pub const fn new(length: Duration, min_samples: usize) -> Window {
        Window {
            length,
            min_samples,
        }
    }
}

/// The window held fewer samples than it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingData {
    pub found: usize,
    pub needed: usize,
}

/// A metric's recent samples, kept in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSeries {
    samples: Vec<Sample>,
}

impl MetricSeries {
    pub fn new() -> MetricSeries {
        MetricSeries::default()
    }

    /// Adds a sample, keeping the series in time order (a late sample is inserted where
    /// it belongs). Non-finite values (NaN, infinities) are not measurements and are
    /// dropped.
    pub fn push(&mut self, at: Timestamp, value: f64) {
        if !value.is_finite() {
            return;
        }
        let position = self.samples.partition_point(|sample| sample.at <= at);
        self.samples.insert(position, Sample { at, value });
    }

    /// Drops the samples taken at or before `cutoff`.
    pub fn forget_up_to(&mut self, cutoff: Timestamp) {
        let keep_from = self.samples.partition_point(|sample| sample.at <= cutoff);
        self.samples.drain(..keep_from);
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples in `(now − window.length, now]`.
    pub fn in_window(&self, now: Timestamp, length: Duration) -> &[Sample] {
        let start = now.checked_sub(length).unwrap_or(Timestamp::MIN);
        let from = self.samples.partition_point(|sample| sample.at <= start);
        let to = self.samples.partition_point(|sample| sample.at <= now);
        &self.samples[from..to.max(from)]
    }

    /// The window's value under `statistic`, or [`MissingData`] when it holds fewer than
    /// `window.min_samples` samples.
    pub fn aggregate(
        &self,
        now: Timestamp,
        window: Window,
        statistic: Statistic,
    ) -> Result<f64, MissingData> {
        let samples = self.in_window(now, window.length);
        let needed = window.min_samples.max(1);
        if samples.len() < needed {
            return Err(MissingData {
                found: samples.len(),
                needed,
            });
        }
        let values = samples.iter().map(|sample| sample.value);
        let value = match statistic {
            Statistic::Average => values.sum::<f64>() / samples.len() as f64,
            Statistic::Minimum => values.fold(f64::INFINITY, f64::min),
            Statistic::Maximum => values.fold(f64::NEG_INFINITY, f64::max),
            Statistic::Latest => samples[samples.len() - 1].value,
        };
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn series(points: &[(i64, f64)]) -> MetricSeries {
        let mut series = MetricSeries::new();
        for &(second, value) in points {
            series.push(at(second), value);
        }
        series
    }

    #[test]
    fn aggregates_only_the_samples_inside_the_window() {
        // Samples at 0..=10 s; the 5 s window at 10 s holds 6..=10 (5 is on the open edge).
        let series = series(&(0..=10).map(|s| (s, s as f64)).collect::<Vec<_>>());
        let window = Window::new(Duration::from_secs(5), 1);
        let now = at(10);
        assert_eq!(series.aggregate(now, window, Statistic::Average), Ok(8.0));
        assert_eq!(series.aggregate(now, window, Statistic::Minimum), Ok(6.0));
        assert_eq!(series.aggregate(now, window, Statistic::Maximum), Ok(10.0));
        assert_eq!(series.aggregate(now, window, Statistic::Latest), Ok(10.0));
    }

    #[test]
    fn a_window_with_too_few_samples_is_missing_data() {
        let series = series(&[(0, 50.0), (8, 60.0), (9, 70.0)]);
        let window = Window::new(Duration::from_secs(5), 3);
        assert_eq!(
            series.aggregate(at(10), window, Statistic::Average),
            Err(MissingData {
                found: 2,
                needed: 3
            })
        );
        // Samples after `now` do not count either.
        assert_eq!(
            series.aggregate(at(7), window, Statistic::Average),
            Err(MissingData {
                found: 0,
                needed: 3
            })
        );
    }

    #[test]
    fn late_samples_are_kept_in_order_and_non_finite_ones_dropped() {
        let mut series = series(&[(0, 1.0), (2, 3.0)]);
        series.push(at(1), 2.0);
        series.push(at(3), f64::NAN);
        let values: Vec<f64> = series.samples().iter().map(|s| s.value).collect();
        assert_eq!(values, vec![1.0, 2.0, 3.0]);
        series.forget_up_to(at(1));
        assert_eq!(series.len(), 1);
        assert_eq!(series.samples()[0].at, at(2));
    }
}
