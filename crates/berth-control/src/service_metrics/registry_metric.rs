//! Customized metrics read from berth's own Prometheus registry (the one the control
//! plane is given, which the proxy writes too), by metric name and labels.
//!
//! Every series of the named metric that carries all the given labels (other labels may
//! differ) is matched, and the matches are summed, as PromQL's `sum` would:
//!
//! - gauges: the sum of the current values;
//! - counters: the per-second rate of the sum between two samples, each series' increase
//!   counted from 0 when it went down (a reset) or is new; the first sample of a metric
//!   is a baseline and gives no value;
//! - histograms and summaries (and untyped metrics, which berth does not register) are
//!   refused: a scaling metric is one number.
//!
//! A metric the registry does not have, or no matching series, is an error (missing
//! data). What it does not do: query a Prometheus server (see [`super::prometheus`]).

use std::collections::{BTreeMap, HashMap};

use prometheus::proto::{MetricFamily, MetricType};

use super::MetricsError;

/// One of berth's metrics: its name and the labels every counted series carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryMetric {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Display for RegistryMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{{", self.name)?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// A counter's series values at the previous sample, to compute its rate.
#[derive(Debug, Default, Clone)]
pub struct CounterBaseline {
    at: Option<f64>,
    series: HashMap<Vec<(String, String)>, f64>,
}

/// What one read gives: a value, or nothing yet (a counter's first sample).
pub type RegistryValue = Option<f64>;

/// Reads `metric` from `families` (a registry's `gather()`) at `now`; `baseline` keeps a
/// counter's previous values between reads.
pub fn read(
    families: &[MetricFamily],
    metric: &RegistryMetric,
    now: f64,
    baseline: &mut CounterBaseline,
) -> Result<RegistryValue, MetricsError> {
    let family = families
        .iter()
        .find(|f| f.name() == metric.name)
        .ok_or_else(|| MetricsError::UnknownRegistryMetric {
            name: metric.name.clone(),
        })?;
    let kind = family.get_field_type();
    if !matches!(kind, MetricType::GAUGE | MetricType::COUNTER) {
        return Err(MetricsError::UnsupportedMetricType {
            name: metric.name.clone(),
            kind: format!("{kind:?}").to_lowercase(),
        });
    }
    let matching: Vec<_> = family
        .get_metric()
        .iter()
        .filter(|m| {
            metric.labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k.as_str() && l.value() == v.as_str())
            })
        })
        .collect();
    if matching.is_empty() {
        return Err(MetricsError::NoMatchingSeries {
            metric: metric.to_string(),
        });
    }
    match kind {
        MetricType::COUNTER => {
            let previous = std::mem::take(&mut baseline.series);
            let elapsed = baseline.at.map(|t| now - t).filter(|dt| *dt > 0.0);
            baseline.at = Some(now);
            let mut increase = 0.0;
            for m in matching {
                let key: Vec<(String, String)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let value = m.get_counter().get_value();
                increase += match previous.get(&key) {
                    Some(&before) if value >= before => value - before,
                    _ => value,
                };
                baseline.series.insert(key, value);
            }
            Ok(elapsed.map(|dt| increase / dt))
        }
        _ => Ok(Some(
            matching.iter().map(|m| m.get_gauge().get_value()).sum(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    fn metric(name: &str, labels: &[(&str, &str)]) -> RegistryMetric {
        RegistryMetric {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn gauges_sum_the_series_carrying_the_labels() {
        let r = Registry::new();
        let g = GaugeVec::new(Opts::new("queue_depth", "h"), &["queue", "shard"]).unwrap();
        r.register(Box::new(g.clone())).unwrap();
        g.with_label_values(&["jobs", "1"]).set(3.0);
        g.with_label_values(&["jobs", "2"]).set(4.5);
        g.with_label_values(&["mail", "1"]).set(100.0);
        let mut b = CounterBaseline::default();
        let jobs = metric("queue_depth", &[("queue", "jobs")]);
        assert_eq!(read(&r.gather(), &jobs, 0.0, &mut b).unwrap(), Some(7.5));
        let one = metric("queue_depth", &[("queue", "jobs"), ("shard", "2")]);
        assert_eq!(read(&r.gather(), &one, 0.0, &mut b).unwrap(), Some(4.5));
        let all = metric("queue_depth", &[]);
        assert_eq!(read(&r.gather(), &all, 0.0, &mut b).unwrap(), Some(107.5));
        let none = metric("queue_depth", &[("queue", "sms")]);
        let e = read(&r.gather(), &none, 0.0, &mut b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no series of queue_depth{queue=\"sms\"} in berth's metrics carries those labels"
        );
    }

    #[test]
    fn counters_read_as_per_second_rates_across_resets_and_new_series() {
        let r = Registry::new();
        let c = IntCounterVec::new(Opts::new("hits_total", "h"), &["target"]).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["a"]).inc_by(100);
        let m = metric("hits_total", &[]);
        let mut b = CounterBaseline::default();
        assert_eq!(read(&r.gather(), &m, 10.0, &mut b).unwrap(), None);
        c.with_label_values(&["a"]).inc_by(20);
        c.with_label_values(&["b"]).inc_by(4);
        assert_eq!(read(&r.gather(), &m, 12.0, &mut b).unwrap(), Some(12.0));
        // Series a removed and back from 0 (a reset): its whole count is new.
        c.remove_label_values(&["a"]).unwrap();
        c.with_label_values(&["a"]).inc_by(3);
        assert_eq!(read(&r.gather(), &m, 13.0, &mut b).unwrap(), Some(3.0));
    }

    #[test]
    fn histograms_and_unknown_names_are_errors_naming_the_metric() {
        let r = Registry::new();
        let h = HistogramVec::new(HistogramOpts::new("latency_seconds", "h"), &["x"]).unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h.with_label_values(&["1"]).observe(0.1);
        let mut b = CounterBaseline::default();
        let e = read(&r.gather(), &metric("latency_seconds", &[]), 0.0, &mut b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "latency_seconds is a histogram; a customized metric from berth's registry must be a gauge or a counter (read as a per-second rate)"
        );
        let e = read(&r.gather(), &metric("nope", &[]), 0.0, &mut b).unwrap_err();
        assert_eq!(e.to_string(), "berth has no metric named nope");
    }
}
