//! ELBv2 over the query protocol.

use axum::response::Response;

use crate::native::Native;
use crate::protocol::AwsError;

/// The XML namespace of ELBv2's answers.
pub const XMLNS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

pub async fn handle(_native: &Native, params: &[(String, String)], request_id: &str) -> Response {
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    AwsError::new(
        "InvalidAction",
        format!("berth's ELBv2 API has no action {action:?}"),
    )
    .query_response(XMLNS, request_id)
}
