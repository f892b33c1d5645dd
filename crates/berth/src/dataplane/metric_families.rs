//! The data plane's metric families (the proxy's and the DNS server's) across its
//! socket: a serde copy of prometheus' `MetricFamily` (floats as their bits, so NaN and
//! infinities survive JSON), and [`BridgedFamilies`], a collector for the server's
//! registry answering the families last fetched from the data plane.
//!
//! What it does not do: fetch them (the client refreshes the cache every second), or
//! check that the data plane's families do not collide with the server's (the proxy's
//! names are its own: `berth_lb_*`, `berth_target_*`, `berth_mesh_*`, and so are the
//! DNS server's, `berth_dns_*`, which the server does not register itself).

use std::sync::{Arc, Mutex};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary,
};
use serde::{Deserialize, Serialize};

/// One metric family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub metrics: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// One metric of a family: its labels and its value(s). Floats are `f64::to_bits`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    /// Counter and gauge: the value.
    #[serde(default)]
    pub value: u64,
    /// Histogram and summary: count and sum.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub sum: u64,
    /// Histogram: (upper bound, cumulative count).
    #[serde(default)]
    pub buckets: Vec<(u64, u64)>,
    /// Summary: (quantile, value).
    #[serde(default)]
    pub quantiles: Vec<(u64, u64)>,
    #[serde(default)]
    pub timestamp_ms: i64,
}

/// The serde copy of `families`.
pub fn from_prometheus(families: &[MetricFamily]) -> Vec<Family> {
    families
        .iter()
        .map(|f| {
            let kind = match f.get_field_type() {
                MetricType::COUNTER => Kind::Counter,
                MetricType::GAUGE => Kind::Gauge,
                MetricType::HISTOGRAM => Kind::Histogram,
                MetricType::SUMMARY => Kind::Summary,
                // berth registers no untyped metric; one would show as a gauge.
                MetricType::UNTYPED => Kind::Gauge,
            };
            let metrics = f
                .get_metric()
                .iter()
                .map(|m| {
                    let mut s = Sample {
                        labels: m
                            .get_label()
                            .iter()
                            .map(|l| (l.name().to_string(), l.value().to_string()))
                            .collect(),
                        timestamp_ms: m.timestamp_ms(),
                        ..Sample::default()
                    };
                    match kind {
                        Kind::Counter => s.value = m.get_counter().get_value().to_bits(),
                        Kind::Gauge => s.value = m.get_gauge().get_value().to_bits(),
                        Kind::Histogram => {
                            let h = m.get_histogram();
                            s.count = h.get_sample_count();
                            s.sum = h.get_sample_sum().to_bits();
                            s.buckets = h
                                .get_bucket()
                                .iter()
                                .map(|b| (b.upper_bound().to_bits(), b.cumulative_count()))
                                .collect();
                        }
                        Kind::Summary => {
                            let h = m.get_summary();
                            s.count = h.sample_count();
                            s.sum = h.sample_sum().to_bits();
                            s.quantiles = h
                                .get_quantile()
                                .iter()
                                .map(|q| (q.quantile().to_bits(), q.value().to_bits()))
                                .collect();
                        }
                    }
                    s
                })
                .collect();
            Family {
                name: f.name().to_string(),
                help: f.help().to_string(),
                kind,
                metrics,
            }
        })
        .collect()
}

/// Prometheus' families from their serde copy.
pub fn to_prometheus(families: &[Family]) -> Vec<MetricFamily> {
    families
        .iter()
        .map(|f| {
            let mut out = MetricFamily::default();
            out.set_name(f.name.clone());
            out.set_help(f.help.clone());
            out.set_field_type(match f.kind {
                Kind::Counter => MetricType::COUNTER,
                Kind::Gauge => MetricType::GAUGE,
                Kind::Histogram => MetricType::HISTOGRAM,
                Kind::Summary => MetricType::SUMMARY,
            });
            let metrics = f
                .metrics
                .iter()
                .map(|s| {
                    let mut m = Metric::default();
                    m.set_label(
                        s.labels
                            .iter()
                            .map(|(n, v)| {
                                let mut l = LabelPair::default();
                                l.set_name(n.clone());
                                l.set_value(v.clone());
                                l
                            })
                            .collect(),
                    );
                    if s.timestamp_ms != 0 {
                        m.set_timestamp_ms(s.timestamp_ms);
                    }
                    let value = f64::from_bits(s.value);
                    match f.kind {
                        Kind::Counter => {
                            let mut c = Counter::default();
                            c.set_value(value);
                            m.set_counter(c);
                        }
                        Kind::Gauge => {
                            let mut g = Gauge::default();
                            g.set_value(value);
                            m.set_gauge(g);
                        }
                        Kind::Histogram => {
                            let mut h = Histogram::default();
                            h.set_sample_count(s.count);
                            h.set_sample_sum(f64::from_bits(s.sum));
                            h.set_bucket(
                                s.buckets
                                    .iter()
                                    .map(|(bound, count)| {
                                        let mut b = Bucket::default();
                                        b.set_upper_bound(f64::from_bits(*bound));
                                        b.set_cumulative_count(*count);
                                        b
                                    })
                                    .collect(),
                            );
                            m.set_histogram(h);
                        }
                        Kind::Summary => {
                            let mut h = Summary::default();
                            h.set_sample_count(s.count);
                            h.set_sample_sum(f64::from_bits(s.sum));
                            h.set_quantile(
                                s.quantiles
                                    .iter()
                                    .map(|(q, v)| {
                                        let mut out = Quantile::default();
                                        out.set_quantile(f64::from_bits(*q));
                                        out.set_value(f64::from_bits(*v));
                                        out
                                    })
                                    .collect(),
                            );
                            m.set_summary(h);
                        }
                    }
                    m
                })
                .collect();
            out.set_metric(metrics);
            out
        })
        .collect()
}

/// A collector answering the data plane's families as last fetched. Register one per
/// registry (it declares no descriptors).
#[derive(Clone, Default)]
pub struct BridgedFamilies {
    latest: Arc<Mutex<Vec<MetricFamily>>>,
}

impl BridgedFamilies {
    /// Replaces what [`prometheus::core::Collector::collect`] answers.
    pub fn set(&self, families: &[Family]) {
        *self.latest.lock().expect("bridged families lock") = to_prometheus(families);
    }
}

impl prometheus::core::Collector for BridgedFamilies {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.latest.lock().expect("bridged families lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(families: &[MetricFamily]) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(families, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn families_survive_the_round_trip_and_show_in_another_registry() {
        let source = prometheus::Registry::new();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("berth_lb_requests_total", "requests"),
            &["load_balancer"],
        )
        .unwrap();
        source.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["web"]).inc_by(7);
        let g = prometheus::Gauge::new("berth_test_gauge", "a gauge").unwrap();
        source.register(Box::new(g.clone())).unwrap();
        g.set(f64::NAN);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("berth_test_seconds", "latency").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        source.register(Box::new(h.clone())).unwrap();
        h.observe(0.5);
        h.observe(2.0);

        let gathered = source.gather();
        let json = serde_json::to_vec(&from_prometheus(&gathered)).unwrap();
        let back: Vec<Family> = serde_json::from_slice(&json).unwrap();
        assert_eq!(text(&to_prometheus(&back)), text(&gathered));

        let server = prometheus::Registry::new();
        let own = prometheus::IntCounter::new("berth_server_total", "own").unwrap();
        server.register(Box::new(own)).unwrap();
        let bridged = BridgedFamilies::default();
        server.register(Box::new(bridged.clone())).unwrap();
        bridged.set(&back);
        let shown = text(&server.gather());
        assert!(
            shown.contains("berth_lb_requests_total{load_balancer=\"web\"} 7"),
            "{shown}"
        );
        assert!(shown.contains("berth_test_gauge NaN"), "{shown}");
        assert!(
            shown.contains("berth_test_seconds_bucket{le=\"1\"} 1"),
            "{shown}"
        );
        assert!(shown.contains("berth_server_total 0"), "{shown}");
    }
}
