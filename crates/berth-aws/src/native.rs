//! Calls into berth's own `/v1` API, in process: the front door translates each AWS
//! operation into the native requests that do the same, so validation, the store's
//! rules and every answer's bookkeeping (task counts, bound ports) are the API's own.

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An error the native API answered with: its ECS-style name, message and status.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl NativeError {
    /// Whether the API said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

/// The native API router, called without a network hop.
#[derive(Clone)]
pub struct Native {
    router: Router,
}

impl Native {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, NativeError> {
        let mut req = Request::builder().method(method).uri(path);
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| server_error(e.to_string()))?;
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| server_error(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| server_error(e.to_string()))?
            .to_bytes();
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status < 300 {
            return Ok(v);
        }
        Err(NativeError {
            code: v["__type"]
                .as_str()
                .unwrap_or(if status >= 500 {
                    "ServerException"
                } else {
                    "ClientException"
                })
                .to_string(),
            message: v["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
            status,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, NativeError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, NativeError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, NativeError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, NativeError> {
        self.call(Method::DELETE, path, None).await
    }
}

fn server_error(message: String) -> NativeError {
    NativeError {
        code: "ServerException".into(),
        message,
        status: 500,
    }
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(enc("web:3"), "web%3A3");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
        assert_eq!(enc("my-svc_1.x"), "my-svc_1.x");
    }
}
