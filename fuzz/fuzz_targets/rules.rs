//! Listener rules compiled from arbitrary condition strings and matched against an
//! arbitrary request: compiling never panics, and matching picks the same rule whether
//! the headers come as hyper's map or as the fast path's raw headers.
#![no_main]

use berth_model::elb::{Action, Rule, RuleCondition};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Cond {
    kind: u8,
    values: Vec<String>,
    name: String,
    pairs: Vec<(Option<String>, String)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rules: Vec<Vec<Cond>>,
    host: String,
    path: String,
    query: Option<String>,
    method: String,
    headers: Vec<(String, String)>,
    source: [u8; 4],
}

const FIELDS: [&str; 7] = [
    "host-header",
    "path-pattern",
    "http-header",
    "http-request-method",
    "query-string",
    "source-ip",
    "unknown",
];

fn fixed(code: &str) -> Action {
    serde_json::from_value(serde_json::json!({
        "type": "fixed-response",
        "fixedResponseConfig": {"statusCode": code},
    }))
    .expect("a fixed-response action")
}

fuzz_target!(|input: Input| {
    let rules: Vec<Rule> = input
        .rules
        .iter()
        .take(8)
        .enumerate()
        .map(|(i, conds)| Rule {
            priority: i as u32 + 1,
            conditions: conds
                .iter()
                .take(5)
                .map(|c| RuleCondition {
                    field: FIELDS[usize::from(c.kind) % FIELDS.len()].to_string(),
                    values: c.values.clone(),
                    http_header_config: (c.kind % 3 == 0).then(|| berth_model::elb::HttpHeaderConfig {
                        http_header_name: c.name.clone(),
                        values: c.values.clone(),
                    }),
                    query_string_config: (c.kind % 5 == 0).then(|| {
                        c.pairs
                            .iter()
                            .map(|(k, v)| berth_model::elb::QueryStringKeyValue {
                                key: k.clone(),
                                value: v.clone(),
                            })
                            .collect()
                    }),
                })
                .collect(),
            actions: vec![fixed("200")],
            rule_arn: String::new(),
        })
        .collect();
    berth_proxy::fuzzing::rules(
        &rules,
        &[fixed("404")],
        &input.host,
        &input.path,
        input.query.as_deref(),
        &input.method,
        &input.headers,
        std::net::IpAddr::from(input.source),
    );
});
