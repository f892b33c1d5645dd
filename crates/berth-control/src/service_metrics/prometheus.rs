//! Customized metrics given as a PromQL query against a Prometheus server, through its
//! HTTP API (`GET <url>/api/v1/query?query=<PromQL>`, an instant query at the server's
//! current time).
//!
//! The answer must be one number: an instant vector with exactly one sample (write the
//! query so it aggregates, e.g. `sum(rate(http_requests_total[30s]))`), or a scalar.
//! Anything else (no sample, several, a range matrix, a string, NaN or infinity, an
//! error status) is an error that says what came back: a target-tracking policy cannot
//! pick one of several values for the user.
//!
//! The queries go through [`PrometheusApi`] so the sampler can be tested with a fake;
//! [`HttpPrometheus`] is the real client (reqwest, a timeout per query).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::MetricsError;

/// How long a query may take before it counts as missing data.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Something that answers instant PromQL queries with one number.
#[async_trait]
pub trait PrometheusApi: Send + Sync + 'static {
    /// Evaluates `query` on the Prometheus server at `url` (e.g. `http://127.0.0.1:9090`).
    async fn query(&self, url: &str, query: &str) -> Result<f64, MetricsError>;
}

/// The HTTP client for Prometheus' query API.
pub struct HttpPrometheus {
    client: reqwest::Client,
}

impl Default for HttpPrometheus {
    fn default() -> Self {
        Self::new(QUERY_TIMEOUT)
    }
}

impl HttpPrometheus {
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a client without TLS or proxies builds");
        Self { client }
    }
}

#[async_trait]
impl PrometheusApi for HttpPrometheus {
    async fn query(&self, url: &str, query: &str) -> Result<f64, MetricsError> {
        let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
        let failed = |reason: String| MetricsError::PrometheusUnreachable {
            url: url.to_string(),
            reason,
        };
        let resp = self
            .client
            .get(&endpoint)
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
        parse_answer(url, query, status.as_u16(), &body)
    }
}

/// Prometheus' response envelope.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: (f64, String),
}

/// The one number in a `/api/v1/query` answer (HTTP `status`, `body`).
pub fn parse_answer(url: &str, query: &str, status: u16, body: &[u8]) -> Result<f64, MetricsError> {
    let bad = |reason: String| MetricsError::PrometheusAnswer {
        url: url.to_string(),
        query: query.to_string(),
        reason,
    };
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "HTTP {status}, not a Prometheus API response ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    if env.status != "success" {
        return Err(bad(format!(
            "HTTP {status}, {}: {}",
            env.error_type.as_deref().unwrap_or("error"),
            env.error.as_deref().unwrap_or("no message")
        )));
    }
    let data = env
        .data
        .ok_or_else(|| bad("a success without data".into()))?;
    let value = match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|e| bad(format!("a vector that does not parse: {e}")))?;
            match samples.as_slice() {
                [one] => one.value.1.clone(),
                [] => {
                    return Err(bad(
                        "no sample (an empty vector); a scaling metric needs exactly one".into(),
                    ))
                }
                many => {
                    let series: Vec<String> = many
                        .iter()
                        .take(3)
                        .map(|s| serde_json::Value::Object(s.metric.clone()).to_string())
                        .collect();
                    return Err(bad(format!(
                        "{} samples ({}{}); a scaling metric needs exactly one: aggregate the query, e.g. with sum(...)",
                        many.len(),
                        series.join(", "),
                        if many.len() > 3 { ", ..." } else { "" }
                    )));
                }
            }
        }
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| bad(format!("a scalar that does not parse: {e}")))?;
            v
        }
        other => {
            return Err(bad(format!(
                "a {other} result; a scaling metric needs an instant vector with one sample, or a scalar"
            )))
        }
    };
    let v: f64 = value
        .parse()
        .map_err(|_| bad(format!("the value {value:?} is not a number")))?;
    if !v.is_finite() {
        return Err(bad(format!("the value is {value}, not a finite number")));
    }
    Ok(v)
}

/// A Prometheus for tests: answers from a table, records what it was asked.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct FakePrometheus {
        /// (url, query) → the answer.
        pub answers: Mutex<BTreeMap<(String, String), Result<f64, MetricsError>>>,
        pub asked: Mutex<Vec<(String, String)>>,
    }

    impl FakePrometheus {
        pub fn answer(&self, url: &str, query: &str, value: Result<f64, MetricsError>) {
            self.answers
                .lock()
                .unwrap()
                .insert((url.into(), query.into()), value);
        }
    }

    #[async_trait]
    impl PrometheusApi for FakePrometheus {
        async fn query(&self, url: &str, query: &str) -> Result<f64, MetricsError> {
            self.asked.lock().unwrap().push((url.into(), query.into()));
            self.answers
                .lock()
                .unwrap()
                .get(&(url.to_string(), query.to_string()))
                .cloned()
                .unwrap_or_else(|| {
                    Err(MetricsError::PrometheusUnreachable {
                        url: url.into(),
                        reason: "connection refused".into(),
                    })
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<f64, MetricsError> {
        parse_answer("http://p", "q", 200, body.as_bytes())
    }

    #[test]
    fn one_sample_or_a_scalar_is_the_value() {
        let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"42.25"]}]}}"#;
        assert_eq!(parse(one).unwrap(), 42.25);
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}"#;
        assert_eq!(parse(scalar).unwrap(), 7.0);
    }

    #[test]
    fn anything_but_one_finite_number_is_an_error_saying_what_came_back() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse(empty)
            .unwrap_err()
            .to_string()
            .contains("empty vector"));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1,"1"]},{"metric":{"job":"b"},"value":[1,"2"]}]}}"#;
        let e = parse(two).unwrap_err().to_string();
        assert!(e.contains("2 samples"), "{e}");
        assert!(e.contains(r#"{"job":"a"}"#), "{e}");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(matrix)
            .unwrap_err()
            .to_string()
            .contains("a matrix result"));
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(parse(nan)
            .unwrap_err()
            .to_string()
            .contains("not a finite number"));
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_answer("http://p", "sum(", 400, err.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus at http://p answered query sum( with HTTP 400, bad_data: parse error at char 5"
        );
        let html = parse("<html>not found</html>").unwrap_err().to_string();
        assert!(html.contains("not a Prometheus API response"), "{html}");
    }
}
