//! `POST /v1/stack-files/apply[?dryRun=true]`: a stack file as a person wrote it (YAML,
//! or JSON, which is YAML too), parsed and validated as `berth apply -f` does, then
//! applied as `POST /v1/apply` applies it.
//!
//! A file that does not parse or validate, or that apply refuses, gets a 400 whose body
//! adds `field` (the path of the offending member, e.g. `services[0].desiredCount`) to
//! the usual `{"__type", "message"}`, so a client can show the error next to it. Nothing
//! is stored then.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_model::stack::Stack;
use serde::Deserialize;

use crate::api_state::ApiState;
use crate::apply::apply;
use crate::error::{ApiError, ControlError};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

/// A refusal naming the member at fault.
fn field_error(field: &str, message: &str) -> Response {
    let text = if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    };
    let body = serde_json::json!({
        "__type": "InvalidParameterException",
        "message": text,
        "field": field,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Parses and validates the text of a stack file.
pub fn parse(text: &str) -> Result<Stack, berth_model::ValidationError> {
    let stack = Stack::from_yaml(text)?;
    stack.validate()?;
    Ok(stack)
}

pub(super) async fn apply_stack_file(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<ApplyQuery>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return field_error("", "the stack file is not UTF-8 text");
    };
    let stack = match parse(text) {
        Ok(stack) => stack,
        Err(e) => return field_error(&e.field, &e.message),
    };
    match apply(&s.db, &*s.data_plane, &stack, q.dry_run).await {
        Ok(changes) => Json(changes).into_response(),
        Err(ControlError::Invalid { field, message }) => field_error(&field, &message),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_member_is_named_by_its_path() {
        let text =
            "services:\n  - serviceName: web\n    taskDefinition: web\n    desiredCount: -1\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.field, "services[0].desiredCount");
        assert!(e.message.contains("0 or more"), "{}", e.message);
    }

    #[test]
    fn an_unknown_member_is_named_too() {
        let e = parse("services:\n  - serviceNme: web\n").unwrap_err();
        assert!(e.field.starts_with("services[0]"), "{}", e.field);
        assert!(e.message.contains("serviceNme"), "{}", e.message);
    }
}
