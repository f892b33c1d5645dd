//! Prometheus metrics of the DNS server.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `berth_dns_queries_total` | type, result | queries by record type (A, AAAA, SRV, ...; `OTHER` for the rest) and result: `answered` (NOERROR from berth's records, empty answers included), `nxdomain`, `refused`, `forwarded` (relayed to an upstream server, which answered), `servfail` (no upstream answered), `formerr` (not exactly one question) |
//! | `berth_dns_records` | | names in the published snapshot |
//!
//! Every label child is created up front, so counting a query touches no lock.

use std::collections::HashMap;

use hickory_proto::rr::RecordType;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The record types with a label value of their own.
const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::ANY,
    RecordType::SOA,
    RecordType::NS,
    RecordType::PTR,
    RecordType::TXT,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::HTTPS,
    RecordType::SVCB,
    RecordType::CAA,
];

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryResult {
    Answered,
    NxDomain,
    Refused,
    Forwarded,
    ServFail,
    FormErr,
}

const RESULTS: [QueryResult; 6] = [
    QueryResult::Answered,
    QueryResult::NxDomain,
    QueryResult::Refused,
    QueryResult::Forwarded,
    QueryResult::ServFail,
    QueryResult::FormErr,
];

impl QueryResult {
    fn label(self) -> &'static str {
        match self {
            QueryResult::Answered => "answered",
            QueryResult::NxDomain => "nxdomain",
            QueryResult::Refused => "refused",
            QueryResult::Forwarded => "forwarded",
            QueryResult::ServFail => "servfail",
            QueryResult::FormErr => "formerr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

type ByResult = [IntCounter; RESULTS.len()];

pub(crate) struct Metrics {
    by_type: HashMap<RecordType, ByResult>,
    other_type: ByResult,
    records: IntGauge,
}

impl Metrics {
    pub(crate) fn new(registry: &Registry) -> Metrics {
        let queries = IntCounterVec::new(
            Opts::new(
                "berth_dns_queries_total",
                "DNS queries answered by berth's DNS server, by record type and result.",
            ),
            &["type", "result"],
        )
        .expect("valid metric");
        let records = IntGauge::new(
            "berth_dns_records",
            "Names the DNS server answers for (the published discovery records).",
        )
        .expect("valid metric");
        for (name, metric) in [
            (
                "berth_dns_queries_total",
                Box::new(queries.clone()) as Box<dyn prometheus::core::Collector>,
            ),
            ("berth_dns_records", Box::new(records.clone())),
        ] {
            if let Err(e) = registry.register(metric) {
                tracing::warn!(metric = name, error = %e, "metric not registered");
            }
        }
        let children = |type_label: &str| -> ByResult {
            RESULTS.map(|r| queries.with_label_values(&[type_label, r.label()]))
        };
        Metrics {
            by_type: TYPES
                .iter()
                .map(|t| (*t, children(&t.to_string())))
                .collect(),
            other_type: children("OTHER"),
            records,
        }
    }

    /// Counts one query; `None` for a message without exactly one question.
    pub(crate) fn count(&self, query_type: Option<RecordType>, result: QueryResult) {
        let by_result = query_type
            .and_then(|t| self.by_type.get(&t))
            .unwrap_or(&self.other_type);
        by_result[result.index()].inc();
    }

    pub(crate) fn set_records(&self, names: usize) {
        self.records.set(i64::try_from(names).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_counted_by_type_and_result_with_unlisted_types_as_other() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry);
        metrics.count(Some(RecordType::A), QueryResult::Answered);
        metrics.count(Some(RecordType::A), QueryResult::Answered);
        metrics.count(Some(RecordType::NULL), QueryResult::Refused);
        metrics.count(None, QueryResult::FormErr);
        metrics.set_records(3);
        let families = registry.gather();
        let value = |type_label: &str, result: &str| -> u64 {
            let family = families
                .iter()
                .find(|f| f.name() == "berth_dns_queries_total")
                .unwrap();
            family
                .get_metric()
                .iter()
                .find(|m| {
                    let labels = m.get_label();
                    labels
                        .iter()
                        .any(|l| l.name() == "type" && l.value() == type_label)
                        && labels
                            .iter()
                            .any(|l| l.name() == "result" && l.value() == result)
                })
                .map(|m| m.get_counter().get_value() as u64)
                .unwrap()
        };
        assert_eq!(value("A", "answered"), 2);
        assert_eq!(value("OTHER", "refused"), 1);
        assert_eq!(value("OTHER", "formerr"), 1);
        assert_eq!(value("SRV", "answered"), 0);
        let records = families
            .iter()
            .find(|f| f.name() == "berth_dns_records")
            .unwrap();
        assert_eq!(records.get_metric()[0].get_gauge().get_value(), 3.0);
    }
}
