//! Which AWS protocol a request speaks, and how errors are written back in it.
//!
//! - JSON 1.1 (ECS, Application Auto Scaling): `X-Amz-Target: <prefix>.<Operation>`, a
//!   JSON object body; errors are `{"__type": code, "message": ...}`.
//! - Query (ELBv2): a form-encoded body with `Action=<Operation>&Version=...`; errors are
//!   `<ErrorResponse>` documents.
//!
//! Every answer carries a request id in `x-amzn-RequestId`, where botocore reads it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The target prefix of ECS's JSON operations.
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
/// The target prefix of Application Auto Scaling's JSON operations.
pub const AUTOSCALING_TARGET_PREFIX: &str = "AnyScaleFrontendService";
/// The content type of JSON 1.1 answers.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What a `POST /` is, read from its headers and body.
#[derive(Debug, PartialEq)]
pub enum Recognised {
    /// JSON 1.1: the target prefix (the service) and the operation.
    Json { prefix: String, operation: String },
    /// The query protocol: the form's parameters in order.
    Query { params: Vec<(String, String)> },
    /// Neither: the request is not for the AWS front door.
    NotAws,
}

/// Recognises the protocol of a `POST /` from its headers and body.
pub fn recognise(headers: &HeaderMap, body: &[u8]) -> Recognised {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
        return Recognised::Json {
            prefix: prefix.to_string(),
            operation: operation.to_string(),
        };
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if params.iter().any(|(k, _)| k == "Action") {
        Recognised::Query { params }
    } else {
        Recognised::NotAws
    }
}

/// The IAM action a `POST /` asks for (`ecs:CreateService`,
/// `elasticloadbalancing:CreateListener`, `application-autoscaling:PutScalingPolicy`),
/// for a policy layer in front of the front door; `None` when it is no AWS request.
pub fn iam_action(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    match recognise(headers, body) {
        Recognised::Json { prefix, operation } => {
            let service = match prefix.as_str() {
                ECS_TARGET_PREFIX => "ecs",
                AUTOSCALING_TARGET_PREFIX => "application-autoscaling",
                _ => return None,
            };
            Some(format!("{service}:{operation}"))
        }
        Recognised::Query { params } => params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, a)| format!("elasticloadbalancing:{a}")),
        Recognised::NotAws => None,
    }
}

/// An error as AWS names it: a code (`ClusterNotFoundException`, `TargetGroupNotFound`),
/// a message, and the HTTP status (400 for the caller's faults, 500 for the server's).
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl AwsError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status: 400,
        }
    }

    /// `InvalidParameterException`, ECS's and Application Auto Scaling's bad-input error
    /// (the latter spells it `ValidationException`; see [`AwsError::validation`]).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    /// `ValidationException`, Application Auto Scaling's bad-input error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// `SerializationException`: a member of the wrong type, or a body that is not a
    /// JSON object.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// A server-side failure (`ServerException` in ECS).
    pub fn server(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: 500,
            ..Self::new(code, message)
        }
    }

    /// The JSON 1.1 error answer.
    pub fn json_response(&self, request_id: &str) -> Response {
        let body = serde_json::json!({"__type": self.code, "message": self.message});
        let mut r = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            body.to_string(),
        )
            .into_response();
        set_headers(&mut r, JSON_CONTENT_TYPE, request_id);
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
        r
    }

    /// The query protocol's `<ErrorResponse>` answer in namespace `xmlns`.
    pub fn query_response(&self, xmlns: &str, request_id: &str) -> Response {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(&self.code),
            xml_escape(&self.message)
        );
        let mut r = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            body,
        )
            .into_response();
        set_headers(&mut r, "text/xml", request_id);
        r
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A successful JSON 1.1 answer.
pub fn json_ok(body: &serde_json::Value, request_id: &str) -> Response {
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    set_headers(&mut r, JSON_CONTENT_TYPE, request_id);
    r
}

/// A successful query answer: the XML document as given.
pub fn xml_ok(body: String, request_id: &str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    set_headers(&mut r, "text/xml", request_id);
    r
}

fn set_headers(r: &mut Response, content_type: &'static str, request_id: &str) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A new request id (UUID-shaped, as AWS's).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_header_is_json_and_a_form_with_action_is_query() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonEC2ContainerServiceV20141113.ListClusters"),
        );
        assert_eq!(
            recognise(&h, b"{}"),
            Recognised::Json {
                prefix: ECS_TARGET_PREFIX.into(),
                operation: "ListClusters".into()
            }
        );
        let h = HeaderMap::new();
        match recognise(&h, b"Action=DescribeLoadBalancers&Version=2015-12-01") {
            Recognised::Query { params } => {
                assert_eq!(params[0], ("Action".into(), "DescribeLoadBalancers".into()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(recognise(&h, b"{\"a\":1}"), Recognised::NotAws);
    }

    #[test]
    fn requests_name_their_iam_action() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("AnyScaleFrontendService.PutScalingPolicy"),
        );
        assert_eq!(
            iam_action(&h, b"{}").as_deref(),
            Some("application-autoscaling:PutScalingPolicy")
        );
        let h = HeaderMap::new();
        assert_eq!(
            iam_action(&h, b"Action=CreateListener&Version=2015-12-01").as_deref(),
            Some("elasticloadbalancing:CreateListener")
        );
        assert_eq!(iam_action(&h, b"{}"), None);
    }

    #[test]
    fn errors_render_in_each_protocol() {
        let e = AwsError::new("TargetGroupNotFound", "no <such> group");
        let r = e.query_response("ns", "rid");
        assert_eq!(r.status(), 400);
        let e = AwsError::server("ServerException", "boom");
        let r = e.json_response("rid");
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-amzn-requestid"], "rid");
        assert_eq!(xml_escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
