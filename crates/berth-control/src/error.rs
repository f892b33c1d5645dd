//! API errors, named as ECS and ELBv2 name them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_model::ValidationError;
use berth_store::StoreError;

/// An error the API returns: `{"__type": "<code>", "message": "..."}` with an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The ECS/ELBv2 error name, e.g. `InvalidParameterException`.
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", 400, message)
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::new("ClientException", 400, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new("ServerException", 500, message)
    }

    pub fn cluster_not_found(name: &str) -> Self {
        Self::new(
            "ClusterNotFoundException",
            404,
            format!(
                "cluster {name:?} not found; create it first (berth apply with a clusters entry)"
            ),
        )
    }

    pub fn service_not_found(cluster: &str, name: &str) -> Self {
        Self::new(
            "ServiceNotFoundException",
            404,
            format!("service {name:?} not found in cluster {cluster:?}"),
        )
    }

    pub fn target_group_not_found(name: &str) -> Self {
        Self::new(
            "TargetGroupNotFoundException",
            404,
            format!("target group {name:?} not found"),
        )
    }

    pub fn load_balancer_not_found(name: &str) -> Self {
        Self::new(
            "LoadBalancerNotFoundException",
            404,
            format!("load balancer {name:?} not found"),
        )
    }

    pub fn task_definition_not_found(name: &str) -> Self {
        Self::new(
            "ClientException",
            404,
            format!("task definition {name:?} not found; register it first (taskDefinitions in a stack file)"),
        )
    }

    pub fn task_not_found(cluster: &str, id: &str) -> Self {
        Self::new(
            "InvalidParameterException",
            404,
            format!("task {id:?} not found in cluster {cluster:?}"),
        )
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", 409, message)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::new(
                "ConflictException",
                409,
                format!("{e}; the resource changed meanwhile, retry"),
            ),
            other => ApiError::server(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"__type": self.code, "message": self.message});
        (status, axum::Json(body)).into_response()
    }
}
