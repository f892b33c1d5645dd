//! A bounded series of timestamped metric values: what the sampler keeps per service and
//! metric, and what the autoscaler reads.
//!
//! It only stores and trims samples; it does not aggregate them (the scaling engine
//! does) or know what they measure.

use std::collections::VecDeque;

/// How much history a window keeps: AWS's longest default alarm (15 one-minute
/// datapoints for scale-in) fits.
pub const WINDOW_SECONDS: f64 = 15.0 * 60.0;

/// The most samples a window holds, whatever the sampling rate (one a second fills 900).
pub const MAX_SAMPLES: usize = 2_000;

/// One sample: (unix seconds, value).
pub type Sample = (f64, f64);

/// Samples in time order, the oldest at most [`WINDOW_SECONDS`] older than the newest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricWindow {
    samples: VecDeque<Sample>,
}

impl MetricWindow {
    /// Appends a sample and drops what fell out of the window. A sample older than the
    /// newest one is ignored: the window only moves forward.
    pub fn push(&mut self, at: f64, value: f64) {
        if !at.is_finite() || !value.is_finite() {
            return;
        }
        if self.samples.back().is_some_and(|&(last, _)| at < last) {
            return;
        }
        self.samples.push_back((at, value));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| t < at - WINDOW_SECONDS)
            || self.samples.len() > MAX_SAMPLES
        {
            self.samples.pop_front();
        }
    }

    /// All samples, oldest first.
    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// The samples taken at or after `since` (unix seconds), oldest first.
    pub fn since(&self, since: f64) -> impl Iterator<Item = Sample> + '_ {
        self.samples
            .iter()
            .copied()
            .filter(move |&(t, _)| t >= since)
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_fifteen_minutes_in_time_order() {
        let mut w = MetricWindow::default();
        for t in 0..1000 {
            w.push(f64::from(t), f64::from(t) * 2.0);
        }
        assert_eq!(w.samples().front(), Some(&(99.0, 198.0)));
        assert_eq!(w.latest(), Some((999.0, 1998.0)));
        assert_eq!(w.samples().len(), 901);
        assert_eq!(w.since(997.0).collect::<Vec<_>>().len(), 3);
        // Going back in time, or a value that is not a number, is ignored.
        w.push(500.0, 1.0);
        w.push(1000.0, f64::NAN);
        assert_eq!(w.latest(), Some((999.0, 1998.0)));
    }

    #[test]
    fn the_sample_count_is_bounded_whatever_the_rate() {
        let mut w = MetricWindow::default();
        for i in 0..5000 {
            w.push(f64::from(i) * 0.01, 1.0);
        }
        assert_eq!(w.samples().len(), MAX_SAMPLES);
        assert_eq!(w.latest().unwrap().0, 49.99);
    }
}
